"""`flowmake lock merge BASE OURS THEIRS`: git's merge driver for flow.lock.

Set up once per clone (documented in README, "flow.lock"):

    # .gitattributes (committed)
    flow.lock merge=flowmake-lock
    # git config (each clone)
    git config merge.flowmake-lock.driver "flowmake lock merge %O %A %B"

Two branches that built different targets merge without a conflict: the result holds each
entry as the side that changed it left it. Where both sides changed one entry differently,
ours is kept: any entry is only a claim that the key and outputs it names were built
together, which `status` checks against the files, so either side is safe to keep (the
next build rewrites what no longer matches). The result is written over OURS, as git
expects; exit 0, or 2 when a side cannot be read (git then reports a conflict).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flowmake.store import flowlock as flowlock
from flowmake.store.flowlock import LockEntry


def merge(base: dict[str, LockEntry], ours: dict[str, LockEntry],
          theirs: dict[str, LockEntry]) -> tuple[dict[str, LockEntry], list[str]]:
    """The merged entries, and the names both sides changed differently (ours kept)."""
    merged: dict[str, LockEntry] = {}
    both: list[str] = []
    for name in sorted(set(base) | set(ours) | set(theirs)):
        b, o, t = base.get(name), ours.get(name), theirs.get(name)
        if o == t or t == b:
            chosen = o
        elif o == b:
            chosen = t
        else:
            chosen = o if o is not None else t
            both.append(name)
        if chosen is not None:
            merged[name] = chosen
    return merged, both


def merge_command(args: argparse.Namespace) -> int:
    base, ours, theirs = (flowlock.read(Path(p)) or {} for p in (args.base, args.ours,
                                                                   args.theirs))
    merged, both = merge(base, ours, theirs)
    flowlock.write(Path(args.ours), merged)
    if both and not args.quiet:
        print(f"flowmake: flow.lock: {len(both)} entries changed on both sides, ours kept"
              f" ({', '.join(both[:5])}{', ...' if len(both) > 5 else ''})")
    return 0
