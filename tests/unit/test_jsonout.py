"""report.jsonout: the same JSON as json.dumps, laid out one entry per line at the top."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from flowmake.model import TargetStatus
from flowmake.report.jsonout import dumps

scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
docs = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=30)


@given(docs)
def test_it_reads_back_as_json_dumps_does(doc: object) -> None:
    assert json.loads(dumps(doc)) == json.loads(json.dumps(doc))


def test_the_outer_levels_are_one_entry_per_line() -> None:
    doc = {"targets": [{"name": "a", "deps": ["b"]}, {"name": "b", "deps": []}], "n": 2}
    assert dumps(doc) == (
        '{\n'
        '  "targets": [\n'
        '    {"name": "a", "deps": ["b"]},\n'
        '    {"name": "b", "deps": []}\n'
        '  ],\n'
        '  "n": 2\n'
        '}'
    )


def test_empty_containers_scalars_keys_and_default() -> None:
    assert dumps({}) == "{}" and dumps([]) == "[]" and dumps("x") == '"x"'
    assert dumps({"a": {}, "b": []}) == '{\n  "a": {},\n  "b": []\n}'
    assert json.loads(dumps({1: True, None: 2.5})) == {"1": True, "null": 2.5}
    assert dumps({"s": TargetStatus.FRESH}) == '{\n  "s": "fresh"\n}'
    assert json.loads(dumps({"p": {1, 2}.__class__}, default=str)) == {"p": "<class 'set'>"}
    assert dumps([math.inf]) == "[\n  Infinity\n]"  # as json.dumps writes it
