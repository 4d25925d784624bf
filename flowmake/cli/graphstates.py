"""The rest of each node of an all-fresh `graph --format json` of every target (its state,
last run and last build, after the parts graph.texts keeps), kept in
``.flowmake/graph.states`` for the next `graph`.

At 100,000 targets, reading the records and the latest target lines and writing their
JSON took ~0.5 s of a command whose stat check takes ~0.15 s. When every target is fresh
(the no-op fast path's answer) those texts follow from the rows alone, so they are kept,
and used while what they were made from is the same:

- the compiled flow (its stamp: the names and their order) and the number of nodes;
- the state's change log (store/sqlite.py): SQLite triggers count every insert, update
  or delete of a record or a target line, whoever writes them, and note each target's
  latest change. Texts made at change number N of the log's epoch are used as they are
  while the number is N; after a build, only the targets changed since N are made again
  (``load`` gives N). The number is read before the rows, so a build that commits
  meanwhile leaves texts that name the number before its commit: its targets are made
  again next time;
- the time zone (the build times are written in local time) and flowmake's code.

The file carries an xxh3 digest of its text: a damaged one (it is written without fsync,
as a cache) is not used, and is made again. A resident server keeps it decoded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flowmake import __version__, warm
from flowmake.cli.graphtexts import code, pack, unpack
from flowmake.fsutil import atomic_write
from flowmake.store import paths as layout

FORMAT = 2  # 2: the change log's epoch and number instead of a random mark
KIND = "graph-states"
ZONE_FILE = "/etc/localtime"


def zone() -> list[Any]:
    """What local time is here: TZ, the zone's names and offsets, and the zone file."""
    import time

    try:
        st = os.stat(ZONE_FILE)
        where: list[Any] = [os.path.realpath(ZONE_FILE), st.st_size, st.st_mtime_ns]
    except OSError:
        where = []
    return [os.environ.get("TZ"), os.environ.get("TZDIR"), list(time.tzname),
            time.timezone, time.altzone, *where]


def key(stamp: int, nodes: int, epoch: str, seq: int) -> dict[str, Any]:
    """The header that texts made now, of ``nodes`` nodes at change ``seq`` of the change
    log of ``epoch``, have."""
    return {"format": FORMAT, "flowmake": __version__, "code": code(), "flow": stamp,
            "nodes": nodes, "epoch": epoch, "seq": seq, "zone": zone()}


def _decode(data: bytes) -> tuple[dict[str, Any], list[str]]:
    header, body = unpack(data, "graph.states")
    tails = body.split("\n")
    if len(tails) != header.get("nodes"):
        raise ValueError("graph.states: not the lines its header says")
    return header, tails


warm.LOADERS[KIND] = _decode


def path_in(state_dir: str) -> str:
    return os.path.join(state_dir, layout.GRAPH_STATES)


def load(state_dir: str, want: dict[str, Any]) -> tuple[list[str], int] | None:
    """The kept texts if they were made for ``want`` (a :func:`key`) at its change number
    or an earlier one of its epoch: (the texts, that number); else None."""
    try:
        header: dict[str, Any]
        tails: list[str]
        header, tails = warm.read(path_in(state_dir), KIND)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, TypeError):
        return None  # not there, or damaged: made again
    if any(header.get(k) != v for k, v in want.items() if k != "seq"):
        return None
    seq = header.get("seq")
    if type(seq) is not int or not 0 <= seq <= want["seq"]:
        return None
    return tails, seq


def saving(tails: Iterable[str], save: Callable[[list[str]], None]) -> Iterator[str]:
    """``tails`` as they come, then ``save`` of them all (not when the reader stops
    early: a partial list is never kept)."""
    made: list[str] = []
    for tail in tails:
        made.append(tail)
        yield tail
    save(made)


def save(state_dir: str, want: dict[str, Any], tails: list[str]) -> None:
    if not tails or len(tails) != want["nodes"]:
        return  # (a text holding a newline would fail _decode's count: made again)
    path = path_in(state_dir)
    try:
        atomic_write(path, pack(want, "\n".join(tails)), fsync=False)
    except (OSError, UnicodeEncodeError):
        return  # a read-only project still works, just slower
    warm.note(path, KIND)
