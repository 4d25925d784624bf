"""Text and JSON renderings of plans: the status tree, `why`, `list`, `build -n`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from .graph import Graph
from .plan import Plan, Reason, ReasonDetail, State, Step

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


def why_lines(step: Step) -> list[str]:
    """The whole explanation of one target's state, old → new where values differ."""
    lines = [f"{step.name}: {_STATE_MARK[step.state]}"]
    if step.key:
        lines.append(f"  key: {step.key}")
    if not step.reasons:
        lines.append("  every part of the key matches the record and every output is intact")
    for reason in step.reasons:
        lines.extend("  " + line for line in _explain(reason))
    return lines


def _explain(r: ReasonDetail) -> list[str]:
    if r.reason in (Reason.COMMAND, Reason.CODE) and not r.subject and r.old and r.new:
        diff = difflib.unified_diff(str(r.old).splitlines(), str(r.new).splitlines(),
                                    "recorded", "now", lineterm="", n=1)
        return [f"{r.reason.value}:", *("  " + d for d in diff)]
    if r.reason in (Reason.INPUT, Reason.OUTPUT_MODIFIED, Reason.CODE) and r.subject:
        return [f"{r.reason.value}: {r.subject}", f"  {r.old} → {r.new}"]
    if r.reason in (Reason.INPUT_ADDED, Reason.INPUT_REMOVED):
        return [f"{r.reason.value}: {r.subject} ({r.new or r.old})"]
    if r.reason is Reason.OUTPUTS:
        return [f"{r.reason.value}: {r.old} → {r.new}"]
    return [str(r)]


def why_json(step: Step) -> dict[str, Any]:
    return {"name": step.name, "state": step.state.value, "key": step.key,
            "reasons": [r.to_json() for r in step.reasons], "parts": step.parts}


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
