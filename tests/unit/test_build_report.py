"""The report's lane assignment: greedy interval colouring by start time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flowmake.report.html import assign_lanes


def test_lanes_are_reused_once_free():
    # [0,4) and [0,6) run side by side; [4,6) takes the first lane when it is free; at 6
    # the shorter span is placed first (by start, then end).
    spans = [(0.0, 4.0), (0.0, 6.0), (4.0, 6.0), (6.0, 9.0), (6.0, 7.0)]
    assert assign_lanes(spans) == [0, 1, 0, 1, 0]


def test_no_spans():
    assert assign_lanes([]) == []


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 10)), max_size=40))
def test_spans_of_one_lane_never_overlap_and_no_lane_is_wasted(raw):
    spans = [(start, start + length) for start, length in raw]
    lanes = assign_lanes(spans)
    for i, (a, b) in enumerate(spans):
        for j, (c, d) in enumerate(spans):
            if i < j and lanes[i] == lanes[j]:
                assert b <= c or d <= a
    # greedy colouring of intervals is optimal: as many lanes as the most that overlap
    points = sorted({s for s, _ in spans})
    most = max((sum(1 for s, e in spans if s <= p < e or s == p == e) for p in points),
               default=0)
    assert (max(lanes) + 1 if lanes else 0) <= max(most, 1 if spans else 0)
