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
import itertools
import json
import math
import operator
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from flowmake.cli import cone, graphstates, graphtexts
from flowmake.cli.workspace import Workspace
from flowmake.config.values import printable
from flowmake.graph import Graph
from flowmake.model import Input, OutcomeStatus, Output, Target, TargetStatus
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
        if fmt == "json" and not args.output:  # written as it is made: one node at a time
            jsonout.dump(graph_json(ws, names, plan_states(ws, args, names)), sys.stdout.write)
            sys.stdout.write("\n")
            return 0
        if fmt in ("json", "html"):
            doc = graph_json(ws, names, plan_states(ws, args, names))
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

# Each target's state and reasons, by name (the Checker's plan); None when the no-op fast
# path vouches that every target is fresh, with no reason (cli/noop.py, as `status`).
States = dict[str, Step] | None


def plan_states(ws: Workspace, args: argparse.Namespace, names: list[str]) -> States:
    """None if nothing changed since an all-fresh build or status of these very targets
    (the fast path's stats say so: no fingerprint is computed), else the Checker's plan."""
    from flowmake import fastpath
    from flowmake.cli.noop import fresh_answer

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
            state_dir, ws.compiled, len(names), lambda: _flow_texts(ws.graph, names))
        if states is None and ws.compiled is not None and names:
            tails = _kept_tails(ws, state_dir, ws.compiled, names, flags)
    else:
        chosen = set(names)
        flags = _flags(ws.graph, names)
        statics = _statics(ws.graph, names, chosen)
        edges = _edge_texts(ws.graph, names)
    if tails is None:
        tails = _tails(ws, names, states, flags)
    return {"project": ws.root.name, "root": str(ws.root), "counts": counts,
            # strict: the tails are read to their end (graphstates.saving keeps them then)
            "nodes": jsonout.Texts(jsonout.blocks(
                itertools.starmap(operator.add, zip(statics, tails, strict=True)))),
            "edges": jsonout.Texts(edges)}


def _kept_tails(ws: Workspace, state_dir: str, stamp: int, names: list[str],
                flags: str) -> Iterable[str] | None:
    """The nodes' tails of an all-fresh graph of every target: as kept, when they were
    made at this very state (cli/graphstates.py); those of the targets changed since made
    again, when a few changed; else made and kept as they are written. None when the
    state has no change log (read-only)."""
    log = ws.store.change_log()  # before the rows are read
    if log is None:
        return None
    want = graphstates.key(stamp, len(names), *log)
    kept = graphstates.load(state_dir, want)
    if kept is not None:
        tails, made_at = kept
        if made_at == log[1]:
            return tails
        changed = ws.store.changed_since(made_at)
        if len(changed) <= max(len(names) // PATCH_SHARE, PATCH_FEW):
            patched = _patched(ws, names, flags, tails, changed)
            graphstates.save(state_dir, want, patched)
            return patched
    return graphstates.saving(_tails(ws, names, None, flags),
                              lambda made: graphstates.save(state_dir, want, made))


# Kept tails are patched when at most one target in PATCH_SHARE (or PATCH_FEW targets)
# changed since they were made; past that, reading every row at once is as quick as
# reading those by name.
PATCH_SHARE, PATCH_FEW = 8, 64


def _patched(ws: Workspace, names: list[str], flags: str, tails: list[str],
             changed: list[str]) -> list[str]:
    """``tails`` (kept, not changed in place: a resident server's copy) with those of the
    targets ``changed`` made again from their rows now."""
    where = {name: i for i, name in enumerate(names)}
    at = sorted(where[n] for n in set(changed) if n in where)  # (a target gone: ignored)
    mine = [names[i] for i in at]
    patched = list(tails)
    made = _tails(ws, mine, None, "".join(flags[i] for i in at), rows_of=mine)
    for i, tail in zip(at, made, strict=True):
        patched[i] = tail
    return patched


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


def _tails(ws: Workspace, names: list[str], states: States, flags: str,
           rows_of: list[str] | None = None) -> Iterator[str]:
    """Each node's JSON text after its static part (``_statics``), made as it is written:
    its state and records, in the order of ``names`` (``flags``: ``A`` for an always
    target; ``rows_of``: read only these targets' rows, when ``names`` are a few). The
    Targets themselves are not looked at: in a resident server's fork, touching 100,000
    of them would copy the pages they are on."""
    built = ws.store.built(rows_of)
    last = ws.store.last_runs(rows_of)
    compact = json.JSONEncoder().encode
    fresh = {"A": '"fresh", "reasons": [], "always": true, "display": "always"',
             "-": '"fresh", "reasons": [], "always": false, "display": "fresh"'}
    string, number, iso_json, seconds = jsonout.string, jsonout.number, _iso, _seconds
    statuses: dict[str, str] = {}  # a run's status as JSON (a handful of them)
    for name, flag in zip(names, flags, strict=True):
        run = last.get(name)
        failed = False
        if states is None:
            state = fresh[flag]
        else:
            step = states[name]
            display = _display(step, run)
            failed = display == "failed"
            state = (f'{string(step.state.value)}, '
                     f'"reasons": {jsonout.strings([str(r) for r in step.reasons])}, '
                     f'"always": {"true" if flag == "A" else "false"}, '
                     f'"display": {string(display)}')
        # the last run and the record's build (inline: 100,000 calls fewer)
        if run is None:
            lr = "null"
        else:
            status = statuses.get(run[1])
            if status is None:
                status = statuses[run[1]] = string(run[1])
            lr = (f'{{"run_id": {number(run[0])}, "status": {status}, '
                  f'"duration": {seconds(run[2])}}}')
        b = built.get(name)
        lb = "null" if b is None else (
            f'{{"run_id": {number(b[0])}, "at": {number(b[1])}, '
            f'"built": {iso_json(b[1])}, "duration": {seconds(b[2])}}}')
        text = f'{state}, "last_run": {lr}, "last_built": {lb}}}'
        if failed:
            text = text[:-1] + ', "last_failure": ' + compact(_last_failure(ws, name)) + "}"
        yield text


def _seconds(value: float | None) -> str:
    """``round(value or 0.0, 4)`` as JSON: the same digits (both round the double's exact
    value to 4 places, and up to 15 digits name one double, which repr then writes
    back), without round()'s second conversion: 330 -> 140 ns."""
    if not value:
        return "0.0"
    if type(value) is not float or not -1e10 < value < 1e10:  # an int; more digits
        return repr(round(value, 4))  # than a double holds exactly; nan
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text[-1] == "." else text


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


_ISO_SECONDS: dict[int, tuple[str, str]] = {}  # a whole second: its text, its UTC offset


def _iso(ts: float | None) -> str:
    """``report.history.iso(ts)`` as JSON, the date, time and offset of each second made
    once (the builds of a large project share them): 1.3 -> 0.3 us."""
    if ts is None:
        return "null"
    seconds = math.floor(ts)
    micros = round((ts - seconds) * 1e6)  # as datetime.fromtimestamp rounds it
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    found = _ISO_SECONDS.get(seconds)
    if found is None:
        text = iso(seconds) or ""  # "2024-05-01T12:00:03.000+02:00"
        found = _ISO_SECONDS[seconds] = (text[:19], text[23:])
    return f'"{found[0]}.{micros // 1000:03d}{found[1]}"'


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
