"""`flowmake accept TARGET...`: record targets as fresh as they are, without running them.

For the change the user knows is harmless (a reworded comment in a script, a reformatted
command): the key is computed from the current command, params, env, inputs and code, and
the outputs are digested as they are on disk. Every named target is checked before any is
recorded, so a refused accept changes nothing. The accept is kept in the history as a
build of its own, with status ``accepted`` for each target.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from flowmake.cli.workspace import Workspace
from flowmake.errors import FlowmakeError
from flowmake.model import OutcomeStatus, RunResult
from flowmake.plan.check import Checker
from flowmake.store.db import Record
from flowmake.store.leftovers import writing_lock


class CannotAccept(FlowmakeError):
    """A target cannot be recorded fresh: an input or an output is missing (exit 2)."""


def accept_command(ws: Workspace, args: argparse.Namespace) -> int:
    """Check every named target, then write their records in one history entry."""
    try:
        names = ws.graph.order(ws.graph.select(args.targets))
        with writing_lock(ws.store, ws.project.state_dir) as dead_runs:
            changed: dict[str, Record | None] = dict(ws.store.records_of_runs(dead_runs))
            checker = ws.checker()
            records = [accepted_record(checker, name) for name in names]
            run_id = ws.store.start_run("flowmake accept " + " ".join(args.targets))
            for record in records:
                ws.store.finish_target(run_id, record.target, "accepted", 0.0, [], "",
                                       _with_run(record, run_id))
            counts = {**{str(s): 0 for s in OutcomeStatus}, "accepted": len(records)}
            ws.store.finish_run(run_id, RunResult.SUCCESS, counts, ws.project.settings.history)
            ws.sync_lock({**changed, **{r.target: _with_run(r, run_id) for r in records}})
            ws.save_stats()
    finally:
        ws.close()
    if not args.quiet:
        for name in names:
            print(f"accepted {name}")
        print(f"flowmake: {len(names)} target(s) recorded fresh without running (run {run_id})",
              file=sys.stderr)
    return 0


def accepted_record(checker: Checker, name: str) -> Record:
    """The record ``name`` would have after a build that produced what is on disk now."""
    target = checker.graph.targets[name]
    parts, missing = checker.parts(target)
    if parts is None:
        raise CannotAccept(f"cannot accept '{name}': input '{missing[0]}' does not exist",
                           hint="build its upstream first, or accept only targets whose "
                                "inputs exist")
    outputs: dict[str, str] = {}
    for output in target.outputs:
        digest = checker.hasher.digest(output.path)
        if digest is None:
            raise CannotAccept(f"cannot accept '{name}': output '{output.path}' is missing",
                               hint=f"build it instead: `flowmake build '{name}'`")
        outputs[output.path] = digest
    previous = checker.records.get(name)
    duration = previous.duration if previous is not None else 0.0  # keep the real cost known
    return Record(name, Checker.key(parts), json.dumps(parts), json.dumps(outputs),
                  None, time.time(), duration)


def _with_run(record: Record, run_id: int) -> Record:
    return Record(record.target, record.key, record.parts_json, record.outputs_json, run_id,
                  record.built_at, record.duration)
