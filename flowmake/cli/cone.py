"""Cone planning: the edit-one-file build checks only what a change can reach (issue 17).

When the no-op fast path's snapshot (fastpath.py) is this build's (same signature: flow
file, overrides, selection, env values, version, site folders) but some of its paths'
stats changed, the targets it vouched for whose key paths are all unchanged, and that
are not downstream of a target with a changed one, are fresh without a check: at the
snapshot's save they were all fresh, every record write since would have deleted the
snapshot (the store's ``on_change``; `clean` and `accept` too), and nothing their keys
read has a new stat. Only the cone (the changed paths' targets and everything
downstream of them) is checked, with its records read one by one.

After the build, if every target ended fresh, built or restored, the snapshot is saved
again with only the cone's paths stat'ed anew (``fastpath.update``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from flowmake import fastpath
from flowmake.store import paths as layout

if TYPE_CHECKING:
    from flowmake.cli.workspace import Workspace
    from flowmake.plan.check import Checker

TRACE_ENV = "FLOWMAKE_TRACE"  # "cone": a line on stderr says how the cone was planned


class Asked(Protocol):
    """What a command was asked for, as the snapshot's signature has it (BuildOptions,
    or :class:`Selection` for `status` and `graph`)."""

    @property
    def params(self) -> tuple[str, ...]: ...
    @property
    def targets(self) -> tuple[str, ...]: ...
    @property
    def force(self) -> bool: ...


class Selection(NamedTuple):
    """The ``-p`` overrides and target patterns of a command that checks, never builds."""

    params: tuple[str, ...]
    targets: tuple[str, ...]
    force: bool = False


class Cone(NamedTuple):
    """A build's cone: the snapshot it came from and the targets to check."""

    identity: tuple[int, int, int]  # the snapshot file's, when read
    saved: tuple[Any, ...]
    checked: frozenset[str]  # the cone: checked as usual
    trusted: AbstractSet[str]  # fresh without a check (never changed)


def plan(ws: Workspace, options: Asked, names: set[str]) -> Cone | None:
    """The cone of this build, or None for a full check (no snapshot, another signature,
    a change not located or in an included file, ``-B``)."""
    if options.force:
        return None
    from flowmake.cli.noop import take_check

    flow_file, overrides, selection = str(ws.path), list(options.params), list(options.targets)
    found = take_check(flow_file, overrides, selection) or fastpath.check(
        layout.snapshot(str(ws.project.state_dir)), flow_file, overrides, selection)
    if found is None:
        return None
    ident, saved, differ = found
    vouched = fastpath.fields(saved[6]) if saved[7] else []
    # the same targets (vouched has each once): no set of 10,000 made for the comparison
    if len(vouched) != len(names) or not names.issuperset(vouched):
        return None
    owners = fastpath.owners(saved, differ)
    if owners is None:
        return None
    checked = ws.graph.downstream_cone(vouched[t] for t in owners) & names
    _trace(f"cone: {len(differ)} changed paths, {len(checked)} of {len(names)} targets"
           " checked")
    if "hasher" not in ws.__dict__:  # not made yet: it reads the stat cache on demand
        ws.stat_rows = rows = Lazy(ws.store.stat_entry, ws.store.stat_entries)
        targets = [ws.graph.targets[n] for n in checked]
        rows.preload([i.path for t in targets for i in t.inputs if not (i.url or i.glob)]
                     + [o.path for t in targets for o in t.outputs if not o.url])
    return Cone(ident, saved, frozenset(checked), names - checked)  # one set of 10,000, not two


def still_valid(ws: Workspace, options: Asked, cone: Cone | None) -> Cone | None:
    """The cone if its snapshot is still the one read (under the lock: no build, `clean`
    or `accept` wrote a record since) and its signature still holds (flow.toml was not
    edited since the no-op check, before the project was loaded), else None."""
    if cone is None:
        return None
    _, sig, env_names, site_dirs = cone.saved[:4]
    if fastpath.identity(layout.snapshot(str(ws.project.state_dir))) != cone.identity or \
            fastpath.signature(str(ws.path), list(options.params), list(options.targets),
                               env_names, site_dirs) != sig:
        _trace("cone: the snapshot or flow.toml changed meanwhile: a full check")
        return None
    return cone


