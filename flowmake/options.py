"""What a build is asked to do: one frozen value, made once from the command line
(:meth:`BuildOptions.from_args`) or directly (the Python API, ``build --watch``).

Nothing below the CLI's dispatch sees an ``argparse.Namespace``: ``cli.build.run_build``
and the scheduler read these fields. This module imports nothing of flowmake's (it sits
with the kernel) and is not imported by a no-op build (dataclasses costs a millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import argparse


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Every option of ``flowmake build``, with the command line's defaults."""

    targets: tuple[str, ...] = ()  # names or patterns (default: [flow].default, else all)
    params: tuple[str, ...] = ()  # -p NAME=VALUE overrides, as given (TOML literals)
    directory: str | None = None  # -C DIR (None: flow.toml here or above)
    file: str | None = None  # -f FILE
    jobs: int | None = None  # -j (None: [flow] jobs, else the CPU count)
    keep_going: bool = False  # -k
    force: bool = False  # -B: rebuild even if fresh
    dry_run: bool = False  # -n
    no_cache: bool = False
    executor: str | None = None  # --executor (None: [flow].executor)
    scheduler: str | None = None  # --scheduler: a Dask scheduler's address
    no_record: bool = False  # the run leaves the history (what it built stays recorded)
    junit: str | None = None  # --junit FILE, relative to -C DIR
    watch: bool = False
    json: bool = False
    quiet: bool = False
    verbose: bool = False  # stream each target's output as it runs
    no_color: bool = False
    stream: TextIO | None = None  # where the build prints (None: stdout, stderr with --json)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BuildOptions:
        """The options of a parsed ``flowmake build`` command line."""
        values: dict[str, Any] = {}
        for dest, name in FIELD_OF_DEST.items():
            value = getattr(args, dest)
            values[name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


# Each argparse dest of `flowmake build` (cli/parser.py) -> its field; a test checks that
# none is left out. `stream` has no flag: the Python API sets it.
FIELD_OF_DEST: dict[str, str] = {
    "targets": "targets", "param": "params", "directory": "directory", "file": "file",
    "jobs": "jobs", "keep_going": "keep_going", "always_make": "force", "dry_run": "dry_run",
    "no_cache": "no_cache", "executor": "executor", "scheduler": "scheduler",
    "no_record": "no_record", "junit": "junit", "watch": "watch", "json": "json",
    "quiet": "quiet", "verbose": "verbose", "no_color": "no_color",
}

FIELDS = frozenset(f.name for f in fields(BuildOptions))
