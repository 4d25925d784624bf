"""flow.lock read without a TOML parser (``flowlock.as_rendered``) gives what tomllib
gives, or nothing.

A text flowmake wrote is read by flowmake's own reader; any other (hand-edited, merged,
cut short, another tool's) must come out as None, so that tomllib reads it and says what
is wrong. Whatever the text, the reader never gives entries tomllib would not.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmake.errors import ConfigError
from flowmake.store import flowlock
from flowmake.store.flowlock import LockEntry

from .test_flowlock_blocks import PARTS, PLAIN, TEXT

ENTRIES = st.dictionaries(TEXT, st.tuples(TEXT, PARTS, PLAIN), max_size=5).map(
    lambda d: {name: LockEntry(key, {**parts, "outputs": list(outs)}, outs)
               for name, (key, parts, outs) in d.items()})


def _by_toml(text: str) -> dict[str, LockEntry] | None:
    try:
        return flowlock.parse_toml(text)
    except ConfigError:
        return None


def _same(ours: dict[str, tuple[LockEntry, str]], theirs: dict[str, LockEntry]) -> bool:
    # what a record is made of: the key, the parts' and the outputs' JSON
    return {n: (e.key, e.parts_json, e.outputs_json) for n, (e, _) in ours.items()} == \
        {n: (e.key, e.parts_json, e.outputs_json) for n, e in theirs.items()}


@settings(max_examples=300, deadline=None)
@given(entries=ENTRIES)
def test_what_flowmake_writes_is_read_as_tomllib_reads_it(
        entries: dict[str, LockEntry]) -> None:
    text = flowlock.render(entries)
    ours = flowlock.as_rendered(text)
    if ours is None:  # only a name written with escapes (tomli_w's) is left to tomllib
        assert any(flowlock._plain_key(n) is None for n in entries)
        return
    theirs = flowlock.parse_toml(text)
    assert _same(ours, theirs)
    assert all(ours[n][1] == flowlock.block(n, theirs[n]) for n in theirs)


EDITS = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(
    ["", "\n", " ", '"', "\\", "[", "]", "=", "#", "x", "\n[targets.z]\n", "\t", "\n\n",
     'key = "k"\n', "<<<<<<< ours\n", "[targets.a.outputs]\n", "\n[other]\n"])),
    min_size=1, max_size=3)


@settings(max_examples=600, deadline=None)
@given(entries=ENTRIES, edits=EDITS, cut=st.integers(0, 3))
def test_any_other_text_is_left_to_tomllib(entries: dict[str, LockEntry],
                                           edits: list[tuple[int, str]], cut: int) -> None:
    text = flowlock.render(entries)
    for at, insert in edits:  # characters inserted, or replaced (cut), anywhere
        at %= len(text) + 1
        text = text[:at] + insert + text[at + cut:]
    ours = flowlock.as_rendered(text)
    if ours is None:
        return
    theirs = _by_toml(text)
    assert theirs is not None, text  # tomllib would have said the text is wrong
    assert _same(ours, theirs), text


def test_the_common_file_is_read_by_flowmake_and_odd_ones_by_tomllib() -> None:
    plain = {"t0": LockEntry("k0", {"action": "cp a b", "inputs": {"a": "d1"},
                                    "outputs": ["b"]}, {"b": "d2"}),
             "p": LockEntry("k1", {"params": {"n": 3, "xs": [1, 2]}, "outputs": ["o"]},
                            {"o": "d3"})}
    text = flowlock.render(plain)
    ours = flowlock.as_rendered(text)
    assert ours is not None and ours["p"][0].parts["params"] == {"n": 3, "xs": [1, 2]}
    # a hand edit that tomllib reads the same way is still not flowmake's text: tomllib
    # reads it, and a later build rewrites the file whole instead of splicing it
    assert flowlock.as_rendered(text.replace('key = "k0"', 'key="k0"')) is None
    assert flowlock.as_rendered(text.replace("[targets.t0]", '[targets."t0"]')) is None
    assert flowlock.as_rendered(text + "\n") is None
    # a table of another name inside an entry's block (no dot in its head)
    assert flowlock.as_rendered(text + "\n[other]\n") is None
    assert set(flowlock.parse(text + "\n[other]\n")) == {"t0", "p"}
    assert flowlock.as_rendered(text.replace("version = 1", "version = 2")) is None
    with pytest.raises(ConfigError, match="unknown format version"):
        flowlock.parse(text.replace("version = 1", "version = 2"))
    # two entries' blocks out of their order
    first, second = text[len(flowlock.PREFIX):].split("\n[targets.t0]")
    swapped = flowlock.PREFIX + "[targets.t0]" + second + "\n" + first
    assert flowlock.as_rendered(swapped) is None
    assert set(flowlock.parse(swapped)) == {"t0", "p"}