class Lazy(dict[str, Any]):
    """The store's records or stat-cache entries, each read on first use (a cone build
    needs few of them), or together beforehand (``preload``, with ``load_many``)."""

    def __init__(self, load: Callable[[str], Any],
                 load_many: Callable[[list[str]], Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self._load, self._load_many = load, load_many
        self._absent: set[str] = set()

    def preload(self, names: Iterable[str]) -> None:
        """Read those of ``names`` not read yet in one go: a cone build knows whose it will
        ask for, and a query for 55 costs what two or three one by one do (~50 us each)."""
        if self._load_many is None:
            return
        wanted = [n for n in dict.fromkeys(names)
                  if not dict.__contains__(self, n) and n not in self._absent]
        if not wanted:
            return
        found = self._load_many(wanted)
        for name in wanted:
            value = found.get(name)
            if value is None:
                self._absent.add(name)
            else:
                dict.__setitem__(self, name, value)

    def get(self, name: str, default: Any = None) -> Any:
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        if name in self._absent:
            return default
        record = self._load(name)
        if record is None:
            self._absent.add(name)
            return default
        self[name] = record
        return record

    def __missing__(self, name: str) -> Any:
        record = self.get(name)
        if record is None:
            raise KeyError(name)
        return record

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __setitem__(self, name: str, record: Any) -> None:
        self._absent.discard(name)
        super().__setitem__(name, record)


def checker(ws: Workspace, cone: Cone | None, *, force: bool = False,
            cache: bool = True) -> Checker:
    """A Checker over the records as they are now; for a cone, over the cone's records
    and flow.lock entries (read together), every other target trusted."""
    if cone is None:
        return ws.checker(force=force, cache=cache)
    records = Lazy(ws.store.record, ws.store.records_named)
    records.preload(cone.checked)
    if ws.project.settings.lock:
        ws.lockfile.preload(cone.checked)
    found = ws.checker(force=force, cache=cache, records=records)
    found.trusted = cone.trusted
    return found


def resave(ws: Workspace, cone: Cone) -> bool:
    """After a cone build or check in which every target ended fresh, built or
    restored: the snapshot again, with the cone's paths stat'ed anew. False if not
    saved."""
    if ws.plugins.has_observers():
        return False
    vouched = fastpath.fields(cone.saved[6])
    indices = {n: i for i, n in enumerate(vouched)}
    keyed: dict[int, list[str]] = {}
    for name in cone.checked:
        paths = ws.key_paths(name)
        if paths is None:
            return False
        keyed[indices[name]] = paths
    saved = fastpath.update(layout.snapshot(str(ws.project.state_dir)), cone.saved,
                            set(keyed), keyed, ws.seen(), ws.compiled)
    _trace(f"cone: snapshot {'saved' if saved else 'not saved'}")
    return saved


def checked_fresh(ws: Workspace, options: Asked, names: set[str]
                  ) -> tuple[Cone | None, Checker, bool]:
    """`status` and `graph` after an edit or a cone build: (the cone, or None for a
    full check; a Checker for the targets ``names``, the cone's others trusted; whether
    the cone's targets are all fresh from local records). When they are, the snapshot
    is saved again as a cone build saves it (unless a build wrote meanwhile, or holds
    the lock: never waited for), so that the next command answers from stats alone."""
    from flowmake.model import TargetStatus
    from flowmake.store.mutex import project_lock

    found = plan(ws, options, names)
    if found is None:
        return None, checker(ws, None), False
    ws.check_plugins(found.checked)  # as `build -n` does: a missing plugin is exit 2
    ws.validate_lock()
    version = ws.store.data_version()
    made = checker(ws, found)
    made.check_sources(found.checked)
    steps = made.plan(found.checked).steps
    ws.save_stats()
    fresh = all(s.state is TargetStatus.FRESH and s.source == "record" for s in steps)
    if fresh:
        with project_lock(ws.project.state_dir, None) as held:
            if held and ws.store.data_version() == version and still_valid(
                    ws, options, found) is not None:
                resave(ws, found)
    return found, made, fresh


def _trace(message: str) -> None:
    if "cone" in os.environ.get(TRACE_ENV, ""):
        print(f"flowmake: {message}", file=sys.stderr)
