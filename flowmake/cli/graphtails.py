"""The part of each node of `graph --format json` after its state: what the records and
the latest runs say (its state, last run, last build), written as JSON text from the
store's rows alone. The Targets are never looked at: `graph`'s all-fresh answer
(cli/graphfresh.py) writes these without loading the flow, and in a resident server's
fork touching 100,000 Targets would copy the pages they are on.

For an all-fresh graph of every target they are kept in ``.flowmake/graph.states``
(cli/graphstates.py) and, after a build, only those of the targets it changed are made
again (``kept``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from flowmake.cli import graphstates
from flowmake.model import OutcomeStatus, TargetStatus
from flowmake.report import jsonout
from flowmake.report.history import iso

if TYPE_CHECKING:
    from flowmake.plan.check import Step
    from flowmake.store.db import Store

# Each target's state and reasons, by name (the Checker's plan); None when the no-op fast
# path vouches that every target is fresh, with no reason (cli/noop.py, as `status`).
States = dict[str, "Step"] | None

# Kept tails are patched when at most one target in PATCH_SHARE (or PATCH_FEW targets)
# changed since they were made; past that, reading every row at once is as quick as
# reading those by name.
PATCH_SHARE, PATCH_FEW = 8, 64

FAILURE_LINES = 40  # of a failed target's captured output, on the page


def kept(store: Store, state_dir: str, stamp: int, names: list[str],
         flags: str) -> Iterable[str] | None:
    """The tails of an all-fresh graph of every target (``names``, in the order of the
    compiled flow ``stamp``): as kept, when they were made at this very state
    (cli/graphstates.py); those of the targets changed since made again, when a few
    changed; else made and kept as they are written. None when the state has no change
    log (read-only)."""
    log = store.change_log()  # before the rows are read
    if log is None:
        return None
    want = graphstates.key(stamp, len(names), *log)
    found = graphstates.load(state_dir, want)
    if found is not None:
        tails_then, made_at = found
        if made_at == log[1]:
            return tails_then
        changed = store.changed_since(made_at)
        if len(changed) <= max(len(names) // PATCH_SHARE, PATCH_FEW):
            patched = _patched(store, names, flags, tails_then, changed)
            graphstates.save(state_dir, want, patched)
            return patched
    return graphstates.saving(tails(store, names, None, flags),
                              lambda made: graphstates.save(state_dir, want, made))


def _patched(store: Store, names: list[str], flags: str, kept_tails: list[str],
             changed: list[str]) -> list[str]:
    """``kept_tails`` (not changed in place: a resident server's copy) with those of the
    targets ``changed`` made again from their rows now."""
    where = {name: i for i, name in enumerate(names)}
    at = sorted(where[n] for n in set(changed) if n in where)  # (a target gone: ignored)
    mine = [names[i] for i in at]
    patched = list(kept_tails)
    made = tails(store, mine, None, "".join(flags[i] for i in at), rows_of=mine)
    for i, tail in zip(at, made, strict=True):
        patched[i] = tail
    return patched


def tails(store: Store, names: list[str], states: States, flags: str,
          rows_of: list[str] | None = None) -> Iterator[str]:
    """Each node's JSON text after its static part (cli/graph.py's ``_statics``), made as
    it is written: its state and records, in the order of ``names`` (``flags``: ``A``
    for an always target; ``rows_of``: read only these targets' rows, when ``names`` are
    a few)."""
    built = store.built(rows_of)
    last = store.last_runs(rows_of)
    compact = json.JSONEncoder().encode
    fresh = {"A": '"fresh", "reasons": [], "always": true, "display": "always"',
             "-": '"fresh", "reasons": [], "always": false, "display": "fresh"'}
    string, number, iso_json, seconds = jsonout.string, jsonout.number, iso_text, seconds_text
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
            text = text[:-1] + ', "last_failure": ' + compact(_last_failure(store, name)) + "}"
        yield text


def seconds_text(value: float | None) -> str:
    """``round(value or 0.0, 4)`` as JSON: the same digits (both round the double's exact
    value to 4 places, and up to 15 digits name one double, which repr then writes
    back), without round()'s second conversion: 330 -> 140 ns."""
    if not value:
        return "0.0"
    if type(value) is not float or not -1e10 < value < 1e10:  # an int; more digits
        return repr(round(value, 4))  # than a double holds exactly; nan
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text[-1] == "." else text


ISO_SECONDS: dict[int, tuple[str, str]] = {}  # a whole second: its text, its UTC offset


def iso_text(ts: float | None) -> str:
    """``report.history.iso(ts)`` as JSON, the date, time and offset of each second made
    once (the builds of a large project share them): 1.3 -> 0.3 us."""
    if ts is None:
        return "null"
    seconds = math.floor(ts)
    micros = round((ts - seconds) * 1e6)  # as datetime.fromtimestamp rounds it
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    found = ISO_SECONDS.get(seconds)
    if found is None:
        text = iso(seconds) or ""  # "2024-05-01T12:00:03.000+02:00"
        found = ISO_SECONDS[seconds] = (text[:19], text[23:])
    return f'"{found[0]}.{micros // 1000:03d}{found[1]}"'


def _display(step: Step, last: tuple[int, str, float] | None) -> str:
    """How the page draws a target: ``failed`` when its latest build failed it and it is
    not fresh since, ``always`` for an always target, else its state."""
    if step.state is not TargetStatus.FRESH and last is not None \
            and last[1] == OutcomeStatus.FAILED:
        return "failed"
    return "always" if step.target.always else step.state.value


def _last_failure(store: Store, name: str) -> dict[str, Any] | None:
    """The run that failed the target and the end of what it printed (its error)."""
    for run_id, status, duration, _, output in store.target_history(name, 1):
        if status == OutcomeStatus.FAILED:
            run = store.run(run_id)
            lines = (output or "").rstrip("\n").splitlines()
            return {"run_id": run_id, "started": iso(run.started) if run else None,
                    "duration": round(duration or 0.0, 4),
                    "output": "\n".join(lines[-FAILURE_LINES:]),
                    "truncated": len(lines) > FAILURE_LINES}
    return None
