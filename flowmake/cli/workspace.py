"""One project opened for a command: its Project and Graph, and lazily its Store and Hasher.

The commands in ``cli.py`` share this instead of each wiring config → graph → store.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowmake import __version__, config, graph, model, warm
from flowmake.errors import ConfigError
from flowmake.fsutil import atomic_write
from flowmake.graph import Graph
from flowmake.model import Project
from flowmake.plan.check import Checker
from flowmake.plan.fingerprint import RACY_NS, Hasher
from flowmake.store import flowlock as flowlock
from flowmake.store import paths as layout
from flowmake.store.db import Record, Store

if TYPE_CHECKING:
    from flowmake import fastpath

CACHE_FORMAT = 3  # 3: the model's values pickled as tuple.__new__(cls, fields)


def _signature(path: Path, overrides: dict[str, Any]) -> tuple[Any, ...] | None:
    """What the compiled flow depends on: the file's stat, the overrides, flowmake's code
    (the loader's modules are stat'ed, not imported: a build whose flow.pickle holds
    needs none of them)."""
    try:
        st = path.stat()
        code: list[Any] = [os.stat(m.__file__ or "").st_mtime_ns for m in (model, graph)]
        with os.scandir(config.__path__[0]) as found:
            code += sorted((e.name, e.stat().st_mtime_ns) for e in found
                           if e.name.endswith(".py"))
    except OSError:
        return None
    return (CACHE_FORMAT, __version__, str(path), st.st_size, st.st_mtime_ns, st.st_ino,
            repr(sorted(overrides.items())), *code)


def find_file(start: Path, file: str | None, *, search: bool = False) -> Path:
    """``config.load.find_file``: a flow file where it is named is returned without
    importing the loader (it is imported to search above, or to say what is wrong)."""
    path = (start / file) if file else start / "flow.toml"
    if path.is_file():
        return path.resolve()
    from flowmake.config.load import find_file as found

    return found(start, file, search=search)


def _read_besides(project: Project) -> tuple[Any, ...]:
    """The stats of what the flow was read from besides flow.toml: included and params
    files, and the folders its include and foreach globs list (a file added or removed
    there changes the folder's mtime). Empty for a flow that reads nothing else."""
    found: list[Any] = []
    for rel in project.sources:
        try:
            st = os.stat(project.root / rel)
            found.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            found.append((rel, -1, -1, -1))
    if not project.globs:
        return tuple(found)
    from flowmake.config.flowfiles import listing

    return (*found, *listing(project.root, project.globs))


def _settled(besides: tuple[Any, ...], saved_ns: int) -> bool:
    """No mtime among them too close to the pickle's writing to be trusted."""
    return all(entry[-2] < saved_ns - RACY_NS for entry in besides)


def load_compiled(path: Path, overrides: dict[str, Any]
                  ) -> tuple[Project, Graph, bool, int | None]:
    """flow.toml as a Project and Graph, from ``.flowmake/flow.pickle`` when unchanged.

    Parsing a 10,000-target flow.toml takes about half a second; the pickle takes a
    fraction of that. A file modified within RACY_NS of the pickle's writing is re-read.
    The flag says whether flow.toml was parsed (its targets may have changed); the int is
    the stamp of the flow.pickle that holds them (the time it was written, in ns; None
    when it could not be written), which what is derived from them is saved under
    (cli/graphtexts.py).
    """
    cache = path.parent / layout.STATE_DIR / layout.COMPILED_FLOW
    signature = _signature(path, overrides)
    try:
        # Decoded once by a resident server for its forks when this very file was
        # (flowmake/warm.py); read and unpickled here otherwise.
        saved, saved_ns, _names, project, graph_, besides = warm.read(str(cache), COMPILED)
        if saved == signature and signature is not None and signature[4] < saved_ns - RACY_NS \
                and (not besides or (_read_besides(project) == besides
                                     and _settled(besides, saved_ns))):
            return project, graph_, False, saved_ns
    except (OSError, EOFError, pickle.PickleError, ValueError, TypeError, AttributeError):
        pass
    from flowmake.config.load import load
    from flowmake.graph import build_graph

    # The pickle's time is taken before anything is read: a file read by the parse and
    # edited during it (a long one, at 100,000 targets) is newer, so never trusted.
    now = time.time_ns()
    project = load(path, overrides, kinds=_find_kind)
    graph_ = build_graph(project)
    besides = _read_besides(project)
    stamp = None
    if signature is not None:
        try:
            cache.parent.mkdir(exist_ok=True)
            # The names first: unpickled one after another, they share few memory pages,
            # so that walking them in a fork of the resident server (their reference counts
            # written) copies few pages: scattered among the Targets, walking 100,000 names
            # copied ~50 ms of pages in each command.
            names = tuple(project.targets)
            atomic_write(cache, pickle.dumps((signature, now, names, project, graph_,
                                              besides), protocol=5), fsync=False)
            warm.note(str(cache), COMPILED)
            stamp = now
        except OSError:
            pass  # a read-only project still works, just slower
    return project, graph_, True, stamp


def _unpickled(data: bytes) -> Any:
    """``pickle.loads`` with the cyclic garbage collector paused: the 100,000 objects of a
    10,000-target flow would otherwise set off its passes over and over (0.18 -> 0.10 s)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        loaded = pickle.loads(data)
        # Out of the young generation, unvisited: its next pass would walk all of them
        # (0.3 s at 100,000 targets). freeze() moves every object to the permanent
        # generation; unfreeze() from there to the oldest, except in a resident fork,
        # which leaves them frozen with its server's (see warm.thaw).
        gc.freeze()
        warm.thaw()
        return loaded
    finally:
        if enabled:
            gc.enable()


COMPILED = "compiled-flow"
warm.LOADERS[COMPILED] = _unpickled


def _find_kind(key: str, modules: tuple[str, ...], root: str) -> Any:
    """The plugin kind serving a target key (plugins load only for such a key)."""
    from flowmake.plugin.manager import find_kind

    return find_kind(key, modules, root)


def open_store(state_dir: Path) -> Store:
    """The project's store, wired so that any write of records voids the no-op fast path's
    snapshot (`clean`, `accept` or a build never leave it stale)."""
    from flowmake import fastpath

    snapshot = layout.snapshot(str(state_dir))
    return Store(state_dir, on_change=lambda: fastpath.invalidate(snapshot))


class Workspace:
    def __init__(self, directory: Path, file: str | None, overrides: dict[str, Any], *,
                 search: bool = False) -> None:
        # before anything of the project is read: a path this command did not hash must
        # be older than this to be saved in the no-op snapshot (fastpath.Seen)
        self.opened_ns = time.time_ns()
        self.path = find_file(directory, file, search=search)  # search: flow.toml above too
        self.project, self.graph, self.reparsed, self.compiled = load_compiled(
            self.path, overrides)
        # The stat cache as the Hasher gets it; None: all of it, loaded (a cone build
        # sets a mapping that reads entries one by one: cli/cone.py).
        self.stat_rows: dict[str, Any] | None = None

    @property
    def root(self) -> Path:
        return self.project.root

    @cached_property
    def store(self) -> Store:
        return open_store(self.project.state_dir)

    @cached_property
    def hasher(self) -> Hasher:
        from flowmake.plugin.urls import Urls

        # URL paths: the project's plugins' backends, loaded on the first URL
        stats = self.store.stat_cache() if self.stat_rows is None else self.stat_rows
        return Hasher(str(self.root), stats, Urls(lambda: self.plugins))

    @cached_property
    def artifacts(self) -> Any:
        """The artifact cache (artifacts.py); None with ``[flow] cache = false``."""
        from flowmake.cache.artifacts import open_artifacts, warn_stderr

        return open_artifacts(self.project, self.hasher, warn_stderr)

    @cached_property
    def plugins(self) -> Any:
        """The plugin manager, loaded on first use (the no-op fast path never needs it)."""
        from flowmake.plugin.manager import Plugins

        return Plugins(self.project.settings.plugins, str(self.root))

    def check_plugins(self, names: Iterable[str] | None = None) -> None:
        """Every URL needs a backend, every loaded input a format: exit 2 before running
        (for the targets ``names``: a cone build's; else every target)."""
        from flowmake.errors import ConfigError, PluginError
        from flowmake.formats import extension
        self.plugins  # noqa: B018 - loads [flow] plugins: a missing module is exit 2 here
        targets = self.project.targets
        chosen: Iterable[model.Target] = targets.values()  # in flow.toml's order: the first named
        if names is not None:  # only these Targets are walked: a cone's few, not every one
            wanted = names if isinstance(names, (set, frozenset)) else set(names)
            chosen = [targets[n] for n in targets if n in wanted]
        for target in chosen:
            where = f"targets.{target.matrix or target.name}"
            action = target.action
            if isinstance(action, model.PluginAction):
                self._check_kind(action.kind, f"{where}.{action.kind}")
            python = target.kind is model.BuiltinKind.PYTHON or (
                isinstance(action, model.PluginAction) and action.values)
            paths = [(i.path, f"{where}.inputs", i.name is not None and python)
                     for i in target.inputs]
            # A python target's return value is saved in its outputs' formats. One without
            # an extension (a folder) is left to the function to write.
            paths += [(o.path, f"{where}.outputs", python and bool(extension(o.path)))
                      for o in target.outputs]
            for path, key, needs_format in paths:
                try:
                    if "://" in path:
                        self.plugins.backend_class(path)
                    if needs_format:
                        self.plugins.format_for(path)
                except PluginError as exc:
                    raise ConfigError(exc.message, file=self.path.name, key=key,
                                      hint=exc.hint) from None
        remote = self.project.settings.remote
        if remote and "://" in remote and not remote.startswith("file://"):
            try:  # the remote cache's backend too (a folder needs none)
                self.plugins.backend_class(remote)
            except PluginError as exc:
                raise ConfigError(exc.message, file=self.path.name, key="flow.remote",
                                  hint=exc.hint) from None

    def _check_kind(self, key: str, where: str) -> None:
        """A plugin kind's target (read from the compiled flow) needs its plugin."""
        from flowmake.errors import PluginError

        try:
            self.plugins.target_kind(key)
        except PluginError as exc:
            raise ConfigError(exc.message, file=self.path.name, key=where,
                              hint=exc.hint) from None

    @cached_property
    def code(self) -> Any:
        """Code fingerprints of python targets (codefp.py), memoized for this command;
        a plugin kind's code key comes from its kind."""
        from flowmake.plan.codefp import CodeFingerprint

        return CodeFingerprint(str(self.root), self.hasher, str(self.project.state_dir),
                               kinds=lambda key: self.plugins.target_kind(key))

    def checker(self, *, force: bool = False, cache: bool = True,
                records: dict[str, Record] | None = None) -> Checker:
        """A Checker over the records as they are now (call it again after taking the lock),
        or over ``records`` (a cone build's, read on demand).

        With ``cache`` (and a cache configured) a stale target whose key is cached is
        "restorable"."""
        cached = self.artifacts.has if cache and self.artifacts is not None else None
        if records is None:
            records = self.store.records()
        return Checker(self.graph, records, self.hasher, force=force,
                       code_parts=lambda target: self.code.parts(target), cached=cached,
                       lock=self.lock_records)

    # -- flow.lock --------------------------------------------------------------------

    @cached_property
    def lockfile(self) -> flowlock.LockFile:
        return flowlock.LockFile(self.root / flowlock.NAME, self.project.state_dir)

    def lock_records(self) -> dict[str, Record]:
        """flow.lock's entries as records (none without it, or with ``[flow] lock = false``),
        each read when first asked for (a cone build needs a few of 10,000).

        Raises:
            ConfigError: flow.lock cannot be read (``flow.lock:LINE``, what to do).
        """
        if not self.project.settings.lock:
            return {}
        from flowmake.cli.cone import Lazy

        return Lazy(self._lock_record)

    def _lock_record(self, name: str) -> Record | None:
        c = self.lockfile.entry(name)
        return None if c is None else Record(name, c.key, c.parts_json, c.outputs_json, None,
                                             0.0, 0.0)

    def validate_lock(self) -> None:
        """A broken flow.lock is exit 2 before anything runs (read only if it changed)."""
        if self.project.settings.lock:
            self.lockfile.validate()

    def sync_lock(self, changed: dict[str, Record | None]) -> None:
        """After a command that wrote or forgot records: flow.lock with those entries, and
        without entries of targets gone from flow.toml; untouched if its bytes would not
        change. ``changed`` maps a name to its new record, or None when it was forgotten."""
        if not self.project.settings.lock or not (changed or self.reparsed):
            return
        try:
            self.lockfile.update(changed, self.graph.targets, self.compiled)
        except ConfigError as exc:
            print(f"flowmake: warning: flow.lock not updated: {exc}", file=sys.stderr)
        except OSError as exc:
            print(f"flowmake: warning: flow.lock not written: {exc}", file=sys.stderr)

    def select(self, patterns: list[str]) -> list[str]:
        """The named targets; with none, ``[flow] default`` or every target."""
        if not patterns:
            if not self.project.settings.default:
                return list(self.graph.targets)  # every target, in declared order
            patterns = list(self.project.settings.default)
        return self.graph.select(patterns)

    def code_files(self, target: Any) -> list[str]:
        """Absolute paths of the source files behind a python target's code fingerprint."""
        if target.kind is model.BuiltinKind.CMD:
            return []
        files: list[str] = self.code.files(target)  # python, and a plugin kind's
        return files

    def status_roots(self, selected: list[str]) -> list[str]:
        """The status tree's roots: selected targets no other selected target depends on."""
        chosen = set(selected)
        return [n for n in selected if not any(d in chosen for d in self.graph.downstream[n])]

    def save_fast_path(self, overrides: list[str], patterns: list[str], names: list[str]) -> None:
        """Remember the stats behind an all-fresh plan of ``names`` (in build order), for the
        next no-op build or status with the same ``patterns`` (fastpath.py)."""
        from flowmake import fastpath

        if self.plugins.has_observers():
            return  # observer plugins must see every build
        if self.project.globs:
            return  # a new file for an include or foreach glob changes the flow: no stats say it
        root = str(self.root)
        sources = [f"{root}/{rel}" for rel in self.project.sources]  # includes, params
        keyed: list[list[str]] = []
        env: set[str] = set()
        for name in names:
            paths = self.key_paths(name)
            if paths is None:
                return
            keyed.append(paths)
            env.update(self.graph.targets[name].env)
        upstream = {n: list(self.graph.upstream[n]) for n in names}
        fastpath.save(layout.snapshot(str(self.project.state_dir)), str(self.path), overrides,
                      patterns, env, sources, keyed, names, self.project.settings.history,
                      upstream, self.status_roots(self.select(patterns)), self.seen(),
                      self.compiled)

    def seen(self) -> fastpath.Seen:
        """What this command's digests were made at (``fastpath.Seen``), by absolute path."""
        from flowmake import fastpath

        hasher: Hasher | None = self.__dict__.get("hasher")  # none made: nothing hashed
        root = str(self.root)
        prefix = root + "/"

        def stat_of(path: str) -> tuple[int, int, int] | None:
            if hasher is None:
                return None
            rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
            return hasher.seen(rel)

        return fastpath.Seen(stat_of, self.opened_ns)

    def key_paths(self, name: str) -> list[str] | None:
        """The absolute paths whose stats vouch for ``name``'s key in the fast path's
        snapshot (inputs, outputs, code files); None for a target no stat vouches for
        (``always``, a glob or URL)."""
        target = self.graph.targets[name]
        if target.always or any(i.glob or i.url for i in target.inputs) or any(
                o.url for o in target.outputs):
            return None
        root = str(self.root)
        paths = [f"{root}/{i.path}" for i in target.inputs]
        paths += [f"{root}/{o.path}" for o in target.outputs]
        return paths + self.code_files(target)

    def save_stats(self) -> None:
        """Write back what the stat cache learned (cheap when nothing changed)."""
        if self.hasher.dirty:
            self.store.put_stats(self.hasher.dirty)
            self.hasher.dirty.clear()
        if "code" in self.__dict__:
            self.code.save()  # the analyses of source files not analysed before

    def close(self) -> None:
        if "lockfile" in self.__dict__:
            self.lockfile.close()
        if "store" in self.__dict__:
            self.store.close()
