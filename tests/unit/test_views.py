"""report/views.py: the status tree's layout (made faster for 100,000 targets, kept as it was)."""

from __future__ import annotations

from flowmake.report import jsonout
from flowmake.report.views import fresh_status_json, fresh_tree, status_json, status_tree


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


def test_fresh_tree_is_status_tree_of_all_fresh_rows() -> None:
    """The fast path's tree (indices) and the planner's (names) print the same lines, on
    random DAGs with shared upstream, several roots and a repeated root."""
    import random

    for seed in range(200):
        rng = random.Random(seed)
        n = rng.randint(0, 40)
        names = [f"t{i}" for i in range(n)]
        ups = [sorted(rng.sample(range(i), rng.randint(0, min(i, 3)))) for i in range(n)]
        roots = rng.sample(range(n), rng.randint(0, n)) if n else []
        if roots and rng.random() < 0.3:
            roots.append(roots[0])
        rows = [(name, "fresh", (), "record") for name in names]
        upstream = {names[i]: [names[u] for u in ups[i]] for i in range(n)}
        indices = [",".join(map(str, up)) for up in ups]
        assert fresh_tree(names, indices, roots) == status_tree(
            rows, upstream, [names[r] for r in roots]), seed


def test_fresh_status_json_is_status_json_of_all_fresh_rows() -> None:
    """The fast path's `status --json` text is the planner's, byte for byte (names that
    need escaping included), on random DAGs."""
    import random

    for seed in range(100):
        rng = random.Random(seed)
        n = rng.randint(0, 600)  # past a block of 256
        names = [rng.choice(["t", 'q"', "é", "a\\b", "tab\t"]) + str(i) for i in range(n)]
        ups = [sorted(rng.sample(range(i), rng.randint(0, min(i, 3)))) for i in range(n)]
        rows = [(name, "fresh", (), "record") for name in names]
        upstream = {names[i]: [names[u] for u in ups[i]] for i in range(n)}
        indices = [",".join(map(str, up)) for up in ups]
        assert jsonout.dumps(fresh_status_json(names, indices), default=str) == jsonout.dumps(
            status_json(rows, upstream), default=str), seed
