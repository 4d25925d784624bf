"""flow.lock's entries kept in ``.flowmake/lock.cache`` (SQLite), so that a build reads
only the entries it needs and rewrites flow.lock without loading the others
(store/flowlock.py's LockFile; at 10,000 targets the entries are ~6 MB).

One row per entry: its key, the parts and outputs JSON a Record holds, and its block of
the file's text. One meta row: the file's (size, mtime_ns, inode) when the rows were
taken from it or written with it, whether its text is exactly the rows' blocks joined
in name order (then any block's offset follows from the lengths before it), and the
names in that order with their blocks' lengths. Rows and meta change in one
transaction, after flow.lock itself is written: a cache that does not match the file's
stat is never used (the file is parsed again). It is a cache: any SQLite error reads as
"nothing kept" and a write that fails leaves the old meta, which no longer matches.
"""

from __future__ import annotations

import contextlib
import marshal
import sqlite3
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from flowmake.store import paths
from flowmake.store.sqlite import rows_in

FORMAT = 2  # 1: the marshal base and journal (lock.cache, lock.cache-delta, lock.sig)
Row = tuple[str, str, str, str]  # key, parts JSON, outputs JSON, block
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 0), format INTEGER, sig TEXT, rendered INTEGER,
    layout BLOB  -- marshal: (names in the file's order, each block's length)
);
CREATE TABLE IF NOT EXISTS entries (
    name TEXT PRIMARY KEY, key TEXT, parts TEXT, outputs TEXT, block TEXT
) WITHOUT ROWID;
"""


class Kept(NamedTuple):
    """What the rows were taken from: flow.lock's stat, and whether its text is theirs."""

    sig: tuple[int, int, int]
    rendered: bool


class Layout(NamedTuple):
    """The file's entries in order, with the length of each one's block; ``within``: the
    stamp of a compiled flow (cli/workspace.py's load_compiled) of which every name
    here is a target, so that an update against that flow has none to remove (None:
    not known)."""

    names: list[str]
    sizes: list[int]
    within: int | None = None


