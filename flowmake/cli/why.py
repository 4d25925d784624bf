"""`flowmake why TARGET`: every part of one target's key, old → new, and what made it stale.

The Checker stops at what makes a target stale; ``why`` goes on: it also checks the
outputs of a target whose key changed, names the glob that matched an added or removed
input, shows a changed command as a diff, and explains the upstream targets that make
this one stale, down to their own reasons. Env values enter the key hashed: ``why``
says that one changed, never what it was.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowmake.cli.workspace import Workspace
from flowmake.errors import UsageError
from flowmake.graph import glob_regex
from flowmake.model import PluginAction
from flowmake.plan.check import Checker, State, Step
from flowmake.plan.reasons import Reason, ReasonDetail
from flowmake.report.history import iso
from flowmake.store.db import Record


@dataclass(frozen=True, slots=True)
class Explanation:
    """One target's step, its record, and the stale upstream steps that explain it."""

    step: Step
    record: Record | None
    reasons: tuple[ReasonDetail, ...]  # the step's reasons plus output checks
    missing: tuple[str, ...]  # inputs that do not exist yet (no key without them)
    steps: dict[str, Step]  # every step of the plan, for the upstream explanation
    compared: str | None = None  # what ``record`` is: "record" (local) or "lock" (flow.lock)


def why_command(ws: Workspace, args: argparse.Namespace) -> int:
    """Explain one target (a name, or a pattern that names exactly one)."""
    try:
        explanation = explain(ws, _one_target(ws, args.target))
        ws.save_stats()
    finally:
        ws.close()
    if args.json:
        sys.stdout.write(json.dumps(why_json(explanation), indent=2, default=str) + "\n")
    else:
        print("\n".join(why_lines(explanation)))
    return 0


def _one_target(ws: Workspace, pattern: str) -> str:
    names = ws.graph.select([pattern])
    if len(names) > 1:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise UsageError(f"'{pattern}' names {len(names)} targets ({shown}); "
                         "`why` explains one", hint=f"e.g. `flowmake why '{names[0]}'`")
    return names[0]


def explain(ws: Workspace, name: str) -> Explanation:
    """Plan ``name`` and its upstream, then complete its reasons for the explanation."""
    checker = ws.checker()
    closure = ws.graph.closure([name])
    checker.check_sources(closure)
    steps = {s.name: s for s in checker.plan(closure).steps}
    step = steps[name]
    record, compared = ws.store.record(name), "record"
    entry = checker.lock_entry(name)
    if step.source == "lock" or (entry is not None and (record is None or (
            step.source is None and entry.key == step.key))):
        # Fresh through flow.lock, or (a fresh clone) only the lock knows it: explained
        # against the lock entry, old → new since it was written.
        record, compared = entry, "lock"
    return Explanation(step, record, _full_reasons(checker, step, record),
                       tuple(_missing_inputs(checker, step)), steps,
                       compared if record is not None else None)


def _full_reasons(checker: Checker, step: Step, record: Record | None) -> tuple[ReasonDetail, ...]:
    """The step's reasons, plus the outputs' state when the key alone already differed."""
    reasons = list(step.reasons)
    if record is not None and step.key is not None and record.key != step.key:
        seen = {(r.reason, r.subject) for r in reasons}
        reasons += [r for r in checker.output_reasons(record.outputs)
                    if (r.reason, r.subject) not in seen]
    return tuple(reasons)


def _missing_inputs(checker: Checker, step: Step) -> list[str]:
    if step.parts is not None:
        return []
    return checker.parts(step.target)[1]


# -- text -------------------------------------------------------------------------------


def why_lines(ex: Explanation) -> list[str]:
    """The explanation as indented lines, old → new wherever values differ."""
    step, record = ex.step, ex.record
    lines = [f"{step.name}: {step.state.value}"]
    if isinstance(step.target.action, PluginAction):  # a plugin's kind: what runs it
        lines.append(f"  action: {step.target.action.text}")
    if step.key:
        lines.append(f"  key: {step.key}")
    elif ex.missing:
        lines.append("  key: not computable until these inputs exist: " + ", ".join(ex.missing))
    if record is not None and ex.compared == "lock":
        same = " (same)" if record.key == step.key else ""
        lines.append(f"  flow.lock key: {record.key}{same}")
        if step.source == "lock":
            lines.append("  fresh through flow.lock: its entry matches the key and every"
                         " output (this clone has no record of its own yet)")
    elif record is not None:
        same = " (same)" if record.key == step.key else ""
        lines.append(f"  recorded key: {record.key}{same}")
        lines.append(f"  last built: {_when(record.built_at)}"
                     + (f" in run {record.run_id}" if record.run_id else "")
                     + f", took {record.duration:.2f}s")
    if step.state is State.RESTORABLE:
        lines.append("  the artifact cache holds this key: a build restores it, runs nothing")
    if not ex.reasons:
        against = "the flow.lock entry" if ex.compared == "lock" else "the record"
        lines.append(f"  every part of the key matches {against} and every output is intact")
    shown: set[str] = {step.name}
    for reason in ex.reasons:
        lines.extend("  " + line for line in _reason_lines(reason, ex, shown))
    return lines


def _when(ts: float | None) -> str:
    return "?" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


# How deep `why` explains stale upstream targets in its text: a long chain is cut there,
# with a pointer to go on from (the JSON document lists every one, flat).
UPSTREAM_DEPTH = 8


