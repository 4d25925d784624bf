"""The ``flowmake`` command: argparse, one small function per subcommand.

A :class:`FlowmakeError` becomes one line on stderr (plus a hint) and its exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from flowmake import __version__
from flowmake.errors import ConfigError, FlowmakeError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line parser. With ``argv`` naming a command, only that subcommand's
    parser is made: each costs ~0.5 ms (argparse looks up translations for every title),
    more than a no-op build's own work."""
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


def run() -> NoReturn:
    """The ``flowmake`` command (console script and ``python -m flowmake``): :func:`main`,
    then a quick exit."""
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """Exit once the output is flushed and the atexit handlers have run, without tearing
    the interpreter down: freeing every module and object took 15-25 ms here, a quarter
    of a small build's overhead (mypy exits the same way). Python's own exit is kept when
    a thread other than ours still runs (a plugin's, say: it is waited for) or when
    flushing fails (a closed pipe is then reported as Python reports it)."""
    import atexit
    import os

    threading = sys.modules.get("threading")
    if threading is not None and any(
            t.is_alive() and not t.daemon and t is not threading.main_thread()
            for t in threading.enumerate()):
        sys.exit(code)
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # whatever it is, Python's own exit reports it
        sys.exit(code)
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["__complete"]:  # the completion scripts' call back: not a command
        from flowmake.cli.completion import complete

        return complete(argv[1:])
    args = build_parser(argv).parse_args(argv)
    try:
        return _dispatch(args, argv)
    except FlowmakeError as err:
        _print_error(err, args)
        return err.exit_code
    except KeyboardInterrupt:
        print("flowmake: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `flowmake list | head`
        sys.stderr.close()
        return EXIT_OK


def _print_error(err: FlowmakeError, args: argparse.Namespace) -> None:
    if isinstance(err, ConfigError) and err.key and err.line is None:
        from flowmake.config.toml_lines import locate

        # A key without a file is a key of the flow file (e.g. a missing input found late);
        # one with a file names it relative to the project root (an included file).
        flow = Path(_flow_file(args))
        if err.file is None:  # flow.toml, or the included file declaring that target
            from flowmake.config.flowfiles import declared_in

            err.file, err.line = declared_in(flow, err.key)
        else:
            err.line = locate(flow.parent / err.file, err.key)
    print(f"flowmake: error: {err}", file=sys.stderr)
    if err.hint:
        print(f"  hint: {err.hint}", file=sys.stderr)
    if os.environ.get("GITHUB_ACTIONS") == "true":  # an annotation on the workflow run
        from flowmake.report.github import error_command

        print(error_command(err, args.directory),
              file=sys.stderr if getattr(args, "json", False) else sys.stdout)


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if args.version:
        print(f"flowmake {__version__}")
        from flowmake.plugin.manager import Plugins

        flow = Path(_flow_file(args))
        root = flow.parent
        modules = _flow_plugin_modules(flow)
        try:
            plugins = Plugins(modules, str(root))
        except FlowmakeError as exc:  # --version still answers; the problem is named
            print(f"  [flow] plugins: {exc}")
            plugins = Plugins()
        for line in plugins.describe():
            print(f"  plugin: {line}")
        return EXIT_OK
    if not args.command:
        build_parser().print_help()
        return EXIT_USAGE
    handler: Callable[[argparse.Namespace, list[str]], int] = COMMANDS[args.command]
    return handler(args, argv)


def _flow_plugin_modules(flow_file: Path) -> list[str]:
    """The ``[flow] plugins`` of the project here, if there is one (for ``--version``)."""
    from flowmake.config.flowfiles import tomllib
    from flowmake.config.values import is_module_name

    try:
        doc = tomllib.loads(flow_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, RecursionError, tomllib.TOMLDecodeError):
        return []  # no project here, or a broken one: the installed plugins only
    flow = doc.get("flow", {})
    plugins = flow.get("plugins", []) if isinstance(flow, dict) else []
    return [p for p in plugins if is_module_name(p)] if isinstance(plugins, list) else []


def _flow_file(args: argparse.Namespace) -> str:
    """The flow file's absolute path (``-C``, ``-f``; without either, the nearest
    flow.toml here or above, as ``config.find_file`` finds it), for the no-op fast path:
    a few stats, no import."""
    if args.directory or args.file:
        return str(Path(args.directory or ".").resolve() / (args.file or "flow.toml"))
    here = folder = os.getcwd()
    while not os.path.isfile(os.path.join(folder, "flow.toml")):
        if os.path.dirname(folder) == folder:
            return os.path.join(here, "flow.toml")  # none: the error names this folder
        folder = os.path.dirname(folder)
    return os.path.join(folder, "flow.toml")


def _workspace(args: argparse.Namespace) -> Any:
    from flowmake.cli.workspace import Workspace
    from flowmake.config.values import is_text, parse_override, printable

    directory = Path(args.directory or ".")
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such directory"
        raise UsageError(f"-C {printable(str(directory))}: {what}")
    names = [*(getattr(args, "targets", None) or ()), getattr(args, "target", None),
             getattr(args, "ref", None)]
    for name in names:  # no target is named so; the store could not even look one up
        if isinstance(name, str) and not is_text(name):
            raise UsageError(f"'{printable(name)}': not valid UTF-8 text")
    overrides = dict(parse_override(p) for p in args.param)
    # Without -C or -f, the nearest flow.toml above the current folder (as git finds .git).
    return Workspace(directory.resolve(), args.file, overrides,
                     search=not args.directory and not args.file)


def _emit_json(doc: Any) -> None:
    import json

    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


# -- commands -------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace, argv: list[str]) -> int:
    # As the history shows it: an argument's undecodable bytes (a folder's name) as \xff.
    command = ("flowmake " + shlex.join(argv)).encode("utf-8", "surrogateescape").decode(
        "utf-8", "backslashreplace")
    if args.jobs is not None and not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"-j must be between 1 and {MAX_JOBS}, got {args.jobs}")
    if args.junit and args.dry_run:
        raise UsageError("--junit cannot be used with -n (a dry run builds nothing to report)")
    if args.watch and args.json:
        raise UsageError("--watch cannot be used with --json (each build would print its"
                         " own document)")
    install_sigterm()  # before the lock: a build waiting for it stops like Ctrl-C too
    try:
        if args.watch:
            from flowmake.cli.watch import watch

            return watch(args, lambda: _build_once(args, command),
                         lambda err: _print_error(err, args))
        return _build_once(args, command)
    except KeyboardInterrupt:
        # Interrupted before any target ran (waiting for the lock, planning): the
        # scheduler handles interrupts once it runs. Tools still get their document.
        if args.json:
            _emit_json({"run_id": None, "result": "interrupted", "targets": []})
        if args.junit and not getattr(args, "reported", False):  # an empty one: CI finds it
            from flowmake.cli.build import after_build, junit_path
            from flowmake.schedule import Summary

            after_build(args, junit_path(args), Summary(None, "interrupted", {}, 0.0), None)
        print("flowmake: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _build_once(args: argparse.Namespace, command: str) -> int:
    """One build: the no-op fast path when it holds, else the full build."""
    from flowmake.fastpath import run_noop

    # The no-op fast path writes no CI report: with one asked for, the full path runs.
    if not args.dry_run and not args.always_make and not args.junit \
            and "GITHUB_STEP_SUMMARY" not in os.environ:
        done = run_noop(_flow_file(args), args.param, args.targets, command, args.json,
                        args.quiet, args.verbose, record=not args.no_record)
        if done is not None:
            return done
    from flowmake.cli.build import run_build

    ws = _workspace(args)
    try:
        return run_build(ws, args, command)
    finally:
        ws.close()


def cmd_status(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.fastpath import fresh_status
    from flowmake.report.views import StatusRow, status_json, status_lines, status_rows

    fresh = fresh_status(_flow_file(args), args.param, args.targets)
    if fresh is not None:  # nothing changed since an all-fresh build or status
        names, upstream, roots = fresh
        rows: list[StatusRow] = [(n, "fresh", (), "record") for n in names]
        if args.verbose:
            print(f"flowmake: no input, output or setting changed since the last all-fresh"
                  f" build or status ({len(names)} targets, no-op fast path)", file=sys.stderr)
    else:
        from flowmake.store.db import project_lock

        ws = _workspace(args)
        try:
            selected = ws.select(args.targets)
            names = ws.graph.closure(selected)
            ws.check_plugins()  # as `build -n` does: a missing plugin is exit 2 here too
            ws.validate_lock()
            version = ws.store.data_version()
            checker = ws.checker()
            checker.check_sources(names)
            plan = checker.plan(names)
            ws.save_stats()
            rows = status_rows(plan)
            upstream = {s.name: list(ws.graph.upstream[s.name]) for s in plan.steps}
            roots = ws.status_roots(selected)
            # All fresh: the next status or no-op build may answer from stats alone, unless
            # a build ran meanwhile (it took the lock, or committed to the store).
            # (From local records only: one from flow.lock is not in the store yet.)
            if not plan.stale() and all(s.source == "record" for s in plan.steps):
                with project_lock(ws.project.state_dir, None) as held:
                    if held and ws.store.data_version() == version:
                        ws.save_fast_path(args.param, args.targets,
                                          [s.name for s in plan.steps])
        finally:
            ws.close()
    if args.json:
        _emit_json(status_json(rows, upstream))
    else:
        for line in status_lines(rows, upstream, roots, quiet=args.quiet, check=args.check):
            print(line)
    not_fresh = sum(1 for row in rows if row[1] != "fresh")
    if not args.json and not args.quiet:
        print(f"flowmake: {len(rows) - not_fresh} fresh, {not_fresh} not fresh",
              file=sys.stderr)
    return EXIT_FAILED if args.check and not_fresh else EXIT_OK


def cmd_clean(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.clean import clean

    if not args.targets and not args.all:
        raise UsageError("name the targets to clean, or use --all",
                         hint="`flowmake clean --all -n` shows what would be removed")
    ws = _workspace(args)
    try:
        names = list(ws.graph.targets) if args.all else ws.graph.select(args.targets)
        for line in clean(ws, names, dry_run=args.dry_run):
            if not args.quiet:
                print(line)
    finally:
        ws.close()
    return EXIT_OK


def cmd_list(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.report.views import list_json, list_lines

    ws = _workspace(args)
    if args.json:
        _emit_json(list_json(ws.graph))
    else:
        print("\n".join(list_lines(ws.graph)))
    return EXIT_OK


def cmd_why(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.why import why_command

    return why_command(_workspace(args), args)


def cmd_graph(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.graph import graph_command

    return graph_command(_workspace(args), args)


def cmd_log(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.log import log_command

    return log_command(_workspace(args), args)


def cmd_cache(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.cache import cache_command

    return cache_command(_workspace(args), args)


def cmd_metrics(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.metrics import metrics_command

    return metrics_command(_workspace(args), args)


def cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.report.html import report_command

    return report_command(_workspace(args), args)


def cmd_accept(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.accept import accept_command

    return accept_command(_workspace(args), args)


def cmd_init(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.init import init_command

    return init_command(Path(args.directory or "."), args)


def cmd_lock(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.lock import merge_command

    return merge_command(args)


def cmd_completion(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.completion import completion_command

    return completion_command(args)


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], int]] = {
    "build": cmd_build, "status": cmd_status, "clean": cmd_clean, "list": cmd_list,
    "why": cmd_why, "graph": cmd_graph, "log": cmd_log, "cache": cmd_cache,
    "accept": cmd_accept, "init": cmd_init, "report": cmd_report, "lock": cmd_lock,
    "completion": cmd_completion, "metrics": cmd_metrics,
}


def install_sigterm() -> None:
    """SIGTERM stops a build like Ctrl-C does: jobs killed, nothing half-done recorded."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