class Index:
    """The rows of one ``lock.cache``; the connection is opened on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            con = sqlite3.connect(self.path, timeout=2.0, isolation_level=None,
                                  check_same_thread=False)
            try:
                # a cache: a lost write is parsed again; the rollback journal still keeps
                # a killed process from leaving half a transaction
                con.execute("PRAGMA synchronous = OFF")
                con.executescript(_SCHEMA)
            except sqlite3.Error:
                con.close()
                raise
            self._con = con
        return self._con

    def kept(self) -> Kept | None:
        """The meta row, None when there is none (or no readable cache)."""
        try:
            row = self._db().execute("SELECT format, sig, rendered FROM meta").fetchone()
        except sqlite3.OperationalError:  # busy, read-only: kept for a later command
            self.close()
            return None
        except sqlite3.Error:
            self._discard()
            return None
        if row is None or row[0] != FORMAT:
            return None
        try:
            size, mtime_ns, inode = (int(v) for v in row[1].split())
        except (AttributeError, ValueError):
            return None
        return Kept((size, mtime_ns, inode), bool(row[2]))

    def layout(self) -> Layout | None:
        try:
            row = self._db().execute("SELECT layout FROM meta").fetchone()
            names, sizes, *within = marshal.loads(row[0])  # within: since 0.1.0's third
        except (sqlite3.Error, TypeError, ValueError, EOFError):
            return None
        return Layout(list(names), list(sizes), within[0] if within else None)

    def row(self, name: str) -> Row | None:
        """The entry ``name`` (None: not in the file).

        Raises:
            sqlite3.Error: it cannot be read (then the file is to be parsed)."""
        found = self._db().execute(
            "SELECT key, parts, outputs, block FROM entries WHERE name = ?", (name,)).fetchone()
        return None if found is None else (found[0], found[1], found[2], found[3])

    def rows_named(self, names: list[str]) -> dict[str, Row]:
        """The entries of ``names`` that are in the file, in a query per 500.

        Raises:
            sqlite3.Error: they cannot be read (then the file is to be parsed)."""
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows_in(
            self._db(), "SELECT name, key, parts, outputs, block FROM entries"
            " WHERE name IN ({})", names)}

    def rows(self) -> dict[str, Row] | None:
        """Every row by name; None when they cannot be read."""
        try:
            return {r[0]: (r[1], r[2], r[3], r[4]) for r in self._db().execute(
                "SELECT name, key, parts, outputs, block FROM entries")}
        except sqlite3.Error:
            return None

    def replace(self, kept: Kept, layout: Layout, rows: Mapping[str, Row]) -> bool:
        """Every row anew (the file was parsed, or written whole without a valid cache);
        False if not written (then nothing is kept)."""
        return self._write(kept, layout, rows.items(), None)

    def apply(self, kept: Kept, layout: Layout | None, changed: Mapping[str, Row],
              removed: Iterable[str]) -> bool:
        """The rows a write of the file changed (the others hold for the new file too);
        ``layout`` None: the kept one still holds (the same names, each block as long).
        False if not written (then nothing is kept)."""
        return self._write(kept, layout, changed.items(), list(removed))

    def _write(self, kept: Kept, layout: Layout | None, rows: Iterable[tuple[str, Row]],
               removed: list[str] | None) -> bool:
        sig = " ".join(str(v) for v in kept.sig)
        blob = None if layout is None else marshal.dumps(tuple(layout))
        try:
            con = self._db()
            with _transaction(con):
                if removed is None:
                    con.execute("DELETE FROM entries")
                else:
                    con.executemany("DELETE FROM entries WHERE name = ?",
                                    [(n,) for n in removed])
                con.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)",
                                [(n, *r) for n, r in rows])
                if blob is None:  # no row: nothing is kept, the next reader parses
                    con.execute("UPDATE meta SET format = ?, sig = ?, rendered = ?",
                                (FORMAT, sig, int(kept.rendered)))
                else:
                    con.execute("INSERT OR REPLACE INTO meta VALUES (0, ?, ?, ?, ?)",
                                (FORMAT, sig, int(kept.rendered), blob))
        except sqlite3.Error:
            self.forget()  # no stale meta may survive a failed write
            return False
        return True

    def forget(self) -> None:
        """Nothing kept: the next reader parses the file."""
        with contextlib.suppress(sqlite3.Error):
            self._db().execute("DELETE FROM meta")

    def _discard(self) -> None:
        """Not a database of ours (an older flowmake's marshal file, a damaged one): gone,
        so the next write starts a fresh one."""
        self.close()
        leftovers = (self.path, self.path.with_name(self.path.name + "-journal"),
                     self.path.with_name(self.path.name + "-delta"),
                     self.path.with_name(paths.LOCK_SIG))  # format 1's journal, its stat
        for leftover in leftovers:
            with contextlib.suppress(OSError):
                leftover.unlink()

    def close(self) -> None:
        if self._con is not None:
            with contextlib.suppress(sqlite3.Error):
                self._con.close()
            self._con = None


def splice(data: bytes, prefix: bytes, layout: Layout, blocks: Mapping[str, bytes],
           removed: set[str], known: Mapping[str, bytes]) -> tuple[list[Any], Layout] | None:
    """``data`` (``prefix``, then ``layout``'s blocks joined by newlines, UTF-8) with
    ``blocks`` put in (replacing a block of that name, or added in name order) and
    ``removed`` taken out, as the pieces that make it one after another (the unchanged
    blocks as runs of ``data`` itself, not copied), and the new layout. None when ``data``
    is not laid out so: its prefix or length differs, or a ``known`` block (name: its
    bytes as kept) is not where the layout puts it."""
    names, sizes, _ = layout
    if not prefix.endswith(b"\n"):
        raise ValueError("the prefix ends with a newline")
    at = list(accumulate(map((1).__add__, sizes), initial=len(prefix)))  # block i's offset
    if len(data) != at[-1] - 1 or not data.startswith(prefix):
        return None
    for name, block in known.items():
        i = bisect_left(names, name)
        if i < len(names) and names[i] == name and data[at[i]:at[i] + sizes[i]] != block:
            return None
    view = memoryview(data)
    segments: list[Any] = [view[:len(prefix) - 1]]  # its last newline: the first join's
    new = Layout([], [])

    def copy(start: int, end: int) -> None:  # the old blocks start..end-1, as one run
        if end > start:
            segments.append(view[at[start]:at[end] - 1])
            new.names.extend(names[start:end])
            new.sizes.extend(sizes[start:end])

    cursor = 0
    for name in sorted(blocks.keys() | removed):
        i = bisect_left(names, name, cursor)
        copy(cursor, i)
        cursor = i + 1 if i < len(names) and names[i] == name else i
        if name in blocks and name not in removed:
            segments.append(blocks[name])
            new.names.append(name)
            new.sizes.append(len(blocks[name]))
    copy(cursor, len(names))
    if len(segments) == 1:
        return [prefix], new
    pieces = [segments[0]]
    for segment in segments[1:]:
        pieces += (b"\n", segment)
    return pieces, new


@contextlib.contextmanager
def _transaction(con: sqlite3.Connection) -> Any:
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
