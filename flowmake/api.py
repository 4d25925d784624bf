"""The Python API (SPEC §9): ``build``, ``status`` and ``load`` with the CLI's semantics.

Each call opens the project as the command does (``cli.parser.open_workspace``), takes the same lock
and leaves the same records, history and flow.lock. Nothing prints unless ``live=True``
(plain lines on stderr: no live view in Jupyter).
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from flowmake.errors import BuildFailed, UnknownTargetError
from flowmake.model import OutcomeStatus, RunResult, TargetStatus


class TargetResult(NamedTuple):
    """What one build did to one target."""

    status: OutcomeStatus  # built | restored | fresh | failed | skipped
    duration: float
    reasons: list[str]
    error: str | None


class BuildResult(NamedTuple):
    """The result of :func:`build`; a failed target makes ``ok`` False (no exception)."""

    run_id: int | None
    result: RunResult  # success | failed | interrupted
    targets: dict[str, TargetResult]

    @property
    def ok(self) -> bool:
        return self.result == RunResult.SUCCESS

    def raise_for_failure(self) -> None:
        """Raise :class:`flowmake.errors.BuildFailed` unless the build succeeded."""
        if not self.ok:
            failed = [n for n, t in self.targets.items() if t.status == OutcomeStatus.FAILED]
            skipped = [n for n, t in self.targets.items() if t.status == OutcomeStatus.SKIPPED]
            raise BuildFailed(failed or [f"(build {self.result})"], skipped)


class TargetState(NamedTuple):
    """One target's state as ``flowmake status`` shows it."""

    state: TargetStatus  # fresh | stale | restorable
    reasons: list[str]
    source: str | None  # where its record came from (record, lock), None: no record
    upstream: list[str]


