"""The command line: the argparse parser of every subcommand, and the flow file that
``-C`` and ``-f`` name.

A no-op build parses its command line too: this module imports argparse and, of
flowmake, only ``errors`` (building only the named subcommand's parser keeps it cheap).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from flowmake.errors import UsageError

if TYPE_CHECKING:
    from flowmake.cli.workspace import Workspace

EXIT_USAGE = 2
MAX_JOBS = 1024  # as [flow] jobs (config.MAX_JOBS, not imported: the no-op path stays lean)

DESCRIPTION = """\
flowmake: a make-style build tool for data and code pipelines.

flow.toml declares targets (shell commands or python callables) with their inputs,
outputs and params. flowmake hashes content, code and params to find what is stale,
runs it in parallel, and records every build under .flowmake/.
"""

EPILOG = """\
exit codes: 0 success or all fresh; 1 a target failed (or `status --check` found one
not fresh); 2 usage or configuration error; 130 interrupted.
Run `flowmake COMMAND --help` for a command's options."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 with one line
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"flowmake: error: {message}\n")


_PARAM_HELP = "override a project param (a TOML literal; a bare word is a string)"
# What -q, -v and -p do, before the command (for any command).
_GLOBAL_HELP = {"q": "print less: only failures and errors",
                "v": "print more (build: stream each target's output as it runs)",
                "p": _PARAM_HELP}


def _global_options(parser: argparse.ArgumentParser, suppress: bool,
                    only: dict[str, str] = _GLOBAL_HELP) -> None:
    """Global options, accepted before the command (as git does) and after it.

    Before the command every one is accepted; after it, ``-f``, ``-C`` and ``--no-color``
    and the ones of ``only`` (``q``: -q, ``v``: -v, ``p``: -p: their help) that the
    command uses."""
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    group = parser.add_argument_group("global options") if suppress else parser
    group.add_argument("-f", "--file", default=d(None), metavar="FILE",
                       help="the flow file (default: flow.toml in the project folder)")
    group.add_argument("-C", dest="directory", default=d(None), metavar="DIR",
                       help="run as if started in DIR")
    group.add_argument("--no-color", action="store_true", default=d(False),
                       help="plain output, no colours or live view (also: NO_COLOR)")
    if "q" in only:
        group.add_argument("-q", "--quiet", action="store_true", default=d(False),
                           help=only["q"])
    if "v" in only:
        group.add_argument("-v", "--verbose", action="store_true", default=d(False),
                           help=only["v"])
    if "p" in only:
        group.add_argument("-p", "--param", action="append", default=d([]),
                           metavar="NAME=VALUE", help=only["p"])


_TARGETS = "names, globs (fit*), a whole matrix (sweep) or one instance (sweep[lr=0.1])"


def _targets(p: argparse.ArgumentParser, what: str, nargs: str = "*") -> None:
    p.add_argument("targets", nargs=nargs, metavar="TARGET", help=f"{what}: {_TARGETS}")


def _build_args(p: argparse.ArgumentParser) -> None:
    _targets(p, "what to build, with its upstream (default: [flow].default, else all)")
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="parallel jobs (default: CPUs)")
    p.add_argument("-k", "--keep-going", action="store_true",
                   help="go on with independent targets after a failure")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="print what would run and why; change nothing")
    p.add_argument("-B", "--always-make", action="store_true", help="rebuild even if fresh")
    p.add_argument("--no-cache", action="store_true",
                   help="neither restore from nor save to the artifact cache")
    p.add_argument("--executor", metavar="NAME",
                   help="run targets with this executor (default: [flow].executor)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="the Dask scheduler, tcp://HOST:PORT (executor dask)")
    p.add_argument("--no-record", action="store_true",
                   help="keep this build out of `flowmake log`'s history (for hooks); what it"
                   " builds is recorded as usual")
    p.add_argument("--junit", metavar="FILE",
                   help="write a JUnit XML report of the build to FILE (for CI), also when"
                   " it fails or is interrupted")
    p.add_argument("--watch", action="store_true",
                   help="build, then build again whenever an input, flow.toml or a python"
                   " target's code changes, until Ctrl-C (needs flowmake[watch])")
    _json(p)


def _status_args(p: argparse.ArgumentParser) -> None:
    _targets(p, "what to show, with its upstream (default: [flow].default, else all)")
    p.add_argument("--check", action="store_true", help="exit 1 if any target is not fresh")
    _json(p)


def _clean_args(p: argparse.ArgumentParser) -> None:
    _targets(p, "whose outputs to remove and records to forget")
    p.add_argument("--all", action="store_true", help="clean every target")
    p.add_argument("-n", "--dry-run", action="store_true", help="print what would be removed")


def _why_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET",
                   help="the target to explain: a name, or a pattern that names one")
    _json(p)


