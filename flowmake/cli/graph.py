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
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from flowmake.cli import cone, graphfresh, graphtails, graphtexts
from flowmake.cli.workspace import Workspace
from flowmake.config.values import printable
from flowmake.graph import Graph
from flowmake.model import Input, Output, Target, TargetStatus
from flowmake.report import jsonout
from flowmake.report.page import render_page, write_output

FORMATS = ("text", "mermaid", "dot", "json", "html")
UNCHECKED = graphfresh.UNCHECKED


def graph_command(ws: Workspace, args: argparse.Namespace, found: Any = UNCHECKED) -> int:
    """Render the selected targets and their upstream (every target when none is named);
    ``found``: the no-op fast path's answer, if asked already (``plan_states``)."""
    try:
        names = ws.graph.order(ws.graph.closure(ws.graph.select(args.targets)
                                                if args.targets else ws.graph.targets))
        fmt = args.format
        if fmt == "json" and not args.output:  # written as it is made: one node at a time
            jsonout.dump(graph_json(ws, names, plan_states(ws, args, names, found)),
                         sys.stdout.write)
            sys.stdout.write("\n")
            return 0
        if fmt in ("json", "html"):
            doc = graph_json(ws, names, plan_states(ws, args, names, found))
            doc["nodes"], doc["edges"] = (json.loads("[" + doc[k].joined(",") + "]")
                                          for k in ("nodes", "edges"))
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

States = graphtails.States


def plan_states(ws: Workspace, args: argparse.Namespace, names: list[str],
                found: Any = UNCHECKED) -> States:
    """None if nothing changed since an all-fresh build or status of these very targets
    (the fast path's stats say so: no fingerprint is computed), else the Checker's plan.
    ``found``: the fast path's answer, when cli/graphfresh.py has asked already."""
    from flowmake import fastpath
    from flowmake.cli.noop import fresh_answer

    if found is UNCHECKED:
        found = fresh_answer(str(ws.path), args.param, args.targets)
    # (names joined, count, ...): the snapshot's targets must be these very ones
    if found is not None and found[1] == len(names) and (
            not names or set(found[0].split(fastpath.SEP)) == set(names)):
        return None
    # After an edit or a cone build: only the cone is checked, as `status` does it.
    _, checker, fresh = cone.checked_fresh(
        ws, cone.Selection(tuple(args.param), tuple(args.targets)), set(names))
    if fresh:
        return None
    steps = {s.name: s for s in checker.plan(names).steps}
    ws.save_stats()
    return steps


def graph_json(ws: Workspace, names: list[str], states: States) -> dict[str, Any]:
    """Nodes with their state, reasons and last durations; edges upstream → downstream.
    The nodes and edges come as generators of their JSON text, made one by one as the
    document is written (``jsonout.dump``)."""
    counts = dict.fromkeys(TargetStatus, 0)
    if states is None:
        counts[TargetStatus.FRESH] = len(names)
    else:
        for step in states.values():
            counts[step.state] += 1
    tails: Iterable[str] | None = None
    if len(names) == len(ws.graph.targets):  # all of them: the flow's parts as saved
        state_dir = str(ws.project.state_dir)
        flags, statics, edges = graphtexts.load(
            state_dir, ws.compiled, names, lambda: _flow_texts(ws.graph, names))
        if states is None and ws.compiled is not None and names:
            tails = graphtails.kept(ws.store, state_dir, ws.compiled, names, flags)
    else:
        chosen = set(names)
        flags = _flags(ws.graph, names)
        statics = _statics(ws.graph, names, chosen)
        edges = _edge_texts(ws.graph, names)
    if tails is None:
        tails = graphtails.tails(ws.store, names, states, flags)
    return graphfresh.document(str(ws.root), counts, statics, tails, edges)


def _flow_texts(graph: Graph, names: list[str]) -> graphtexts.Made:
    return _flags(graph, names), list(_statics(graph, names, None)), list(
        _edge_texts(graph, names))


def _flags(graph: Graph, names: list[str]) -> str:
    """``A`` for each always target, ``-`` for each other one, in the order of ``names``."""
    return "".join("A" if graph.targets[n].always else "-" for n in names)


def _edge_texts(graph: Graph, names: list[str]) -> Iterator[str]:
    return (f'{{"from": {jsonout.string(a)}, "to": {jsonout.string(b)}}}'
            for a, b in _edges(graph, names))


def _statics(graph: Graph, names: list[str], chosen: set[str] | None) -> Iterator[str]:
    """Each node's text up to its state: what the flow alone decides (``chosen``: the
    targets shown, None when all are)."""
    depth: dict[str, int] = {}
    for name in names:  # topological order: every upstream's depth is known already
        ups = _within(graph.upstream[name], chosen)
        depth[name] = 1 + max([depth[u] for u in ups]) if ups else 0
    compact = json.JSONEncoder().encode
    for name in names:
        yield _static(graph, graph.targets[name], depth[name], chosen, compact)


def _within(names: tuple[str, ...], chosen: set[str] | None) -> Sequence[str]:
    return names if chosen is None else [n for n in names if n in chosen]


def _static(graph: Graph, target: Target, depth: int, chosen: set[str] | None,
            compact: Callable[[Any], str]) -> str:
    """A node's text up to its state, as the compact JSON encoder writes an object, without
    making the object (at 100,000 targets, making each dict and encoding it took most of
    the command)."""
    string, strings = jsonout.string, jsonout.strings
    name, project = target.name, target.project_params
    params = compact({**target.params, **{f"params.{k}": v for k, v in project.items()}}
                     if project else target.params) if project or target.params else "{}"
    return (
        f'{{"name": {string(name)}, "kind": {string(target.kind)}, '
        f'"matrix": {"null" if target.matrix is None else string(target.matrix)}, '
        f'"help": {string(target.help)}, "action": {string(target.action.text)}, '
        f'"params": {params}, "inputs": {_paths(target.inputs)}, '
        f'"outputs": {_paths(target.outputs)}, '
        f'"upstream": {strings(_within(graph.upstream[name], chosen))}, '
        f'"downstream": {strings(_within(graph.downstream[name], chosen))}, '
        f'"depth": {depth}, "state": ')


def _paths(items: Sequence[Input | Output]) -> str:
    if len(items) == 1:
        return "[" + jsonout.string(items[0].path) + "]"
    return jsonout.strings([i.path for i in items])


# -- HTML -------------------------------------------------------------------------------


def render_html(doc: dict[str, Any]) -> str:
    """The self-contained page: the template with styles, script and data inlined.

    One substitution pass, so text from the data can never be taken for a marker.
    """
    return render_page("graph", f"flowmake graph — {doc['project']}", doc)
