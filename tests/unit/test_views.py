"""report/views.py: the status tree's layout (made faster for 100,000 targets, kept as it was)."""

from __future__ import annotations

from flowmake.report.views import status_tree


def test_status_tree_layout() -> None:
    # d needs b and c, both need a; x is upstream of c but not among the rows shown.
    rows = [("a", "fresh", (), "record"), ("b", "stale", ["never built"], None),
            ("c", "fresh", (), "record"), ("d", "fresh", (), "record"),
            ("leaf", "fresh", (), "record")]
    upstream = {"a": (), "b": ("a",), "c": ("x", "a"), "d": ("b", "c"), "leaf": [], "x": ()}
    assert status_tree(rows, upstream, ["d", "leaf", "c"]) == [
        "d: fresh",
        "  └─ b: stale (never built)",
        "    └─ a: fresh",
        "  └─ c: fresh",
        "    └─ a: fresh",
        "leaf: fresh",
        "c: fresh (upstream shown above)",
    ]
