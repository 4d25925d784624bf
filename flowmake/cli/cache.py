"""`flowmake cache status|gc|push|pull`: look after the artifact cache (cache.py, remote.py).

- ``status``: where the cache is, its entries and size, the remote.
- ``gc``: drop entries unused for ``--max-age`` days and/or the least recently used until
  the cache fits ``--max-size`` (one of them is required); entries the current records use are always kept, and so
  are blobs written in the last hour that no entry names yet (a build may be saving them).
  "Last used" is the record's ``used`` time in index.db; the freed pages of index.db are
  given back to the filesystem at the end.
- ``push``: send the entries of the current records to the remote.
- ``pull``: fetch the remote's entries for the targets' current keys, so that a build
  restores them (a target's key may depend on upstream outputs: those are taken from
  the entries pulled, in build order, as the build would restore them).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowmake.cache.artifacts import Artifacts
from flowmake.cache.local import LocalCache
from flowmake.cache.remote import Transfers
from flowmake.cli.workspace import Workspace
from flowmake.errors import UsageError
from flowmake.report import jsonout

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
YOUNG_ORPHAN = 3600.0  # seconds: a blob this new may belong to a record being written


def cache_command(ws: Workspace, args: argparse.Namespace) -> int:
    artifacts: Artifacts | None = ws.artifacts
    try:
        if args.action == "status":
            doc = status(ws, artifacts)
        elif artifacts is None:
            raise UsageError("the artifact cache is disabled ([flow] cache = false)")
        elif args.action == "gc":
            doc = collect(ws, artifacts.local, args)
        else:
            doc = transfer(ws, artifacts, args.action)
    finally:
        if artifacts is not None:
            artifacts.close()
        ws.close()
    if args.json:
        sys.stdout.write(jsonout.dumps(doc) + "\n")
    elif not args.quiet:
        print(describe(args.action, doc))
    return 0


# -- status ----------------------------------------------------------------------------


def status(ws: Workspace, artifacts: Artifacts | None) -> dict[str, Any]:
    settings = ws.project.settings
    doc: dict[str, Any] = {"enabled": artifacts is not None, "path": None, "entries": 0,
                           "blobs": 0, "size": 0, "remote": settings.remote,
                           "remote_readonly": artifacts is not None and not artifacts.writable}
    if artifacts is not None:
        entries, blobs, size = artifacts.local.usage()
        current = {r.key for r in ws.store.records().values()}
        doc.update(path=str(artifacts.local.path), entries=entries, blobs=blobs, size=size,
                   current=len(current.intersection(artifacts.local.keys())))
    return doc


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def describe(action: str, doc: dict[str, Any]) -> str:
    if action == "status":
        if not doc["enabled"]:
            return "cache:   disabled ([flow] cache = false)"
        remote = doc["remote"] or "none"
        if doc["remote"] and doc["remote_readonly"]:
            remote += " (read-only)"
        return (f"cache:   {doc['path']}\n"
                f"entries: {doc['entries']} ({doc['current']} used by the current records),"
                f" {doc['blobs']} blobs, {human(doc['size'])}\n"
                f"remote:  {remote}")
    if action == "gc":
        return (f"gc: removed {doc['removed_entries']} entries and {doc['removed_blobs']} blobs"
                f" ({human(doc['freed'])}); the cache now holds {doc['entries']} entries,"
                f" {human(doc['size'])}")
    if action == "push":
        return (f"pushed {doc['entries']} entries to {doc['remote']}: {doc['uploaded']} blobs"
                f" uploaded, {doc['present']} already there")
    return (f"pulled {doc['entries']} entries from {doc['remote']} ({doc['blobs']} blobs"
            f" downloaded); {doc['missing']} keys not in the remote, {doc['local']} already"
            " in the local cache")


# -- gc --------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GiB``, ``1024`` → bytes (powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"--max-size {text!r}: expected a size such as 500M or 2G")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


@dataclass(slots=True)
class _Entry:
    key: str
    used: float  # when it was last saved or restored
    size: int
    blobs: set[str]


def _entries(local: LocalCache) -> tuple[dict[str, _Entry], dict[str, int]]:
    """Every readable action record, and the sizes of unreadable ones by key."""
    found: dict[str, _Entry] = {}
    broken: dict[str, int] = {}
    for info in local.actions():
        if info.record is None:
            broken[info.key] = info.size
        else:
            found[info.key] = _Entry(info.key, info.used, info.size,
                                     local.blobs_of(info.record))
    return found, broken


def collect(ws: Workspace, local: LocalCache, args: argparse.Namespace) -> dict[str, Any]:
    """Drop old or least recently used entries, then every blob no entry needs."""
    from flowmake.store.leftovers import writing_lock

    if args.max_age is None and args.max_size is None:  # would drop nothing: say so
        raise UsageError("cache gc needs a limit: --max-age DAYS and/or --max-size SIZE",
                         hint="e.g. `flowmake cache gc --max-age 30 --max-size 5G` (entries"
                         " the current records use are always kept)")
    max_size = parse_size(args.max_size) if args.max_size is not None else None
    if args.max_age is not None and args.max_age < 0:
        raise UsageError("--max-age must be 0 or more days")
    with writing_lock(ws.store, ws.project.state_dir):
        keep = {r.key for r in ws.store.records().values()}
        return _collect(local, keep, args.max_age, max_size)


def _collect(local: LocalCache, keep: set[str], max_age: float | None,
             max_size: int | None) -> dict[str, Any]:
    now = time.time()
    entries, broken = _entries(local)
    blob_sizes: dict[str, tuple[int, float]] = {}  # digest: (bytes, when it was stored)
    for info in local.blobs():
        size, added = blob_sizes.get(info.digest, (0, info.added))
        blob_sizes[info.digest] = (size + info.size, max(added, info.added))
    refs = Counter(d for e in entries.values() for d in e.blobs)
    droppable = sorted((e for e in entries.values() if e.key not in keep), key=lambda e: e.used)
    drop: dict[str, _Entry] = {}
    if max_age is not None:
        drop = {e.key: e for e in droppable if e.used < now - max_age * 86400}
    for entry in drop.values():
        refs.subtract(entry.blobs)
    size = (sum(e.size for e in entries.values() if e.key not in drop)
            + sum(s for d, (s, _) in blob_sizes.items() if refs[d] > 0))
    for entry in droppable:
        if max_size is None or size <= max_size:
            break
        if entry.key in drop:
            continue
        drop[entry.key] = entry
        size -= entry.size
        for digest in entry.blobs:
            refs[digest] -= 1
            if refs[digest] == 0:
                size -= blob_sizes.get(digest, (0, 0.0))[0]
    local.remove_actions([*drop, *broken])
    unused = [digest for digest, (_, added) in blob_sizes.items()
              # named by some entry (maybe only by dropped ones), or an old orphan
              if refs[digest] <= 0 and (digest in refs or added < now - YOUNG_ORPHAN)]
    local.remove_blobs(unused)
    freed = (sum(e.size for e in drop.values()) + sum(broken.values())
             + sum(blob_sizes[d][0] for d in unused))
    for tmp in local.path.glob("tmp/*"):  # partial writes of a process that died
        if _mtime(tmp) < now - YOUNG_ORPHAN:
            freed += _unlink(tmp)
    for old in local.path.glob("actions/*/*.json"):  # records of the layout before index.db
        freed += _unlink(old)
    local.compact()
    entries_left, _, size_left = local.usage()
    return {"removed_entries": len(drop) + len(broken), "removed_blobs": len(unused),
            "freed": freed, "entries": entries_left, "size": size_left}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _unlink(path: Path) -> int:
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:
        return 0
    return size


# -- push and pull ---------------------------------------------------------------------


def transfer(ws: Workspace, artifacts: Artifacts, action: str) -> dict[str, Any]:
    settings = ws.project.settings
    if not settings.remote:
        raise UsageError(f"cache {action}: no remote cache is configured ([flow] remote)")
    if action == "push" and not artifacts.writable:
        raise UsageError("cache push: the remote cache is read-only ([flow] remote_readonly"
                         " or FLOWMAKE_REMOTE_READONLY)")
    transfers = artifacts.transfers()
    if transfers is None:
        raise UsageError(f"cache {action}: the remote cache {settings.remote} is unavailable")
    doc = push(ws, artifacts.local, transfers) if action == "push" \
        else pull(ws, artifacts.local, transfers)
    return {"remote": settings.remote, **doc}


def push(ws: Workspace, local: LocalCache, transfers: Transfers) -> dict[str, Any]:
    """Every local entry the current records use, in parallel."""
    records = [r for r in (local.read_action(rec.key) for rec in ws.store.records().values())
               if r is not None]
    present = transfers.remote_listing()  # one listing, not a probe per blob
    counts = list(transfers.pool.map(lambda r: transfers.push(r, present), records))
    return {"entries": len(counts), "uploaded": sum(c.uploaded for c in counts),
            "present": sum(c.present for c in counts)}


def pull(ws: Workspace, local: LocalCache, transfers: Transfers) -> dict[str, Any]:
    """The remote's entries for the current keys (prefetch.py), and how many blobs came."""
    from flowmake.cache.prefetch import prefetch

    blobs_before = len(local.blobs())
    counts = prefetch(ws.graph, ws.graph.order(), ws.checker(cache=False), local, transfers,
                      skip_fresh=False)
    return {**counts, "blobs": len(local.blobs()) - blobs_before}
