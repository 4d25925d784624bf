"""The exceptions flowmake raises on purpose.

Every error the user can cause is a :class:`FlowmakeError`; ``cli.py`` prints it as one
line (plus an optional hint) and exits with its ``exit_code``. Anything else is a bug and
keeps its traceback.

    FlowmakeError(message, hint)                  exit 2
     ├── ConfigError(file, line, key)             flow.toml (or flow.lock) is wrong
     ├── UnknownTargetError(name, suggestion)     a name matches no target
     ├── UnknownParamError(name, suggestion)      -p NAME names no project param
     ├── CycleError(path)                         the dependency graph has a cycle
     ├── PluginError(plugin, install_hint)        a plugin is missing or broken
     ├── UsageError                               the command line is wrong
     ├── StateError(path)                         .flowmake/ is damaged, read-only or full
     ├── CannotAccept (accept.py)                 `accept` of a target whose files are missing
     ├── IndexUnusable (cache.py)                 the cache's index.db cannot be used (a
     │                                            build warns and goes on without the cache)
     ├── StaleError(target, state, reasons)       flowmake.load() of a target not fresh
     └── BuildFailed(failed, skipped)             exit 1: targets failed (the Python API's
                                                  BuildResult.raise_for_failure)

Every subclass anywhere in the package is drawn here; a test walks the package to check.
"""

from __future__ import annotations

from collections.abc import Iterable


class FlowmakeError(Exception):
    """Base class: a user-facing error with a one-line message and an optional hint."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(FlowmakeError):
    """flow.toml is malformed; it reads ``flow.toml:LINE: key: message``.

    Code far from the file (the graph, the planner) raises it with a ``key`` only; the
    CLI fills in ``line`` from the file before printing (see ``toml_lines.locate``).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.detail = message
        self.file, self.line, self.key = file, line, key

    def __str__(self) -> str:
        where = self.file or "flow.toml"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.key}: {self.detail}" if self.key else f"{where}: {self.detail}"


class UnknownTargetError(FlowmakeError):
    """A target name or pattern matched nothing."""

    def __init__(self, name: str, suggestion: str | None = None) -> None:
        self.name, self.suggestion = name, suggestion
        extra = f" (did you mean '{suggestion}'?)" if suggestion else ""
        super().__init__(f"unknown target '{name}'{extra}")


class UnknownParamError(FlowmakeError):
    """A ``-p NAME=VALUE`` override names no project parameter."""

    def __init__(self, name: str, suggestion: str | None = None) -> None:
        self.name, self.suggestion = name, suggestion
        extra = f" (did you mean '{suggestion}'?)" if suggestion else ""
        super().__init__(f"unknown param '{name}'{extra}; declare it under [params]")


class CycleError(FlowmakeError):
    """The dependency graph has a cycle; ``path`` lists it, first name repeated last."""

    def __init__(self, path: list[str]) -> None:
        self.path = path
        super().__init__("dependency cycle: " + " -> ".join(path))


class PluginError(FlowmakeError):
    """A plugin is missing, broken or clashes with another."""

    def __init__(self, message: str, plugin: str | None = None, install_hint: str | None = None):
        self.plugin = plugin
        super().__init__(message, install_hint)


class UsageError(FlowmakeError):
    """The command line is wrong in a way argparse cannot see."""


class StateError(FlowmakeError):
    """The project's state (under ``.flowmake/``) cannot be read or written: a damaged
    database, a full disk, a read-only folder. The message names the path; the hint says
    that deleting ``.flowmake/`` is safe."""

    def __init__(self, path: str, problem: str, hint: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {problem}", hint or STATE_HINT)


STATE_HINT = ("deleting .flowmake/ is always safe (every target becomes stale, nothing else"
              " is lost); then run the command again")


class StaleError(FlowmakeError):
    """``flowmake.load()`` of a target that is not fresh; the message says why."""

    def __init__(self, target: str, state: str, reasons: list[str]) -> None:
        self.target, self.state, self.reasons = target, state, reasons
        why = "; ".join(reasons) or state
        super().__init__(f"target '{target}' is {state}: {why}",
                         f"build it first: flowmake.load({target!r}, build=True), or"
                         f" `flowmake build {target}`")


class BuildFailed(FlowmakeError):
    """One or more targets failed (exit 1)."""

    exit_code = 1

    def __init__(self, failed: list[str], skipped: list[str]) -> None:
        self.failed, self.skipped = failed, skipped
        super().__init__(f"{len(failed)} target(s) failed: {', '.join(failed)}")


def suggest(name: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``name``, for "did you mean" hints."""
    import difflib  # only on the error path

    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None
