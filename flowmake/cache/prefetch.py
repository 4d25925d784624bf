"""Fetch the remote cache's entries for many targets at once, in parallel.

A build (and ``cache pull``) would otherwise look each stale target up in the remote one
after another, as the scheduler reaches it: two round trips per target. Here the keys
are computed wave by wave in build order, and each wave's records and blobs are fetched
in parallel into the local cache. A target's key may depend on upstream outputs that
are not in place yet: those are taken from the upstream entries found (what the build
will restore), on a Hasher of its own so that the build's digests are never touched.
A target downstream of one that will really run has a key no one can know yet: it is
left to the scheduler.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flowmake.cache.local import LocalCache
from flowmake.cache.records import URL, ActionRecord
from flowmake.plan.check import Checker
from flowmake.plan.fingerprint import Hasher

if TYPE_CHECKING:
    from flowmake.cache.remote import Transfers
    from flowmake.graph import Graph


def shadow(checker: Checker) -> Checker:
    """A Checker like ``checker`` whose Hasher shares the stat cache but not the digests."""
    hasher = Hasher(checker.hasher.root, checker.hasher.cache, checker.hasher.urls)
    return Checker(checker.graph, checker.records, hasher, code_parts=checker.code_parts,
                   environ=checker.environ)


def prefetch(graph: Graph, names: Iterable[str], checker: Checker, local: LocalCache,
             transfers: Transfers, *, skip_fresh: bool,
             seen: dict[str, ActionRecord | None] | None = None) -> Counter[str]:
    """Pull the entries of ``names`` (upstream first); counts of what happened.

    Args:
        checker: computes the keys (use :func:`shadow` of the build's own).
        skip_fresh: leave out targets whose record already has their key (a build).
        seen: filled with every remote answer, key → record, or None when it is absent,
            rejected or lacks a blob.
    """
    order = graph.order(names)
    chosen, done, unknown = set(order), set[str](), set[str]()
    counts: Counter[str] = Counter(entries=0, missing=0, local=0)
    pending = order
    while pending:
        wave = [n for n in pending if all(u in done for u in graph.upstream[n] if u in chosen)]
        keys = {}
        for name in wave:
            key = _key(graph, checker, name, unknown)
            if key is None:
                unknown.add(name)
            elif not (skip_fresh and _recorded(checker, name, key)):
                keys[name] = key
        found = {n: local.read_action(k) for n, k in keys.items()}
        counts["local"] += sum(r is not None for r in found.values())
        remote = transfers.fetch_records({k: n for n, k in keys.items() if found[n] is None})
        complete = transfers.fetch_many([r for r in remote.values() if r is not None])
        # A record whose blobs could not all be had (warned about) is as good as absent:
        # the build must not try it again, nor call its target restorable.
        remote = {k: r if complete.get(k) else None for k, r in remote.items()}
        if seen is not None:
            seen.update(remote)
        for name, key in keys.items():
            record = found[name] or remote.get(key)
            if record is None:
                unknown.add(name)  # it will run: what comes out of it is anyone's guess
                counts["missing"] += 1
                continue
            if found[name] is None:
                local.write_action(record)
                counts["entries"] += 1
            _assume_outputs(checker.hasher, record)
        done.update(wave)
        pending = [n for n in pending if n not in done]
    return counts


def _key(graph: Graph, checker: Checker, name: str, unknown: set[str]) -> str | None:
    target = graph.targets[name]
    if not target.cache or target.always or any(u in unknown for u in graph.upstream[name]):
        return None
    parts, _ = checker.parts(target)
    return None if parts is None else checker.key(parts)


def _recorded(checker: Checker, name: str, key: str) -> bool:
    record: Any = checker.records.get(name)
    return record is not None and record.key == key


def _assume_outputs(hasher: Hasher, record: ActionRecord) -> None:
    """Take an entry's outputs as in place, so that downstream keys can be computed."""
    for path, entry in record.outputs.items():
        hasher.forget([path])
        hasher.memo[path] = entry.fingerprint if entry.kind == URL else entry.digest
