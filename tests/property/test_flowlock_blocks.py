"""flow.lock's own renderer of plain entries writes the bytes tomli_w writes.

``flowlock.block`` renders an entry of strings and tables of strings itself (the common
case, ~4x faster) and leaves anything else to tomli_w; both must give the same text, or
a file written by one build would not be the one the next build splices.
"""

from __future__ import annotations

import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmake.config.flowfiles import tomllib
from flowmake.store import flowlock
from flowmake.store.flowlock import LockEntry

# Names, paths, digests and commands as they come, and the characters tomli_w escapes or
# quotes: quotes, backslashes, control characters, DEL, tabs, spaces, dots, non-ASCII.
ODD = st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", " ", ".", "é", "=", "#"])
TEXT = st.one_of(
    st.text(alphabet=st.sampled_from("abcXYZ019_-./ "), max_size=12),
    st.lists(st.one_of(st.text(max_size=3), ODD), max_size=5).map("".join),
)
PLAIN = st.dictionaries(TEXT, TEXT, max_size=4)
# What a part may hold besides: a param's number, list, boolean or nested table.
OTHER = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                  st.lists(TEXT, max_size=3), st.dictionaries(TEXT, PLAIN, max_size=2),
                  st.dictionaries(TEXT, st.integers(), min_size=1, max_size=2))
PARTS = st.fixed_dictionaries({}, optional={
    "action": TEXT, "code": st.one_of(TEXT, PLAIN), "params": st.one_of(PLAIN, OTHER),
    "project_params": PLAIN, "env": PLAIN, "deps": PLAIN, "inputs": PLAIN,
    "globs": st.one_of(PLAIN, OTHER)})


@settings(max_examples=400, deadline=None)
@given(name=TEXT, key=TEXT, parts=PARTS, outputs=PLAIN)
def test_a_block_is_what_tomli_w_writes(name: str, key: str, parts: dict[str, object],
                                        outputs: dict[str, str]) -> None:
    entry = LockEntry(key, {**parts, "outputs": list(outputs)}, outputs)
    table = {"key": key, **{p: parts[p] for p in flowlock._PARTS  # the file's order
                            if p in parts and parts[p] != {}}, "outputs": outputs}
    expected = tomli_w.dumps({"targets": {name: table}})
    assert flowlock.block(name, entry) == expected
    assert tomllib.loads(expected)["targets"][name]["key"] == key


def test_plain_entries_take_the_fast_path() -> None:
    table = {"key": "79016f32", "action": "cp src/in0.txt out/out0.txt",
             "inputs": {"src/in0.txt": "3eefdbb1"}, "env": {},
             "outputs": {"out/out 0.txt": "3eefdbb1", "é": ""}}
    rendered = flowlock._plain_block("t0", table)
    assert rendered == tomli_w.dumps({"targets": {"t0": table}})
    assert rendered is not None and '"out/out 0.txt" = "3eefdbb1"' in rendered
    # what it leaves to tomli_w: an escape, a number, a name to quote with an escape
    assert flowlock._plain_block("t0", {**table, "action": 'echo "hi"'}) is None
    assert flowlock._plain_block("t0", {**table, "params": {"n": 1}}) is None
    assert flowlock._plain_block("a\tb\\", table) is None
