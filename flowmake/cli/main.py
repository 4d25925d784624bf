"""The ``flowmake`` command: one small function per subcommand (the parser: cli/parser.py).

A :class:`FlowmakeError` becomes one line on stderr (plus a hint) and its exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from flowmake import __version__
from flowmake.cli.parser import MAX_JOBS, build_parser, flow_file, open_workspace
from flowmake.errors import ConfigError, FlowmakeError, UsageError

__all__ = ["MAX_JOBS", "BuildSink", "build_parser", "main", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class BuildSink:
    """What a build leaves its caller: its Summary (the Python API reads it) and whether
    its CI reports are written (an interrupt after that writes no empty one). A plain
    class: a no-op build makes one and imports nothing for it."""

    __slots__ = ("reported", "summary")

    def __init__(self) -> None:
        self.summary: Any = None  # the schedule.Summary, once the scheduler ran
        self.reported = False


def run() -> NoReturn:
    """The ``flowmake`` command (bin/flowmake and ``python -m flowmake``): :func:`main`,
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
    try:
        return handler(args, argv)
    finally:
        # What _workspace froze: a process that lives on collects it again, a resident
        # fork leaves it frozen (warm.thaw). Without warm imported no workspace was
        # opened, hence nothing frozen: the no-op path imports nothing for this.
        warm = sys.modules.get("flowmake.warm")
        if warm is not None:
            warm.thaw()


def _flow_plugin_modules(flow_file: Path) -> list[str]:
    """The ``[flow] plugins`` of the project here, if there is one (for ``--version``)."""
    from flowmake.config.flowfiles import tomllib
    from flowmake.config.values import is_module_name

    try:
        text = flow_file.read_text(encoding="utf-8")
        doc = _flow_table(text, tomllib.loads)
    except (OSError, UnicodeError, RecursionError, tomllib.TOMLDecodeError):
        return []  # no project here, or a broken one: the installed plugins only
    flow = doc.get("flow", {})
    plugins = flow.get("plugins", []) if isinstance(flow, dict) else []
    return [p for p in plugins if is_module_name(p)] if isinstance(plugins, list) else []