def _reason_lines(r: ReasonDetail, ex: Explanation, shown: set[str],
                  depth: int = 0) -> list[str]:
    if r.reason in (Reason.COMMAND, Reason.CODE) and not r.subject and r.old and r.new:
        return [f"{r.reason.value}:", *("  " + d for d in command_diff(r.old, r.new))]
    if r.reason is Reason.CODE and r.subject:
        # A function, class or value (pipeline.model.fit) or a module's body (pipeline.model).
        return [f"code changed: {r.subject}", f"  {_digest(r.old)} → {_digest(r.new)}"]
    if r.reason is Reason.PARAM:
        return [f"param {r.subject}: {_value(r.old)} → {_value(r.new)}"]
    if r.reason is Reason.ENV:
        return [f"env {r.subject}: changed (values enter the key hashed; not shown)"]
    if r.reason in (Reason.INPUT, Reason.OUTPUT_MODIFIED):
        return [f"{r.reason.value}: {r.subject}", f"  {r.old} → {r.new}"]
    if r.reason in (Reason.INPUT_ADDED, Reason.INPUT_REMOVED):
        parts = (ex.step.parts or {}) if r.reason is Reason.INPUT_ADDED else (
            ex.record.parts if ex.record else {})
        glob = matching_glob(r.subject, parts)
        via = f", matched by {glob}" if glob else ""
        digest = r.new or r.old
        return [f"{r.reason.value}: {r.subject}" + (f" ({digest}{via})" if digest else "")]
    if r.reason is Reason.OUTPUTS:
        return [f"declared outputs changed: {_value(r.old)} → {_value(r.new)}"]
    if r.reason is Reason.UPSTREAM:
        return [f"upstream stale: {r.subject}",
                *("  " + x for x in _upstream(r.subject, ex, shown, depth + 1))]
    return [str(r)]


def _upstream(name: str, ex: Explanation, shown: set[str], depth: int) -> list[str]:
    """Why an upstream target will run: its own reasons, recursively (UPSTREAM_DEPTH
    levels at most), each target once."""
    step = ex.steps.get(name)
    if step is None:
        return []
    if name in shown:
        return [f"{name}: {step.state.value} (explained above)"]
    if depth > UPSTREAM_DEPTH:
        return [f"{name}: {step.state.value} (and further upstream: `flowmake why '{name}'`)"]
    shown.add(name)
    lines = [f"{name}: {step.state.value}"]
    sub = Explanation(step, None, step.reasons, (), ex.steps)
    for reason in step.reasons:
        lines.extend("  " + line for line in _reason_lines(reason, sub, shown, depth))
    return lines


def command_diff(old: str, new: str) -> list[str]:
    """``- old`` / ``+ new`` lines, with ``?`` lines marking the changed characters."""
    return [line.rstrip() for line in difflib.ndiff(str(old).splitlines(), str(new).splitlines())]


def matching_glob(path: str, parts: dict[str, Any]) -> str | None:
    """The glob of ``parts`` whose matched set holds ``path``, if any."""
    for pattern, files in (parts.get("globs") or {}).items():
        if path in files or glob_regex(pattern).match(path):
            return str(pattern)
    return None


def _value(value: Any) -> str:
    return "(unset)" if value is None else json.dumps(value)


def _digest(value: Any) -> str:
    return "(none)" if value is None else str(value)


# -- JSON -------------------------------------------------------------------------------


def why_json(ex: Explanation) -> dict[str, Any]:
    """One document: state, key, every reason with old/new, the record, stale upstream."""
    step, record = ex.step, ex.record
    doc: dict[str, Any] = {
        "name": step.name, "state": step.state.value, "key": step.key,
        "reasons": [_reason_json(r, ex) for r in ex.reasons], "parts": step.parts,
        "missing_inputs": list(ex.missing),
        "source": step.source, "compared_with": ex.compared,
        "recorded": None if record is None else {
            "key": record.key, "run_id": record.run_id, "built_at": record.built_at,
            "built": iso(record.built_at),
            "duration": record.duration, "parts": record.parts, "outputs": record.outputs},
        "upstream": _upstream_json(step, ex.steps)}
    return doc


def _reason_json(r: ReasonDetail, ex: Explanation) -> dict[str, Any]:
    data = r.to_json()
    if r.reason in (Reason.COMMAND, Reason.CODE) and not r.subject and r.old and r.new:
        data["diff"] = command_diff(r.old, r.new)
    if r.reason in (Reason.INPUT_ADDED, Reason.INPUT_REMOVED):
        parts = (ex.step.parts or {}) if r.reason is Reason.INPUT_ADDED else (
            ex.record.parts if ex.record else {})
        glob = matching_glob(r.subject, parts)
        if glob:
            data["glob"] = glob
    return data


def _upstream_json(step: Step, steps: dict[str, Step]) -> list[dict[str, Any]]:
    """Every stale upstream target behind ``step``, nearest first, each once."""
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    queue = [r.subject for r in step.reasons if r.reason is Reason.UPSTREAM]
    while queue:
        name = queue.pop(0)
        if name in seen or name not in steps:
            continue
        seen.add(name)
        up = steps[name]
        found.append({"name": name, "state": up.state.value,
                      "reasons": [r.to_json() for r in up.reasons]})
        queue += [r.subject for r in up.reasons if r.reason is Reason.UPSTREAM]
    return found