def _graph_args(p: argparse.ArgumentParser) -> None:
    _targets(p, "what to draw, with its upstream (default: every target)")
    p.add_argument("--format", choices=["text", "mermaid", "dot", "json", "html"], default="text",
                   help="text (default), mermaid or dot: the structure; json: with each"
                   " target's state and durations; html: one self-contained page of them")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", nargs="?", metavar="RUN_ID|TARGET",
                   help="a number is a build's run id (as `flowmake log` lists them; - is the"
                   " latest build): that build's targets; anything else a target name or"
                   " pattern: its history and output (default: the list of builds)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N entries")
    _json(p)


def _metrics_args(p: argparse.ArgumentParser) -> None:
    _targets(p, "whose metrics to show (default: every target with `metrics`)")
    p.add_argument("--history", action="store_true",
                   help="the values each build recorded, oldest first")
    _json(p)


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", metavar="RUN_ID",
                   help="the build to show, as `flowmake log` numbers them (default, or -:"
                   " the latest build)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the page to FILE (default: flowmake-report.html)")


def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["status", "gc", "push", "pull"],
                   help="status: entries, size and remote; gc: drop old entries (give"
                   " --max-age and/or --max-size); push: send the current records' entries to"
                   " the remote; pull: fetch the remote's entries for the current keys")
    p.add_argument("--max-age", metavar="DAYS", type=float, help="gc: drop entries unused for DAYS")
    p.add_argument("--max-size", metavar="SIZE", help="gc: shrink the cache below SIZE (e.g. 2G)")
    _json(p)


def _accept_args(p: argparse.ArgumentParser) -> None:
    _targets(p, "what to record as fresh", nargs="+")


def _lock_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["merge"],
                   help="merge: git's merge driver for flow.lock (see README, flow.lock)")
    p.add_argument("base", metavar="BASE", help="the common ancestor's flow.lock (git's %%O)")
    p.add_argument("ours", metavar="OURS", help="our flow.lock, overwritten with the result"
                   " (git's %%A)")
    p.add_argument("theirs", metavar="THEIRS", help="their flow.lock (git's %%B)")


def _completion_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=["bash", "zsh", "fish"],
                   help='the shell: eval "$(flowmake completion bash)" (or zsh) in its rc'
                   " file; fish: flowmake completion fish | source")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


# name: (help, the function that adds its arguments)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "build": ("build targets (default: [flow].default, else all) and their upstream",
              _build_args),
    "status": ("show each target's state (fresh, stale + reasons, restorable)", _status_args),
    "clean": ("remove the declared outputs of targets and forget their records", _clean_args),
    "list": ("list the targets with their kind and help", _json),
    "why": ("explain one target's state, with old → new values", _why_args),
    "graph": ("draw the dependency graph (text, mermaid, dot, json or an HTML page)",
              _graph_args),
    "log": ("past builds; one build's targets; one target's history and output", _log_args),
    "cache": ("the artifact cache: status, gc, push, pull", _cache_args),
    "metrics": ("metrics outputs: current values and their change; --history across builds",
                _metrics_args),
    "report": ("one build as a self-contained HTML page: timeline, targets, failures",
               _report_args),
    "accept": ("record targets as fresh with their current inputs and outputs", _accept_args),
    "init": ("write a commented starter flow.toml (never overwrites)", lambda p: None),
    "lock": ("flow.lock tools: merge (a git merge driver that merges entry by entry)",
             _lock_args),
    "completion": ("print a shell completion script (bash, zsh or fish)", _completion_args),
}

