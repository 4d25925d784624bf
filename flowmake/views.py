"""Text and JSON renderings of plans: the status tree, `why`, `list`, `build -n`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .graph import Graph
from .plan import Plan, State, Step

_STATE_MARK = {State.FRESH: "fresh", State.STALE: "stale", State.RESTORABLE: "restorable"}


def step_line(step: Step) -> str:
    text = f"{step.name}: {_STATE_MARK[step.state]}"
    if step.reasons:
        text += " (" + "; ".join(str(r) for r in step.reasons) + ")"
    return text


def status_tree(plan: Plan, graph: Graph, roots: Iterable[str]) -> list[str]:
    """Each selected target with its upstream indented below it; repeats are elided."""
    steps = {s.name: s for s in plan.steps}
    lines: list[str] = []
    shown: set[str] = set()

    def walk(name: str, depth: int) -> None:
        step = steps[name]
        prefix = "  " * depth + ("└─ " if depth else "")
        ups = [u for u in graph.upstream[name] if u in steps]
        if name in shown and ups:
            lines.append(f"{prefix}{name}: {_STATE_MARK[step.state]} (upstream shown above)")
            return
        shown.add(name)
        lines.append(prefix + step_line(step))
        for up in ups:
            walk(up, depth + 1)

    for root in roots:
        walk(root, 0)
    return lines


def status_json(plan: Plan, graph: Graph) -> dict[str, Any]:
    return {"targets": [
        {"name": s.name, "state": s.state.value, "reasons": [str(r) for r in s.reasons],
         "upstream": list(graph.upstream[s.name])}
        for s in plan.steps]}


def list_json(graph: Graph) -> dict[str, Any]:
    targets = []
    for t in graph.targets.values():
        item: dict[str, Any] = {
            "name": t.name, "kind": t.kind, "help": t.help,
            "inputs": [i.path for i in t.inputs], "outputs": [o.path for o in t.outputs],
            "deps": list(graph.upstream[t.name])}
        if t.matrix:
            item["matrix"] = t.matrix
        targets.append(item)
    return {"targets": targets}


def list_lines(graph: Graph) -> list[str]:
    width = max((len(n) for n in graph.targets), default=0)
    return [f"{t.name:<{width}}  {t.kind:<6}  {t.help}".rstrip() for t in graph.targets.values()]


def dry_run_json(plan: Plan) -> list[dict[str, Any]]:
    status = {State.FRESH: "fresh", State.STALE: "would-build", State.RESTORABLE: "would-restore"}
    return [{"name": s.name, "status": status[s.state], "duration": 0.0,
             "reasons": [str(r) for r in s.reasons]} for s in plan.steps]
