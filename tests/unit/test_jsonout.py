"""report.jsonout: the same JSON as json.dumps, laid out one entry per line at the top."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from flowmake.model import TargetStatus
from flowmake.report.jsonout import _Out, dump, dumps

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


@given(docs)
def test_dump_in_pieces_is_dumps(doc: object) -> None:
    pieces: list[str] = []
    dump(doc, pieces.append)
    assert "".join(pieces) == dumps(doc)


def test_a_generator_is_written_as_a_list_while_it_is_made() -> None:
    count = 3 * _Out.FLUSH_AT
    made: list[int] = []
    pieces: list[tuple[str, int]] = []  # each piece written, and how many items were made

    def items() -> Iterator[dict[str, int]]:
        for i in range(count):
            made.append(i)
            yield {"i": i}

    dump({"none": (x for x in ()), "items": items()},
         lambda text: pieces.append((text, len(made))))
    text = "".join(piece for piece, _ in pieces)
    assert text == dumps({"none": [], "items": [{"i": i} for i in range(count)]})
    assert text.startswith('{\n  "none": [],\n  "items": [\n    {"i": 0},\n')
    assert pieces[0][1] < count // 2  # the first piece went out long before the last item