def _flow_table(text: str, loads: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """A flow file's top-level keys and its ``[flow]`` tables, parsed without the targets
    (`--version` of 10,000 targets parsed them all: 0.4 s); the whole file when the cut is
    not valid TOML by itself (a ``[`` starting a line inside a multi-line value)."""
    import re

    headers = [(m.start(), m.group(1).split(".")[0].strip(" \t\"'")) for m in
               re.finditer(r"^\[\[?([^\]\n]*)\]", text, re.MULTILINE)]
    bounds = [start for start, _ in headers] + [len(text)]
    part = text[:bounds[0]] + "".join(
        "\n" + text[start:bounds[i + 1]] for i, (start, table) in enumerate(headers)
        if table == "flow")
    try:
        return loads(part)
    except ValueError:  # TOMLDecodeError, of the cut (it decides nothing) or the file
        return loads(text)


def _flow_file(args: argparse.Namespace) -> str:
    """The flow file's absolute path (cheap: the no-op fast path's)."""
    return flow_file(args.directory, args.file)


def _workspace(args: argparse.Namespace) -> Any:
    names = [*(getattr(args, "targets", None) or ()), getattr(args, "target", None),
             getattr(args, "ref", None)]
    ws = open_workspace(args.directory, args.file, args.param, names)
    # The project and graph live as long as the command: the collector's passes need not
    # walk their million objects again and again (graph --format json of 100,000 targets
    # spent 0.7 s of its 3 s in them; `build` does the same).
    gc.freeze()
    return ws


def _emit_json(doc: Any) -> None:
    from flowmake.report import jsonout

    sys.stdout.write(jsonout.dumps(doc, default=str) + "\n")


# -- commands -------------------------------------------------------------------------


def cmd_build(args: argparse.Namespace, argv: list[str]) -> int:
    # As the history shows it: an argument's undecodable bytes (a folder's name) as \xff.
    command = ("flowmake " + shlex.join(argv)).encode("utf-8", "surrogateescape").decode(
        "utf-8", "backslashreplace")
    _check_build_args(args)
    install_sigterm()  # before the lock: a build waiting for it stops like Ctrl-C too
    sink = BuildSink()  # one for every build of --watch: its reports, once written
    try:
        if args.watch:
            from flowmake.cli.watch import watch
            from flowmake.options import BuildOptions

            return watch(BuildOptions.from_args(args), lambda: _build_once(args, command, sink),
                         lambda err: _print_error(err, args))
        return _build_once(args, command, sink)
    except KeyboardInterrupt:
        # Interrupted before any target ran (waiting for the lock, planning): the
        # scheduler handles interrupts once it runs. Tools still get their document.
        if args.json:  # RunResult.INTERRUPTED's value (model is not imported here)
            _emit_json({"run_id": None, "result": "interrupted", "targets": []})
        if args.junit:  # an empty one, unless written: CI finds it
            from flowmake.cli.build import interrupted_early
            from flowmake.options import BuildOptions

            interrupted_early(BuildOptions.from_args(args), sink)
        print("flowmake: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _check_build_args(args: argparse.Namespace) -> None:
    if args.jobs is not None and not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"-j must be between 1 and {MAX_JOBS}, got {args.jobs}")
    if args.junit and args.dry_run:
        raise UsageError("--junit cannot be used with -n (a dry run builds nothing to report)")
    if args.watch and args.json:
        raise UsageError("--watch cannot be used with --json (each build would print its"
                         " own document)")


def _build_once(args: argparse.Namespace, command: str, sink: BuildSink) -> int:
    """One build: the no-op fast path when it holds, else the full build (the Namespace
    ends here: the build reads BuildOptions)."""
    from flowmake.cli.noop import run_noop

    # The no-op fast path writes no CI report: with one asked for, the full path runs.
    if not args.dry_run and not args.always_make and not args.junit \
            and "GITHUB_STEP_SUMMARY" not in os.environ:
        done = run_noop(_flow_file(args), args.param, args.targets, command, args.json,
                        args.quiet, args.verbose, record=not args.no_record)
        if done is not None:
            return done
    from flowmake.cli.build import build_command
    from flowmake.options import BuildOptions

    return build_command(BuildOptions.from_args(args), command, sink)


def cmd_status(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.noop import fresh_status
    from flowmake.report.views import fresh_status_json, fresh_tree, status_json, status_lines

    fresh = fresh_status(_flow_file(args), args.param, args.targets)
    checked, how = None, ("no input, output or setting changed since the last all-fresh"
                          " build or status", "no-op fast path")
    if fresh is None:  # else nothing changed since an all-fresh build or status
        fresh, checked = _checked_status(args)  # fresh: only an edit's cone was checked
        how = ("only what a change since the last all-fresh build can reach was checked",
               "cone check")
    if fresh is not None:
        names, indices, root_indices = fresh
        if args.verbose:
            print(f"flowmake: {how[0]} ({len(names)} targets, {how[1]})", file=sys.stderr)
        # From the snapshot's indices: no rows, dicts or lists of names made.
        if args.json:
            _emit_json(fresh_status_json(names, indices))
        elif not args.quiet:
            lines = fresh_tree(names, indices, root_indices)
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
            print(f"flowmake: {len(names)} fresh, 0 not fresh", file=sys.stderr)
        return EXIT_OK
    assert checked is not None
    rows, upstream, roots = checked
    if args.json:
        _emit_json(status_json(rows, upstream))
    else:
        lines = status_lines(rows, upstream, roots, quiet=args.quiet, check=args.check)
        if lines:  # one write: a print each was 0.24 s of the 190,000 lines at 100,000 targets
            sys.stdout.write("\n".join(lines) + "\n")
    not_fresh = sum(1 for row in rows if row[1] != "fresh")
    if not args.json and not args.quiet:
        print(f"flowmake: {len(rows) - not_fresh} fresh, {not_fresh} not fresh",
              file=sys.stderr)
    return EXIT_FAILED if args.check and not_fresh else EXIT_OK


# `status`'s answer the full way: the plan's rows, each target's upstream, the roots
Checked = tuple[list[Any], dict[str, list[str]], Any]


def _checked_status(args: argparse.Namespace) -> tuple[Any, Checked | None]:
    """``status`` when the no-op fast path does not hold: (the fast path's answer, as
    ``noop.fresh_status`` gives it, when only an edit's cone needed a check and it is
    all fresh, None; else None, the plan's rows, upstream and roots)."""
    from flowmake import fastpath
    from flowmake.cli import cone
    from flowmake.cli.noop import status_parts
    from flowmake.report.views import status_rows
    from flowmake.store.mutex import project_lock

    ws = _workspace(args)
    try:
        selected = ws.select(args.targets)
        names = ws.graph.closure(selected)
        # After an edit or a cone build: only the cone is checked (cli/cone.py).
        found, checker, fresh = cone.checked_fresh(
            ws, cone.Selection(tuple(args.param), tuple(args.targets)), names)
        if fresh:
            assert found is not None
            return status_parts(fastpath.fresh_answer(found.saved)), None
        if found is None:
            ws.check_plugins()  # as `build -n` does: a missing plugin is exit 2 here too
            ws.validate_lock()
            checker.check_sources(names)
        version = ws.store.data_version()
        plan = checker.plan(names)
        ws.save_stats()
        upstream = {s.name: list(ws.graph.upstream[s.name]) for s in plan.steps}
        # All fresh: the next status or no-op build may answer from stats alone, unless
        # a build ran meanwhile (it took the lock, or committed to the store).
        # (From local records only: one from flow.lock is not in the store yet.)
        if found is None and not plan.stale() and all(
                s.source == "record" for s in plan.steps):
            with project_lock(ws.project.state_dir, None) as held:
                if held and ws.store.data_version() == version:
                    ws.save_fast_path(args.param, args.targets, [s.name for s in plan.steps])
        return None, (status_rows(plan), upstream, ws.status_roots(selected))
    finally:
        ws.close()


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
        from flowmake.cli.metrics import listed  # each target's metrics, last values

        _emit_json(listed(ws, list_json(ws.graph)))
    else:
        print("\n".join(list_lines(ws.graph)))
    return EXIT_OK


def cmd_why(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.why import why_command

    return why_command(_workspace(args), args)


def cmd_graph(args: argparse.Namespace, argv: list[str]) -> int:
    from flowmake.cli.graphfresh import UNCHECKED, write_fresh

    found: Any = UNCHECKED
    if args.format == "json" and not args.output and not args.targets:
        # all fresh: written from what is kept, without loading the flow
        done, found = write_fresh(_flow_file(args), args.param, sys.stdout.write)
        if done:
            return EXIT_OK
    from flowmake.cli.graph import graph_command

    return graph_command(_workspace(args), args, found)


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
    from flowmake.cli.report import report_command

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