# The global options each command takes after its name too, besides -f, -C and --no-color,
# with what they do there (q: -q, v: -v, p: -p). Before the name, every command takes all.
_QUIET = "print nothing but errors"
COMMAND_GLOBALS: dict[str, dict[str, str]] = {
    "build": {"q": "print only failures and errors",
              "v": "stream each target's output as it runs", "p": _PARAM_HELP},
    "status": {"q": "print only the targets not fresh (with --check: nothing)",
               "v": "say when the no-op fast path answered", "p": _PARAM_HELP},
    "clean": {"q": _QUIET, "p": _PARAM_HELP},
    "list": {},
    "why": {"p": _PARAM_HELP},
    "graph": {"q": "no message when writing -o FILE", "p": _PARAM_HELP},
    "log": {"v": "show the captured output of every run (default: the latest)"},
    "cache": {"q": _QUIET, "p": _PARAM_HELP},
    "metrics": {"p": _PARAM_HELP},
    "report": {"q": "no message when the page is written"},
    "accept": {"q": _QUIET, "p": _PARAM_HELP},
    "init": {"q": _QUIET},
    "lock": {"q": _QUIET},
    "completion": {},
}


_made: list[argparse.ArgumentParser] = []  # the whole parser, made once (``keep_parser``)


def keep_parser() -> None:
    """Make the whole parser once, for every later command of this process: a resident
    server does, and its forks parse with it (2-3 ms of each command otherwise). Parsing
    leaves a parser as it was: it is only read."""
    _made[:] = [build_parser()]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line parser. With ``argv`` naming a command, only that subcommand's
    parser is made: each costs ~0.5 ms (argparse looks up translations for every title),
    more than a no-op build's own work. The whole one, if made already (``keep_parser``),
    answers the same."""
    if _made:
        return _made[0]
    parser = _Parser(prog="flowmake", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and plugins")
    _global_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    named = None if argv is None else {a for a in argv if a in SUBCOMMANDS}
    if named is not None and (not named or {"-h", "--help"} & set(argv or ())):
        named = None  # the top-level help, or an error listing the commands: all of them
    for name, (help, add_arguments) in SUBCOMMANDS.items():
        if named is None or name in named:
            command = sub.add_parser(name, help=help, description=help)
            add_arguments(command)
            _global_options(command, suppress=True, only=COMMAND_GLOBALS[name])
    return parser


def flow_file(directory: str | None, file: str | None) -> str:
    """The flow file's absolute path (``-C``, ``-f``; without either, the nearest
    flow.toml here or above, as ``config.find_file`` finds it), for the no-op fast path:
    a few stats, no import."""
    if directory or file:
        return str(Path(directory or ".").resolve() / (file or "flow.toml"))
    here = folder = os.getcwd()
    while not os.path.isfile(os.path.join(folder, "flow.toml")):
        if os.path.dirname(folder) == folder:
            return os.path.join(here, "flow.toml")  # none: the error names this folder
        folder = os.path.dirname(folder)
    return os.path.join(folder, "flow.toml")


def open_workspace(directory: str | None, file: str | None, params: Iterable[str],
                   names: Iterable[object] = ()) -> Workspace:
    """The project that ``-C DIR``, ``-f FILE`` and ``-p NAME=VALUE`` name, loaded; the
    ``names`` given on the command line are checked to be text first."""
    from flowmake.cli.workspace import Workspace
    from flowmake.config.values import is_text, parse_override, printable

    folder = Path(directory or ".")
    if not folder.is_dir():
        what = "not a directory" if folder.exists() else "no such directory"
        raise UsageError(f"-C {printable(str(folder))}: {what}")
    for name in names:  # no target is named so; the store could not even look one up
        if isinstance(name, str) and not is_text(name):
            raise UsageError(f"'{printable(name)}': not valid UTF-8 text")
    overrides = dict(parse_override(p) for p in params)
    # Without -C or -f, the nearest flow.toml above the current folder (as git finds .git).
    return Workspace(folder.resolve(), file, overrides, search=not directory and not file)
