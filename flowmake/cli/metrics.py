"""Metrics (SPEC §9): outputs named in a target's ``metrics`` hold numbers (JSON, TOML or
YAML), flattened by dots (``roc.auc``). Each build that builds or restores such a target
records their values (``run_metrics`` in the store); ``flowmake metrics`` shows the values
in the files now, with the change since the previous build that changed them, and
``--history`` the values across builds."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from flowmake.model import OutcomeStatus


class Metric(NamedTuple):
    target: str
    path: str
    name: str
    value: float | None  # None: the file is missing or holds no such number now
    previous: float | None  # the value before the latest build that changed it
    previous_run: int | None


def flatten(doc: Any, prefix: str = "") -> dict[str, float]:
    """The numbers in ``doc``, nested keys joined by dots (booleans and text left out)."""
    found: dict[str, float] = {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found.update(flatten(value, f"{prefix}{i}."))
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        found[prefix[:-1]] = float(doc)
    return found


def read_metrics(path: Path) -> dict[str, float]:
    """A metrics file's numbers; ValueError when it cannot be parsed (OSError: unreadable)."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            from flowmake.config.flowfiles import tomllib

            doc: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as exc:  # each parser has its own error; all mean "not this format"
        raise ValueError(f"{path.name}: not valid {suffix[1:].upper()} ({exc})") from None
    return flatten(doc)


_KEPT = (OutcomeStatus.BUILT, OutcomeStatus.RESTORED)


def record(ws: Any, run_id: int, outcomes: Mapping[str, Any]) -> None:
    """Keep the metrics of the targets this build built or restored."""
    for name, outcome in outcomes.items():
        target = ws.graph.targets.get(name)
        if target is None or not target.metrics or outcome.status not in _KEPT:
            continue
        values: dict[str, float] = {}
        for rel in target.metrics:
            try:
                values.update({f"{rel}:{k}": v for k, v in read_metrics(ws.root / rel).items()})
            except (OSError, ValueError) as exc:
                print(f"flowmake: warning: metrics of {name} not recorded: {exc}",
                      file=sys.stderr)
        ws.store.put_metrics(run_id, name, values)


def _selected(ws: Any, patterns: list[str]) -> list[str]:
    if patterns:
        return [n for n in ws.graph.select(patterns) if ws.graph.targets[n].metrics]
    return [n for n, t in ws.graph.targets.items() if t.metrics]


def current(ws: Any, names: list[str], history: list[tuple[int, str, str, float]]
            ) -> list[Metric]:
    """Each metric in the files now, with the value before its latest change."""
    found: list[Metric] = []
    for name in names:
        for rel in ws.graph.targets[name].metrics:
            try:
                now = read_metrics(ws.root / rel)
            except (OSError, ValueError):
                now = {}
            past = [(r, k.partition(":")[2], v) for r, t, k, v in history
                    if t == name and k.partition(":")[0] == rel]
            keys = list(now) + sorted({k for _, k, _ in past} - set(now))
            for key in keys:
                value = now.get(key)
                earlier = [(r, v) for r, k, v in past if k == key and v != value]
                prev_run, prev = earlier[-1] if earlier else (None, None)
                found.append(Metric(name, rel, key, value, prev, prev_run))
    return found


def metrics_command(ws: Any, args: argparse.Namespace) -> int:
    try:
        names = _selected(ws, args.targets)
        history = ws.store.metrics_history(names)
        found = current(ws, names, history)
    finally:
        ws.close()
    if args.json:
        doc: dict[str, Any] = {"metrics": [_metric_json(m) for m in found]}
        if args.history:
            doc["history"] = [{"run_id": r, "target": t, "path": k.partition(":")[0],
                               "name": k.partition(":")[2], "value": v}
                              for r, t, k, v in history]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    if not names:
        print("no metrics: no selected target declares `metrics`")
    else:
        print("\n".join(history_lines(ws, names, history) if args.history else current_lines(found)))
    return 0


def listed(ws: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """``list --json`` with each target's ``metrics``: its declared paths, each with the
    values the latest build that recorded them kept (``values`` and ``run_id`` null when
    none did). The store is read only when a target declares metrics."""
    names = [n for n, t in ws.graph.targets.items() if t.metrics]
    last: dict[tuple[str, str], tuple[int, dict[str, float]]] = {}
    for run_id, target, key, value in ws.store.metrics_history(names) if names else []:
        path, _, name = key.partition(":")
        seen = last.get((target, path))
        if seen is None or seen[0] != run_id:  # oldest first: a later run replaces
            seen = last[(target, path)] = (run_id, {})
        seen[1][name] = value
    for item in doc["targets"]:
        item["metrics"] = [
            {"path": rel, "run_id": last.get((item["name"], rel), (None, None))[0],
             "values": last.get((item["name"], rel), (None, None))[1]}
            for rel in ws.graph.targets[item["name"]].metrics]
    return doc


def _metric_json(m: Metric) -> dict[str, Any]:
    change = None if m.value is None or m.previous is None else m.value - m.previous
    return {"target": m.target, "path": m.path, "name": m.name, "value": m.value,
            "previous": m.previous, "previous_run": m.previous_run,
            "change": None if change is None else round(change, 12)}


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def current_lines(found: list[Metric]) -> list[str]:
    lines: list[str] = []
    width = max((len(m.name) for m in found), default=0)
    shown: tuple[str, str] | None = None
    for m in found:
        if (m.target, m.path) != shown:
            shown = (m.target, m.path)
            lines.append(f"{m.target} ({m.path})")
        change = ""
        if m.value is not None and m.previous is not None:
            delta = m.value - m.previous
            change = (f"  {'+' if delta >= 0 else '-'}{_number(abs(delta))}"
                      f" (was {_number(m.previous)} in run {m.previous_run})")
        elif m.value is None:
            change = "  (not in the file now)"
        lines.append(f"  {m.name:<{width}}  {_number(m.value)}{change}")
    return lines


def history_lines(ws: Any, names: list[str], history: list[tuple[int, str, str, float]]
                  ) -> list[str]:
    """Per target, one row per build that recorded its metrics, one column per metric."""
    lines: list[str] = []
    for name in names:
        order = {path: i for i, path in enumerate(ws.graph.targets[name].metrics)}
        mine = sorted(((r, k, v) for r, t, k, v in history if t == name),
                      key=lambda row: (order.get(row[1].partition(":")[0], len(order)), row[1]))
        rows = [(r, k.partition(":")[2], v) for r, k, v in mine]
        if not rows:
            lines.append(f"{name}: no metrics recorded yet")
            continue
        keys = list(dict.fromkeys(k for _, k, _ in rows))  # by file as declared, then name
        runs = sorted({r for r, _, _ in rows})
        table = [["run", *keys]] + [[str(run), *(_number(next(
            (v for r, k, v in rows if r == run and k == key), None)) for key in keys)]
            for run in runs]
        widths = [max(len(row[i]) for row in table) for i in range(len(keys) + 1)]
        lines.append(f"{name}:")
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in table]
    return lines