class StatusResult(Mapping[str, TargetState]):
    """Target name → :class:`TargetState`, in build order."""

    def __init__(self, states: dict[str, TargetState]) -> None:
        self._states = states

    def __getitem__(self, name: str) -> TargetState:
        return self._states[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    @property
    def fresh(self) -> bool:
        return all(s.state == TargetStatus.FRESH for s in self._states.values())

    def __repr__(self) -> str:
        return f"StatusResult({self._states!r})"


def toml_literal(value: Any) -> str:
    """``value`` as the TOML literal ``-p NAME=VALUE`` reads back as the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        import json

        return json.dumps(value)  # a TOML basic string: the same escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        import json

        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_literal(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"param value {value!r}: expected a TOML value (str, int, float, bool,"
                    f" list or dict), got {type(value).__name__}")


def _names(targets: str | list[str] | None) -> tuple[str, ...]:
    return (targets,) if isinstance(targets, str) else tuple(targets or ())


def _overrides(params: Mapping[str, Any] | None) -> tuple[str, ...]:
    """``params`` as the ``-p NAME=VALUE`` the command line would give."""
    return tuple(f"{name}={toml_literal(value)}" for name, value in (params or {}).items())


def _directory(project: str | Path) -> str | None:
    # The default "." finds flow.toml here or above, as the bare command does; any other
    # folder is `-C DIR`.
    return None if str(project) == "." else str(project)


def _open(targets: str | list[str] | None, params: Mapping[str, Any] | None,
          project: str | Path) -> Any:
    from flowmake.cli.parser import open_workspace

    return open_workspace(_directory(project), None, _overrides(params), _names(targets))


def build(targets: str | list[str] | None = None, *, params: Mapping[str, Any] | None = None,
          jobs: int | None = None, keep_going: bool = False, force: bool = False,
          project: str | Path = ".", live: bool = False) -> BuildResult:
    """``flowmake build``: build ``targets`` (default: ``[flow].default``, else all)."""
    from flowmake.cli.build import build_command
    from flowmake.cli.main import MAX_JOBS, BuildSink
    from flowmake.errors import UsageError
    from flowmake.options import BuildOptions

    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int)
                             or not 1 <= jobs <= MAX_JOBS):
        raise UsageError(f"jobs must be between 1 and {MAX_JOBS}, got {jobs}")
    options = BuildOptions(
        targets=_names(targets), params=_overrides(params), directory=_directory(project),
        jobs=jobs, keep_going=keep_going, force=force, no_color=True,
        stream=sys.stderr if live else io.StringIO())
    shown = [repr(targets)] if targets else []
    command = "flowmake.build(" + ", ".join(shown + ([f"params={dict(params)!r}"] if params
                                                      else [])) + ")"
    if not force:
        done = _noop(options, command)
        if done is not None:
            return done
    sink = BuildSink()
    build_command(options, command, sink)
    summary = sink.summary
    return BuildResult(summary.run_id, summary.result, {
        name: TargetResult(o.status, o.duration, list(o.reasons), o.error)
        for name, o in summary.outcomes.items()})


def _noop(options: Any, command: str) -> BuildResult | None:
    """The no-op fast path, as ``flowmake build`` takes it: an all-fresh build answered
    from the saved stats (its run recorded, every target fresh); None when it does not
    hold. Not with a CI summary to write (GITHUB_STEP_SUMMARY), as the command."""
    import os

    from flowmake.cli.noop import noop_build
    from flowmake.cli.parser import flow_file

    if "GITHUB_STEP_SUMMARY" in os.environ:
        return None
    found = noop_build(flow_file(options.directory, None), list(options.params),
                       list(options.targets), command)
    if found is None:
        return None
    names, run_id = found
    if options.stream is sys.stderr:  # live: the summary line the command prints
        from flowmake.report.live import format_summary

        counts = {"built": 0, "restored": 0, "fresh": len(names), "failed": 0, "skipped": 0}
        print(format_summary("success", counts, 0.0, run_id), file=sys.stderr)
    fresh = TargetResult(OutcomeStatus.FRESH, 0.0, [], None)
    return BuildResult(run_id, RunResult.SUCCESS, dict.fromkeys(names, fresh))


def status(targets: str | list[str] | None = None, *, params: Mapping[str, Any] | None = None,
           project: str | Path = ".") -> StatusResult:
    """``flowmake status``: each selected target and its upstream, with state and reasons."""
    ws = _open(targets, params, project)
    try:
        return _status(ws, list(_names(targets)), params)
    finally:
        ws.close()


def _status(ws: Any, patterns: list[str], params: Mapping[str, Any] | None) -> StatusResult:
    from flowmake.cli import cone

    names = ws.graph.closure(ws.select(patterns))
    # after an edit or a build, only the cone is checked, as `flowmake status` does
    found, checker, _ = cone.checked_fresh(
        ws, cone.Selection(_overrides(params), tuple(patterns)), names)
    if found is None:
        ws.check_plugins()
        ws.validate_lock()
        checker.check_sources(names)
    plan = checker.plan(names)
    ws.save_stats()
    return StatusResult({
        s.name: TargetState(s.state, [str(r) for r in s.reasons], s.source,
                            list(ws.graph.upstream[s.name]))
        for s in plan.steps})


def load(target: str, output: str | None = None, *, build: bool = False,
         params: Mapping[str, Any] | None = None, project: str | Path = ".") -> Any:
    """A target's output read through its format: one value, or a dict for a table of
    outputs (``output`` picks one). A stale target raises ``StaleError``, unless
    ``build=True``, which builds it first (a failure raises ``BuildFailed``)."""
    from flowmake.errors import StaleError

    if build:
        globals()["build"](target, params=params, project=project).raise_for_failure()
    ws = _open(target, params, project)
    try:
        found = ws.graph.targets.get(target)
        if found is None:
            from flowmake.errors import suggest

            raise UnknownTargetError(target, suggest(target, ws.graph.targets))
        outputs = _chosen(found, output)
        state = _status(ws, [target], params)[target]
        if state.state != TargetStatus.FRESH:
            raise StaleError(target, state.state, state.reasons)
        values = {key: _read(ws, path) for key, path in outputs}
    finally:
        ws.close()
    if output is not None or (len(values) == 1 and not _table(found)):
        return next(iter(values.values()))
    return values


def _table(target: Any) -> bool:
    return any(o.key is not None for o in target.outputs)


def _chosen(target: Any, output: str | None) -> list[tuple[str, str]]:
    """The outputs to read, as (name, path): keys for a table, paths for a list."""
    from flowmake.errors import UsageError

    if not target.outputs:
        raise UsageError(f"target '{target.name}' declares no outputs to load")
    pairs = [(o.key or o.path, o.path) for o in target.outputs]
    if output is not None:
        pairs = [(k, p) for k, p in pairs if output in (k, p)]
        if not pairs:
            names = ", ".join(o.key or o.path for o in target.outputs)
            raise UsageError(f"target '{target.name}' has no output '{output}' (it has: {names})")
    elif not _table(target) and len(pairs) > 1:
        return pairs  # a list of several: all of them, by path
    return pairs


def _read(ws: Any, path: str) -> Any:
    from flowmake.builtin.worker import _open as open_output

    fmt = ws.plugins.format_for(path)
    job = {"root": str(ws.root), "plugins": list(ws.project.settings.plugins)}
    with open_output(job, path, "rb") as f:
        return fmt.load(f)

