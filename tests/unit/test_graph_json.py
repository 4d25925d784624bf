"""cli/graph.py's JSON text helpers: each is what json.dumps writes for the same value."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from flowmake.cli.graphtails import ISO_SECONDS as _ISO_SECONDS
from flowmake.cli.graphtails import iso_text as _iso
from flowmake.cli.graphtails import seconds_text as _seconds
from flowmake.report import jsonout
from flowmake.report.history import iso


@pytest.fixture(autouse=True, scope="module")
def paris() -> Iterator[None]:
    """A zone with summer time, so that the offset differs between timestamps."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    _ISO_SECONDS.clear()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()
    _ISO_SECONDS.clear()


@given(st.floats(min_value=0, max_value=4e9) | st.integers(0, 4_000_000_000).map(
    lambda s: s + 0.9999995))
@example(1711846799.9999996)  # rounds up to the next second, which is summer time
@example(1711846800.0)  # 2024-03-31 02:00 CET: summer time begins
@example(1729990799.999)
@example(0.0)
def test_iso_is_history_iso_as_json(ts: float) -> None:
    assert _iso(ts) == json.dumps(iso(ts))


def test_iso_of_none() -> None:
    assert _iso(None) == "null"


@given(st.lists(st.text()), st.none() | st.integers() | st.floats(allow_nan=False,
                                                                     allow_infinity=False))
def test_strings_and_number_are_the_encoders(items: list[str], value: float | None) -> None:
    assert jsonout.strings(items) == json.dumps(items)
    assert jsonout.number(value) == json.dumps(value)
    assert all(jsonout.string(s) == json.dumps(s) for s in items)


def test_texts_are_put_out_as_they_are_one_a_line() -> None:
    made = (text for text in ['{"x": 1}', "[1, 2]"])
    doc = {"a": jsonout.Texts(made), "b": jsonout.Texts([]), "c": [jsonout.Texts(["1", "2"])]}
    text = jsonout.dumps(doc)
    assert text == (
        '{\n  "a": [\n    {"x": 1},\n    [1, 2]\n  ],\n  "b": [],\n  "c": [\n    [1, 2]\n  ]\n}')
    assert json.loads(text) == {"a": [{"x": 1}, [1, 2]], "b": [], "c": [[1, 2]]}



def test_a_block_of_texts_is_put_out_as_its_items_one_a_line() -> None:
    items = ['{"x": 1}', "[1, 2]", '"a\\nb"', "3"]
    as_blocks = ["\n".join(items[:3]), "", items[3]]
    text = jsonout.dumps({"a": jsonout.Texts(as_blocks), "b": [jsonout.Texts(iter(as_blocks))]})
    assert text == jsonout.dumps({"a": jsonout.Texts(items), "b": [jsonout.Texts(items)]})
    assert json.loads(text) == {
        "a": [{"x": 1}, [1, 2], "a\nb", 3], "b": [[{"x": 1}, [1, 2], "a\nb", 3]]}
    inline = jsonout.dumps({"a": jsonout.Texts(as_blocks)}, depth=1)  # below the depth
    assert inline == '{\n  "a": [{"x": 1}, [1, 2], "a\\nb", 3]\n}'


@given(st.none() | st.integers(-10**12, 10**12) | st.floats() | st.floats(-1e4, 1e4)
       | st.integers(0, 10**9).map(lambda n: n / 10**4 + 0.00005))  # halfway cases
@example(0.00005)
@example(-0.00004)
@example(-0.0)
@example(9999999999.99995)
@example(1e10)
def test_seconds_is_rounded_repr(value: float | None) -> None:
    assert _seconds(value) == repr(round(value or 0.0, 4))
