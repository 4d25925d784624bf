"""Decide what is stale and why: Graph + Store records + fingerprints -> Steps.

A target's key hashes what runs, the params it uses, its env values, its inputs' content
(and each glob's matched set) and its declared output paths. Checks go cheapest first:
the key from stat-cached digests, then the outputs; the parts of the key are diffed
against the record only when the keys differ, to name the reasons (plan/reasons.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple

from flowmake.digest import hash_bytes
from flowmake.errors import ConfigError
from flowmake.graph import Graph
from flowmake.model import Call, PluginAction, Target, TargetStatus
from flowmake.plan.fingerprint import Hasher
from flowmake.plan.reasons import Reason, ReasonDetail, diff_parts

State = TargetStatus  # fresh | stale | restorable (model.py: the Enums live there)


class Step(NamedTuple):
    """The decision for one target: its key (None when an input does not exist yet).

    ``source`` says what a fresh target's freshness comes from: its local record
    ("record") or its flow.lock entry ("lock"); None for a stale one."""

    target: Target
    key: str | None
    parts: dict[str, Any] | None
    reasons: tuple[ReasonDetail, ...]
    state: State
    source: str | None = None

    @property
    def name(self) -> str:
        return self.target.name


class Plan(NamedTuple):
    steps: tuple[Step, ...]

    def stale(self) -> list[Step]:
        return [s for s in self.steps if s.state is not State.FRESH]


class Checker:
    """Computes keys and reasons for targets; shared by ``status``, ``why`` and ``build``.

    ``records`` maps target name to its Record; ``lock`` gives flow.lock's entries (read
    on first need: a target whose record matches never needs them); ``code_parts`` gives
    a python target's code fingerprint (module -> digest); ``cached`` says whether the
    artifact cache holds a key (restorable).

    A target found fresh through its lock entry gets that entry as its record here (not
    in the store: the scheduler keeps it), so that its dependents' ``deps`` parts see it.
    """

    def __init__(
        self,
        graph: Graph,
        records: dict[str, Any],
        hasher: Hasher,
        *,
        force: bool = False,
        code_parts: Callable[[Target], dict[str, str]] | None = None,
        cached: Callable[[Target, str], bool] | None = None,
        environ: Mapping[str, str] = os.environ,
        lock: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.graph, self.records, self.hasher = graph, records, hasher
        self._lock = lock
        self._lock_entries: Mapping[str, Any] | None = None
        # Outputs a restore would put in place, by path: what ``plan`` reads for the
        # inputs of a restorable target's dependents (they are judged as after it).
        self.predicted: dict[str, str] = {}
        self.expected: dict[str, Mapping[str, str]] = {}  # a restorable target's outputs
        self.force = force
        self.code_parts = code_parts
        self.cached = cached
        self.environ = environ
        # Targets the no-op snapshot vouches for outside an edit's cone (cli/cone.py):
        # fresh without a look at their inputs, outputs or record.
        self.trusted: AbstractSet[str] = frozenset()

    def check_sources(self, names: Iterable[str]) -> None:
        """Every input no target produces must exist, before anything runs."""
        digest = self.hasher.digest
        for name in names:
            paths = list(self.graph.sources[name])
            # URL inputs (not in graph.sources) are checked through their backend.
            paths += [i.path for i in self.graph.targets[name].inputs
                      if i.url and not i.glob and not self.graph.producers_of(i.path)]
            for path in paths:
                if digest(path) is None:
                    target = self.graph.targets[name]
                    raise ConfigError(
                        f"input '{path}' of target '{name}' does not exist and no target"
                        " produces it", key=f"targets.{target.matrix or target.name}.inputs")

    # -- the key ----------------------------------------------------------------------

    def parts(self, target: Target) -> tuple[dict[str, Any] | None, list[str]]:
        """The parts of the key, or None and the inputs that do not exist yet."""
        missing: list[str] = []
        inputs: dict[str, str] = {}
        globs: dict[str, list[str]] = {}
        for inp in target.inputs:
            if inp.glob:
                files = self.hasher.glob(inp.path)
                globs[inp.path] = files
                paths = files
            else:
                paths = [inp.path]
            for path in paths:
                digest = self.predicted.get(path) or self.hasher.digest(path)
                if digest is None:
                    missing.append(path)
                else:
                    inputs[path] = digest
        if missing:
            return None, missing
        parts: dict[str, Any] = {"action": target.action.text}
        if isinstance(target.action, Call | PluginAction) and self.code_parts is not None:
            parts["code"] = self.code_parts(target)
        if target.params:
            parts["params"] = _jsonable(target.params)
        if target.project_params:
            parts["project_params"] = _jsonable(target.project_params)
        if target.env:
            parts["env"] = {n: hash_bytes(self.environ.get(n, "\0unset")) for n in target.env}
        parts["inputs"] = inputs
        if globs:
            parts["globs"] = globs
        if target.deps:
            parts["deps"] = self._dep_parts(target)
        parts["outputs"] = [o.path for o in target.outputs]
        return parts, []

    def _dep_parts(self, target: Target) -> dict[str, str]:
        """What each ``deps`` target left: its outputs' hashes, or its key when it has none.

        Outputs rather than keys, so that early cutoff holds across ``deps`` too.
        """
        wanted = set(target.deps)
        parts: dict[str, str] = {}
        for name in self.graph.upstream[target.name]:
            dep = self.graph.targets[name]
            if name not in wanted and dep.matrix not in wanted:
                continue  # an upstream through a file input: its outputs are inputs already
            if dep.outputs:
                digests = (f"{o.path}\0{self.predicted.get(o.path) or self.hasher.digest(o.path) or ''}"
                           for o in dep.outputs)
                parts[name] = hash_bytes("\x1f".join(digests))
            else:
                record = self.records.get(name)
                parts[name] = record.key if record is not None else ""
        return parts

    @staticmethod
    def key(parts: dict[str, Any]) -> str:
        """XXH3-128 of the parts; sorted and separated so that order never matters."""
        chunks = [parts["action"]]
        for name in ("code", "params", "project_params", "env", "globs", "deps"):
            if name in parts:
                chunks.append(name + json.dumps(parts[name], sort_keys=True, default=str))
        chunks.append("\x1f".join(f"{p}\0{d}" for p, d in sorted(parts["inputs"].items())))
        chunks.append("\x1f".join(parts["outputs"]))
        return hash_bytes("\x1e".join(chunks))

    # -- decisions --------------------------------------------------------------------

    def check(self, target: Target, upstream_stale: Iterable[str] = ()) -> Step:
        """Fresh, stale (with every reason) or restorable."""
        if target.name in self.trusted:
            return Step(target, None, None, (), State.FRESH, "record")
        reasons = [ReasonDetail(Reason.UPSTREAM, u) for u in upstream_stale]
        parts, missing = self.parts(target)
        key = None if parts is None else self.key(parts)
        if parts is None and not reasons:
            reasons += [ReasonDetail(Reason.INPUT_REMOVED, p) for p in missing]
        found, source, matched = self._matching(target, key)
        if found is None:
            # Stale: named against the local record, else the lock entry (a fresh clone).
            record, source = self.records.get(target.name), None
            if record is None:
                record = self.lock_entry(target.name)
            if record is None:
                reasons.append(ReasonDetail(Reason.NEW))
            elif key is not None:
                # A key written by another flowmake version may differ in no part we can name.
                reasons += diff_parts(record.parts, parts or {},
                                      call=isinstance(target.action, Call | PluginAction)) or [
                                          ReasonDetail(Reason.KEY)]
        else:
            reasons += found
        if target.always:
            reasons.append(ReasonDetail(Reason.ALWAYS))
        if self.force:
            reasons.append(ReasonDetail(Reason.FORCED))
        state = State.FRESH
        if reasons:
            restorable = (key is not None and self.cached is not None and not self.force
                          and not target.always and self.cached(target, key))
            state = State.RESTORABLE if restorable else State.STALE
            source = None
            if restorable and matched is not None and not upstream_stale:
                self.expected[target.name] = matched.outputs
        return Step(target, key, parts, tuple(reasons), state, source)

    def _matching(self, target: Target, key: str | None
                  ) -> tuple[list[ReasonDetail] | None, str | None, Any]:
        """Against the record, then the lock entry, whose key is ``key``: the output reasons
        (none: fresh), where it came from and the matching entry; Nones when neither has
        that key."""
        if key is None:
            return None, None, None
        name = target.name
        found: tuple[list[ReasonDetail], str, Any] | None = None
        record = self.records.get(name)
        if record is not None and record.key == key:
            found = (self.output_reasons(record.outputs, target), "record", record)
            if not found[0]:
                return found
        entry = self.lock_entry(name)
        if entry is not None and entry.key == key:
            from_lock = self.output_reasons(entry.outputs, target)
            if not from_lock:
                self.records[name] = entry  # its dependents' ``deps`` parts see it
                return from_lock, "lock", entry
            found = found or (from_lock, "record", entry)
        return found or (None, None, None)

    def lock_entry(self, name: str) -> Any:
        """The flow.lock entry of ``name`` as a Record-like value, or None."""
        if self._lock_entries is None:
            self._lock_entries = self._lock() if self._lock is not None else {}
        return self._lock_entries.get(name)

    def output_reasons(self, recorded: Mapping[str, str],
                       target: Target | None = None) -> list[ReasonDetail]:
        """Each recorded output missing or modified, and (``target`` given) each declared
        output the entry has no hash for: such an entry does not vouch for it."""
        reasons = []
        if target is not None:
            reasons += [ReasonDetail(Reason.OUTPUT_UNRECORDED, o.path)
                        for o in target.outputs if o.path not in recorded]
        for path, digest in recorded.items():
            now = self.hasher.digest(path)
            if now is None:
                reasons.append(ReasonDetail(Reason.OUTPUT_MISSING, path))
            elif now != digest:
                reasons.append(ReasonDetail(Reason.OUTPUT_MODIFIED, path, digest, now))
        return reasons

    def plan(self, names: Iterable[str]) -> Plan:
        """Steps in build order; a target downstream of a stale one is stale too."""
        order = self.graph.order(names)
        would_run: set[str] = set()
        steps = []
        for name in order:
            target = self.graph.targets[name]
            ups = [u for u in self.graph.upstream[name] if u in would_run]
            step = self.check(target, ups)
            outputs = self.expected.get(name)
            if outputs is not None:
                # A restore puts back the outputs it had: its dependents are judged on
                # those (restorable or fresh in a clone with gitignored outputs).
                self.predicted.update(outputs)
            elif step.state is not State.FRESH:
                would_run.add(name)
            steps.append(step)
        return Plan(tuple(steps))


def _jsonable(value: Any) -> Any:
    """Params as JSON values (TOML dates and times become ISO strings): parts are stored
    as JSON and must read back as they were hashed."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
