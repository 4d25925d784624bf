"""`flowmake build --watch`: build, then build again whenever a source changes, until Ctrl-C.

The sources are what a build of the selected targets reads: their inputs (files, folders,
the files a glob could match), the code files of python targets, flow.toml and every file
it includes or reads params from, and the folders a ``foreach`` globs over. Changes to
declared outputs, ``.flowmake/`` and the artifact cache are never sources: a build does not
trigger itself. The set is worked out again after every build (flow.toml may have changed).

watchfiles (an optional extra: ``flowmake[watch]``) watches the project root, and any
folder outside it that holds an input, in a thread of its own; its debounce groups the
writes of one save. Builds run one at a time in the main thread: a change during a build
schedules one more build after it. Ctrl-C stops the build that runs, if any, and the watch,
exit 130. A configuration error is printed and waited out: the next change of flow.toml
builds again.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmake.errors import FlowmakeError, UsageError
from flowmake.store import paths as layout

if TYPE_CHECKING:
    from flowmake.options import BuildOptions

INSTALL_HINT = "pip install 'flowmake[watch]' (or: pip install watchfiles)"


def load_watchfiles() -> Any:
    """The watchfiles module, or exit 2 naming what to install."""
    try:
        import watchfiles
    except ImportError:
        raise UsageError("build --watch needs the watchfiles package, which is not installed",
                         hint=INSTALL_HINT) from None
    return watchfiles


class Sources:
    """Which changed paths should start a build; absolute paths in, True or False out."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.files: set[str] = set()  # root-relative, or absolute outside the root
        self.folders: list[str] = []  # an input folder: anything below it
        self.globs: list[re.Pattern[str]] = []
        self.ignored: list[str] = [layout.STATE_DIR]  # outputs, state, the cache: never
        self.roots: list[str] = [root]  # what watchfiles watches

    def relative(self, path: str) -> str:
        rel = os.path.relpath(path, self.root).replace(os.sep, "/")
        return path if rel == ".." or rel.startswith("../") else rel

    def __call__(self, change: Any, path: str) -> bool:
        rel = self.relative(path)
        if any(rel == i or rel.startswith(i + "/") for i in self.ignored):
            return False
        return (rel in self.files or any(rel.startswith(f + "/") for f in self.folders)
                or any(g.match(rel) for g in self.globs))

    def describe(self) -> str:
        count = len(self.files)
        extra = [f"{len(self.folders)} folders"] if self.folders else []
        extra += [f"{len(self.globs)} globs"] if self.globs else []
        return f"{count} files" + (f", {', '.join(extra)}" if extra else "")


def sources(ws: Any, patterns: list[str]) -> Sources:
    """The sources of a build of ``patterns`` in the loaded workspace ``ws``."""
    from flowmake.graph import glob_regex

    root = str(ws.root)
    found = Sources(root)
    project = ws.project
    found.files.update(found.relative(str(p)) for p in _flow_files(project, ws.path))
    found.globs += [glob_regex(g) for g in project.globs]  # include and foreach globs
    if project.settings.cache:
        found.ignored.append(found.relative(os.path.join(root, project.settings.cache)))
    for target in project.targets.values():
        found.ignored += [o.path for o in target.outputs if not o.url]
    outside: set[str] = set()
    for name in ws.graph.closure(ws.select(patterns)):
        target = ws.graph.targets[name]
        for inp in target.inputs:
            if inp.url:
                continue
            if inp.glob:
                found.globs.append(glob_regex(inp.path))
            elif os.path.isdir(os.path.join(root, inp.path)):
                found.folders.append(inp.path)
            else:
                found.files.add(inp.path)
            if inp.path.startswith("../"):
                outside.add(_existing_folder(os.path.join(root, inp.path)))
        found.files.update(found.relative(f) for f in ws.code_files(target))
    found.roots += sorted(outside - {root})
    return found


def _flow_files(project: Any, flow_file: Path) -> Iterable[Path]:
    """flow.toml and every file it made flowmake read (includes, params files)."""
    yield flow_file
    yield from (project.root / p for p in project.sources)


def _existing_folder(path: str) -> str:
    """The nearest existing folder at or above ``path`` (watchfiles watches folders)."""
    path = os.path.normpath(path)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


