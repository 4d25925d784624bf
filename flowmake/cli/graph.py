"""`flowmake graph`: the DAG as a text tree, Mermaid, Graphviz dot, JSON or an HTML page.

Text, Mermaid and dot show the structure only (no file is read, so they are instant on
any project). JSON and HTML also carry each target's state (fresh / stale / restorable,
with reasons, from the same Checker as ``status``) and its last durations from the
history. The HTML page is self-contained: the data, the layout code (``assets/graph.js``,
a layered Sugiyama-style layout) and the styles are inlined, so it works offline and can
be attached to a CI run as one file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from flowmake.cli.workspace import Workspace
from flowmake.config.values import printable
from flowmake.graph import Graph
from flowmake.model import OutcomeStatus, TargetStatus
from flowmake.plan.check import Step
from flowmake.report import jsonout
from flowmake.report.history import iso
from flowmake.report.page import render_page, write_output

FORMATS = ("text", "mermaid", "dot", "json", "html")


def graph_command(ws: Workspace, args: argparse.Namespace) -> int:
    """Render the selected targets and their upstream (every target when none is named)."""
    try:
        names = ws.graph.order(ws.graph.closure(ws.graph.select(args.targets)
                                                if args.targets else ws.graph.targets))
        fmt = args.format
        if fmt in ("json", "html"):
            doc = graph_json(ws, names)
            text = render_html(doc) if fmt == "html" else jsonout.dumps(doc) + "\n"
        else:
            render = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}[fmt]
            text = render(ws.graph, names)
    finally:
        ws.close()
    # A folder name with undecodable bytes (in the page's title, say) prints as U+FFFD.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if args.output:
        path = Path(args.directory or ".") / args.output
        write_output(path, text)
        if not args.quiet:
            print(f"flowmake: wrote {printable(str(path))} ({len(names)} targets, {fmt})",
                  file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _edges(graph: Graph, names: list[str]) -> list[tuple[str, str]]:
    chosen = set(names)
    return [(up, name) for name in names for up in graph.upstream[name] if up in chosen]


# -- text -------------------------------------------------------------------------------


def render_text(graph: Graph, names: list[str]) -> str:
    """Each final target with its upstream as a tree; a subtree already drawn is elided."""
    chosen = set(names)
    roots = [n for n in graph.targets  # declared order, like `list`
             if n in chosen and not any(d in chosen for d in graph.downstream[n])]
    lines: list[str] = []
    drawn: set[str] = set()
    # Depth first with a stack, not recursion: a chain of 5,000 deps is 5,000 levels deep.
    stack = [(root, "", True, 0) for root in reversed(roots)]
    while stack:
        name, prefix, last, depth = stack.pop()
        ups = [u for u in graph.upstream[name] if u in chosen]
        branch = "" if depth == 0 else ("└── " if last else "├── ")
        repeat = name in drawn and ups
        lines.append(f"{prefix}{branch}{name}" + (" (upstream drawn above)" if repeat else ""))
        if repeat:
            continue
        drawn.add(name)
        inner = prefix + ("" if depth == 0 else ("    " if last else "│   "))
        stack.extend((up, inner, i == len(ups) - 1, depth + 1)
                     for i, up in reversed(list(enumerate(ups))))
    return "\n".join(lines) + "\n"


# -- mermaid ----------------------------------------------------------------------------


def _mermaid_label(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def render_mermaid(graph: Graph, names: list[str]) -> str:
    """A ``flowchart LR``; each matrix is a subgraph of its instances."""
    ids = {name: f"t{i}" for i, name in enumerate(names)}
    lines = ["flowchart LR"]
    for matrix, members in _matrices(graph, names).items():
        lines.append(f"  subgraph m{len(lines)}[{_mermaid_label(matrix)}]")
        lines += [f"    {ids[n]}[{_mermaid_label(n)}]" for n in members]
        lines.append("  end")
    lines += [f"  {ids[n]}[{_mermaid_label(n)}]" for n in names if not graph.targets[n].matrix]
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in _edges(graph, names)]
    return "\n".join(lines) + "\n"


def _matrices(graph: Graph, names: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in names:
        matrix = graph.targets[name].matrix
        if matrix:
            found.setdefault(matrix, []).append(name)
    return found


# -- dot --------------------------------------------------------------------------------


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(graph: Graph, names: list[str]) -> str:
    """A Graphviz digraph, left to right; each matrix is a cluster of its instances."""
    lines = ["digraph flowmake {", "  rankdir=LR;",
             '  node [shape=box, style=rounded, fontname="Helvetica"];']
    for i, (matrix, members) in enumerate(_matrices(graph, names).items()):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_dot_id(matrix)}; style=dashed;")
        lines += [f"    {_dot_id(n)};" for n in members]
        lines.append("  }")
    for name in names:
        target = graph.targets[name]
        if not target.matrix:
            tip = f" [tooltip={_dot_id(target.help)}]" if target.help else ""
            lines.append(f"  {_dot_id(name)}{tip};")
    lines += [f"  {_dot_id(a)} -> {_dot_id(b)};" for a, b in _edges(graph, names)]
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- JSON (with states) -----------------------------------------------------------------


def graph_json(ws: Workspace, names: list[str]) -> dict[str, Any]:
    """Nodes with their state, reasons and last durations; edges upstream → downstream."""
    graph = ws.graph
    steps = {s.name: s for s in ws.checker().plan(names).steps}
    ws.save_stats()
    records = ws.store.records(names)
    last = ws.store.last_runs()
    chosen = set(names)
    depth: dict[str, int] = {}
    for name in names:  # topological order: every upstream's depth is known already
        depth[name] = 1 + max((depth[u] for u in graph.upstream[name] if u in chosen), default=-1)
    nodes = [_node(graph, steps[n], depth[n], records.get(n), last.get(n), chosen) for n in names]
    for node in nodes:
        if node["display"] == "failed":
            node["last_failure"] = _last_failure(ws, node["name"])
    counts = {state: sum(1 for n in nodes if n["state"] == state)
              for state in TargetStatus}
    return {"project": ws.root.name, "root": str(ws.root), "counts": counts,
            "nodes": nodes, "edges": [{"from": a, "to": b} for a, b in _edges(graph, names)]}


def _node(graph: Graph, step: Step, depth: int, record: Any, last: tuple[int, str, float] | None,
          chosen: set[str]) -> dict[str, Any]:
    target = step.target
    return {
        "name": target.name, "kind": target.kind, "matrix": target.matrix, "help": target.help,
        "action": target.action.text, "params": {**target.params, **{
            f"params.{k}": v for k, v in target.project_params.items()}},
        "inputs": [i.path for i in target.inputs], "outputs": [o.path for o in target.outputs],
        "upstream": [u for u in graph.upstream[target.name] if u in chosen],
        "downstream": [d for d in graph.downstream[target.name] if d in chosen],
        "depth": depth, "state": step.state.value, "reasons": [str(r) for r in step.reasons],
        "always": target.always, "display": _display(step, last),
        "last_run": None if last is None else {
            "run_id": last[0], "status": last[1], "duration": round(last[2] or 0.0, 4)},
        "last_built": None if record is None else {
            "run_id": record.run_id, "at": record.built_at, "built": iso(record.built_at),
            "duration": round(record.duration or 0.0, 4)},
    }


def _display(step: Step, last: tuple[int, str, float] | None) -> str:
    """How the page draws a target: ``failed`` when its latest build failed it and it is
    not fresh since, ``always`` for an always target, else its state."""
    if step.state is not TargetStatus.FRESH and last is not None \
            and last[1] == OutcomeStatus.FAILED:
        return "failed"
    return "always" if step.target.always else step.state.value


FAILURE_LINES = 40  # of a failed target's captured output, on the page


def _last_failure(ws: Workspace, name: str) -> dict[str, Any] | None:
    """The run that failed the target and the end of what it printed (its error)."""
    for run_id, status, duration, _, output in ws.store.target_history(name, 1):
        if status == OutcomeStatus.FAILED:
            run = ws.store.run(run_id)
            lines = (output or "").rstrip("\n").splitlines()
            return {"run_id": run_id, "started": iso(run.started) if run else None,
                    "duration": round(duration or 0.0, 4),
                    "output": "\n".join(lines[-FAILURE_LINES:]),
                    "truncated": len(lines) > FAILURE_LINES}
    return None


# -- HTML -------------------------------------------------------------------------------


def render_html(doc: dict[str, Any]) -> str:
    """The self-contained page: the template with styles, script and data inlined.

    One substitution pass, so text from the data can never be taken for a marker.
    """
    return render_page("graph", f"flowmake graph — {doc['project']}", doc)
