"""Text and JSON renderings of plans: the status tree, `why`, `list`, `build -n`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowmake.graph import Graph
    from flowmake.plan.check import Plan, Step

# One target's line of `status`: (name, state, reasons, source), state being a State's
# value and source what a fresh state comes from ("record" or "lock", else None). Both the
# planner's answer and the no-op fast path's (cli.noop.fresh_status) come as rows.
StatusRow = tuple[str, str, Sequence[str], "str | None"]


def step_line(step: Step) -> str:
    return status_line((step.name, step.state.value, [str(r) for r in step.reasons],
                        step.source))


def status_line(row: StatusRow) -> str:
    name, state, reasons, _ = row
    return f"{name}: {state}" + (" (" + "; ".join(reasons) + ")" if reasons else "")


def status_rows(plan: Plan) -> list[StatusRow]:
    return [(s.name, s.state.value, [str(r) for r in s.reasons], s.source)
            for s in plan.steps]


def status_tree(rows: Iterable[StatusRow], upstream: Mapping[str, Sequence[str]],
                roots: Iterable[str]) -> list[str]:
    """Each selected target with its upstream indented below it; repeats are elided."""
    by_name = {row[0]: row for row in rows}
    lines: list[str] = []
    shown: set[str] = set()  # the targets drawn with their upstream already
    # Depth first with a stack, not recursion: a chain of 5,000 deps is 5,000 levels deep.
    stack = [(root, 0) for root in reversed(list(roots))]
    prefixes = [""]  # by depth
    while stack:  # (a leaf costs no list, set entry or generator: 100,000 of them at scale)
        name, depth = stack.pop()
        while len(prefixes) <= depth:
            prefixes.append("  " * len(prefixes) + "└─ ")
        prefix = prefixes[depth]
        if name in shown:  # drawn above with its upstream
            lines.append(f"{prefix}{name}: {by_name[name][1]} (upstream shown above)")
            continue
        row = by_name[name]
        found = upstream[name]
        ups = [u for u in found if u in by_name] if found else found
        lines.append(f"{prefix}{name}: {row[1]}" if not row[2] else prefix + status_line(row))
        if ups:
            shown.add(name)
            stack.extend([(up, depth + 1) for up in reversed(ups)])
    return lines


def fresh_tree(names: Sequence[str], upstream: Sequence[str], roots: Iterable[int]
               ) -> list[str]:
    """``status_tree``'s lines when every target is fresh (the no-op fast path's answer),
    from the snapshot's own form: ``upstream[i]`` is target i's upstream as indices into
    ``names`` joined by "," ("" for none), ``roots`` indices too. The same lines, without
    the rows and the dict of 100,000 lists of names ``status_tree`` takes."""
    lines: list[str] = []
    shown: set[int] = set()
    stack = [(root, 0) for root in reversed(list(roots))]
    prefixes = [""]  # by depth
    while stack:
        i, depth = stack.pop()
        while len(prefixes) <= depth:
            prefixes.append("  " * len(prefixes) + "└─ ")
        if i in shown:
            lines.append(f"{prefixes[depth]}{names[i]}: fresh (upstream shown above)")
            continue
        lines.append(f"{prefixes[depth]}{names[i]}: fresh")
        ups = upstream[i]
        if ups:
            shown.add(i)
            below = depth + 1
            stack.extend([(int(u), below) for u in reversed(ups.split(",")) if u])
    return lines


def status_lines(rows: Sequence[StatusRow], upstream: Mapping[str, Sequence[str]],
                 roots: Iterable[str], *, quiet: bool = False, check: bool = False
                 ) -> list[str]:
    """What `status` prints: the tree; with ``-q`` only the targets not fresh, one line
    each in build order, and with ``-q --check`` nothing (the exit code tells)."""
    if not quiet:
        return status_tree(rows, upstream, roots)
    return [] if check else [status_line(row) for row in rows if row[1] != "fresh"]


def status_json(rows: Iterable[StatusRow], upstream: Mapping[str, Sequence[str]]
                ) -> dict[str, Any]:
    return {"targets": [
        {"name": name, "state": state, "reasons": list(reasons), "upstream": list(upstream[name]),
         **({"source": source} if source else {})}
        for name, state, reasons, source in rows]}


def fresh_status_json(names: Sequence[str], upstream: Sequence[str]) -> dict[str, Any]:
    """``status_json`` of every target fresh from its record (the no-op fast path's
    answer; ``upstream`` as ``fresh_tree`` takes it), each target's text written
    directly, in blocks (``jsonout.Texts``): no dict, list or row per target."""
    from flowmake.report import jsonout

    quoted = [jsonout.string(name) for name in names]

    def items() -> Iterator[str]:
        for name, ups in zip(quoted, upstream, strict=True):
            inside = ", ".join([quoted[int(u)] for u in ups.split(",") if u]) if ups else ""
            yield (f'{{"name": {name}, "state": "fresh", "reasons": [], '
                   f'"upstream": [{inside}], "source": "record"}}')

    return {"targets": jsonout.Texts(jsonout.blocks(items()))}


def list_json(graph: Graph) -> dict[str, Any]:
    targets = []
    for t in graph.targets.values():
        item: dict[str, Any] = {
            "name": t.name, "kind": t.kind, "help": t.help,
            "inputs": [i.path for i in t.inputs], "outputs": [o.path for o in t.outputs],
            "deps": list(graph.upstream[t.name])}
        if t.matrix:
            item["matrix"] = t.matrix
        if t.item is not None:
            item["item"] = t.item  # the file of a foreach instance
        targets.append(item)
    return {"targets": targets}


def list_lines(graph: Graph) -> list[str]:
    width = max((len(n) for n in graph.targets), default=0)
    return [f"{t.name:<{width}}  {t.kind:<6}  {t.help}".rstrip() for t in graph.targets.values()]


def dry_run_json(plan: Plan) -> list[dict[str, Any]]:
    status = {"fresh": "fresh", "stale": "would-build", "restorable": "would-restore"}
    return [{"name": s.name, "status": status[s.state.value], "duration": 0.0,
             "reasons": [str(r) for r in s.reasons]} for s in plan.steps]