class Watcher:
    """watchfiles in a daemon thread; ``wait`` returns the paths changed since last asked."""

    def __init__(self, watchfiles: Any, relevant: Sources) -> None:
        self.watchfiles = watchfiles
        self.relevant = relevant
        self.changed: set[str] = set()
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.roots: list[str] = []
        self.error: BaseException | None = None

    def use(self, relevant: Sources) -> None:
        """Watch for ``relevant``'s sources from now on (a new thread if its roots moved)."""
        self.relevant = relevant
        if relevant.roots != self.roots or self.thread is None:
            self.close()
            self.stop = threading.Event()
            self.roots = list(relevant.roots)
            self.thread = threading.Thread(target=self._run, args=(self.stop,), daemon=True,
                                           name="flowmake-watch")
            self.thread.start()

    def _run(self, stop: threading.Event) -> None:
        try:
            for changes in self.watchfiles.watch(
                    *self.roots, watch_filter=lambda c, p: self.relevant(c, p),
                    stop_event=stop, raise_interrupt=False, yield_on_timeout=False):
                with self.cond:
                    self.changed.update(path for _, path in changes)
                    self.cond.notify_all()
        except Exception as exc:  # a folder removed, a watch limit reached
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def wait(self) -> set[str]:
        """Block until something relevant changed (Ctrl-C still interrupts)."""
        with self.cond:
            while not self.changed and self.error is None:
                self.cond.wait(0.25)  # short waits: KeyboardInterrupt gets through
            if self.error is not None:
                raise UsageError(f"build --watch: cannot watch the project: {self.error}")
            changed, self.changed = self.changed, set()
        return changed

    def close(self) -> None:
        self.stop.set()


def watch(options: BuildOptions, build: Callable[[], int],
          report: Callable[[FlowmakeError], None]) -> int:
    """Build, then rebuild on every change of a source; returns 130 at Ctrl-C.

    ``build`` runs one build (exit code); ``report`` prints a FlowmakeError as the CLI does.
    """
    watchfiles = load_watchfiles()
    relevant = _sources(options, report)
    if relevant is None:  # no flow file to watch at all (the error is printed)
        return 2
    watcher = Watcher(watchfiles, relevant)
    watcher.use(relevant)  # before the first build: a change during it builds again
    try:
        while True:
            if _guarded(build, report) == 130:
                return 130
            relevant = _sources(options, report) or relevant
            watcher.use(relevant)
            _say(f"watching {relevant.describe()} for changes (Ctrl-C to stop)", options)
            changed = watcher.wait()
            _say(f"changed: {_names(changed, relevant)}; building", options)
    finally:
        watcher.close()


def _guarded(build: Callable[[], int], report: Callable[[FlowmakeError], None]) -> int:
    try:
        return build()
    except FlowmakeError as err:  # a broken flow.toml while editing it: wait for a fix
        report(err)
        return err.exit_code


def _sources(options: BuildOptions, report: Callable[[FlowmakeError], None]
             ) -> Sources | None:
    """The sources as flow.toml says now; None (after printing why) if it cannot be read."""
    from flowmake.cli.parser import open_workspace

    try:
        ws = open_workspace(options.directory, options.file, options.params, options.targets)
    except FlowmakeError as err:
        found = _flow_file_only(options)
        if found is None:
            report(err)
        return found
    try:
        return sources(ws, list(options.targets))
    except FlowmakeError as err:  # e.g. a target named on the command line is gone
        report(err)
        return _flow_file_only(options)
    finally:
        ws.close()


def _flow_file_only(options: BuildOptions) -> Sources | None:
    """With a broken flow.toml: watch it (and what it includes) until it is fixed."""
    from flowmake.cli.parser import flow_file

    path = Path(flow_file(options.directory, options.file))
    if not path.is_file():
        return None
    found = Sources(str(path.parent))
    found.files.add(path.name)
    found.globs.append(re.compile(r"[^/]+\.(toml|ya?ml|json)\Z|.*/[^/]+\.(toml|ya?ml|json)\Z"))
    return found


def _names(paths: set[str], relevant: Sources) -> str:
    shown = sorted(relevant.relative(p) for p in paths)
    more = len(shown) - 3
    return ", ".join(shown[:3]) + (f" and {more} more" if more > 0 else "")


def _say(message: str, options: BuildOptions) -> None:
    if not options.quiet:
        print(f"flowmake: {message}", file=sys.stderr, flush=True)
