"""The local artifact cache: content-addressed blobs and one action record per key.

Layout of the cache folder (``[flow] cache``, default ``.flowmake/cache``)::

    index.db                   SQLite (WAL): every action record, and every blob of up to
                               INLINE_BLOB bytes, inline
        actions(key, used, record)   one record per target key (ActionRecord.dumps(): each
                                     output path's kind and digest, and the log the target
                                     printed); ``used``: when it was last saved or restored
        blobs(digest, size, added, data)   small blobs, named by their digest
    blobs/ab/abcdef…           a blob larger than INLINE_BLOB, one file each
    tmp/                       partial writes of large blobs, renamed into place when whole

A blob is a file's content named by its XXH3-128 digest; a folder's manifest (JSON: its
files' paths, digests, modes) is a blob named by the folder's digest. Saving a small
output creates no file at all: on a VM disk a new inode costs ~0.5-1 ms, a row in an
open database tens of µs. A blob is verified before it is stored, and again when it is
restored (a damaged one is deleted).

The remote cache (remote.py) keeps the plain file layout under its URL: ``blobs/ab/…``
and ``actions/12/….json`` (``action_rel``), whatever the size.

Several processes (and projects sharing one cache folder) may use it at once: each write
is its own short SQLite transaction (busy timeout 60 s), large blobs are written under a
temporary name then renamed, and a record is written only after its blobs, so no one
ever sees half of an entry. Restored outputs are copies (reflinks where the filesystem
offers them), never hard links: a user editing an output must not change the cache.
SQLite's WAL needs a local filesystem: the cache folder must not be on NFS.

A cache folder from before index.db (one ``actions/12/….json`` file per record) has its
records ignored: the cache starts empty, and ``cache gc`` deletes those files. Its blob
files, whatever their size, are still read as blobs (``gc`` drops them once no record
names them). Deleting the folder is always safe.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

import xxhash

from flowmake.digest import hash_bytes, hash_file, tree_digest
from flowmake.errors import FlowmakeError

FILE, DIR, URL = "file", "dir", "url"
RECORD_VERSION = 1
_CHUNK = 1 << 20
_SMALL = 1 << 20  # restored from memory in one read; larger blobs are copied, then verified
_FICLONE = 0x40049409  # Linux ioctl: share the extents of another file (btrfs, xfs)
# Blobs up to this size are rows of index.db rather than files: a new file costs far more
# than a row (see the module docstring); larger ones are copied (reflinked) as files.
INLINE_BLOB = 128 << 10
INDEX = "index.db"
INDEX_VERSION = 1
TOUCH_BATCH = 500
WRITE_BATCH = 64  # queued rows (blobs, records) written in one transaction
SIGNING_KEY_ENV = "FLOWMAKE_CACHE_KEY"  # signs remote records (signing.py)
# The big column last: reading the others never touches its overflow pages.
_SCHEMA = """
CREATE TABLE actions (
    key TEXT PRIMARY KEY, used REAL NOT NULL, record BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE blobs (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, added REAL NOT NULL, data BLOB NOT NULL
) WITHOUT ROWID;
"""


class Entry(NamedTuple):
    """One output in an action record.

    ``digest`` is the content digest (a folder's: its tree digest, the manifest's name);
    ``fingerprint`` is a URL output's backend fingerprint (ETag…) when it was saved.
    """

    kind: str
    digest: str
    executable: bool = False
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "digest": self.digest}
        if self.executable:
            data["executable"] = True
        if self.fingerprint is not None:
            data["fingerprint"] = self.fingerprint
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        kind, digest = data["kind"], data["digest"]
        if kind not in (FILE, DIR, URL) or not is_digest(digest):
            raise ValueError(f"bad output entry {data!r}")
        return cls(kind, digest, bool(data.get("executable")), data.get("fingerprint"))


class ActionRecord(NamedTuple):
    """What one successful run of a target left: its outputs by path, its log, and when
    it was made (time.time())."""

    key: str
    target: str
    outputs: dict[str, Entry]
    log: str = ""
    created: float = 0.0

    def dumps(self, extra: dict[str, Any] | None = None) -> bytes:
        """The record as JSON; ``extra``: more fields (a remote record's signature)."""
        return json.dumps({"version": RECORD_VERSION, "key": self.key, "target": self.target,
                           "created": self.created, "log": self.log,
                           "outputs": {p: e.to_json() for p, e in self.outputs.items()},
                           **(extra or {})}, sort_keys=True).encode()

    @classmethod
    def loads(cls, data: bytes) -> ActionRecord:
        """Parse a record; ValueError for anything that is not a whole, valid one."""
        try:
            doc = json.loads(data)
            if doc["version"] != RECORD_VERSION:
                raise ValueError(f"record version {doc['version']}")
            outputs = {str(p): Entry.from_json(e) for p, e in doc["outputs"].items()}
            return cls(str(doc["key"]), str(doc["target"]), outputs, str(doc.get("log", "")),
                       float(doc.get("created", 0.0)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"not whole JSON, truncated? ({exc.msg} at byte {exc.pos})") \
                from None
        except KeyError as exc:
            raise ValueError(f"no field {exc} in the record") from None
        except (TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed action record: {exc}") from None


# (path relative to the folder, digest, executable)
ManifestFile = tuple[str, str, bool]


def manifest_bytes(files: Iterable[ManifestFile]) -> bytes:
    return json.dumps({"files": sorted(files)}).encode()


def parse_manifest(data: bytes, digest: str) -> list[ManifestFile] | None:
    """A folder manifest's files, or None when it does not hash to ``digest``."""
    try:
        files = [(str(p), str(d), bool(x)) for p, d, x in json.loads(data)["files"]]
    except (ValueError, KeyError, TypeError):
        return None
    if any(".." in p.split("/") or p.startswith("/") or not is_digest(d) for p, d, _ in files):
        return None  # never let a manifest write outside its folder
    return files if tree_digest((p, d) for p, d, _ in files) == digest else None


_HEX = frozenset("0123456789abcdef")


def is_digest(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 32 and _HEX.issuperset(text)


def blob_rel(digest: str) -> str:
    return f"blobs/{digest[:2]}/{digest}"


def action_rel(key: str) -> str:
    return f"actions/{key[:2]}/{key}.json"


class Mismatch(Exception):
    """A blob whose content does not hash to its name."""


MISMATCH = "its content does not match its digest"  # the message of a blob received


class IndexUnusable(FlowmakeError):
    """index.db could not be opened, read or written (locked past the busy timeout, disk
    full, not a database): a build warns and goes on without the cache."""


class BlobInfo(NamedTuple):
    """One blob as ``cache gc`` and ``cache status`` see it."""

    digest: str
    size: int
    added: float  # when it was stored (a blob file: its mtime)
    inline: bool  # in index.db, else a file under blobs/


class ActionInfo(NamedTuple):
    """One action record as ``cache gc`` sees it; ``record`` None when it is unreadable."""

    key: str
    used: float  # when it was last saved or restored
    size: int
    record: ActionRecord | None


class LocalCache:
    """The cache folder: index.db (records, small blobs) and large blob files.

    The database is opened on first use (a command that never touches the cache never
    opens it) and shared by the command's threads (saves, transfers) under a lock. A
    reader finds an empty cache, without creating anything, while index.db does not exist.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index_path = path / INDEX
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection for every thread, one use at a time
        self._made: set[str] = set()  # folders known to exist: no mkdir per blob
        self._touched: dict[str, float] = {}  # records used, not yet marked (see touch)
        self._queued: list[tuple[str, tuple[Any, ...]]] = []  # writes not yet done (_write)
        self._names = itertools.count()
        self._prefix = f"{os.getpid()}-{os.urandom(6).hex()}"  # one random part per process

    # -- the database -------------------------------------------------------------------

    @contextlib.contextmanager
    def _index(self, create: bool, *, flush: bool = True) -> Iterator[sqlite3.Connection | None]:
        """The open index, for one use under the lock; None for a reader while there is
        none. Queued writes are done first (``flush``), so that every use sees them.
        SQLite's errors become IndexUnusable."""
        with self._lock:
            try:
                if self._db is None and (create or self._index_path.exists()):
                    self.path.mkdir(parents=True, exist_ok=True)
                    self._db = _open_index(self._index_path)
                if flush and self._queued and self._db is not None:
                    self._write_queued(self._db)
                yield self._db
            except sqlite3.Error as exc:
                raise IndexUnusable(f"artifact cache {self._index_path}: {exc}",
                                    "deleting the cache folder is safe") from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._index(create=False) as db:
            return [] if db is None else db.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        """Queue one statement; the queue is written in one transaction when it holds
        WRITE_BATCH, before any other use of the index, and at close. (A transaction per
        row cost ~35 µs on the scheduler's thread for each of two rows a target.) Opening
        the index is not deferred: an unusable one is reported by this call."""
        with self._index(create=True, flush=False) as db:
            assert db is not None
            self._queued.append((sql, params))
            if len(self._queued) >= WRITE_BATCH:
                self._write_queued(db)

    def _write_queued(self, db: sqlite3.Connection) -> None:
        """Write the queue (under the lock); on an error its rows are dropped: the cache
        only loses entries."""
        queued, self._queued = self._queued, []
        db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in queued:
                db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """One transaction for many rows (gc)."""
        with self._index(create=False) as db:
            if db is None or not rows:
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Mark the records used, and close the database (it is opened again if the cache
        is used again). IndexUnusable when the queued writes fail (they are dropped)."""
        try:
            with self._index(create=False):  # the queued writes
                pass
        finally:
            self.flush()
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

    # -- records --------------------------------------------------------------------------

    def read_action(self, key: str) -> ActionRecord | None:
        """The record of ``key``; None when there is none, or none readable."""
        try:
            rows = self._query("SELECT record FROM actions WHERE key = ?", (key,))
            record = ActionRecord.loads(rows[0][0]) if rows else None
        except (IndexUnusable, ValueError):  # a write will say what is wrong
            return None
        return record if record is not None and record.key == key else None

    def write_action(self, record: ActionRecord) -> None:
        """Store a record; its blobs must be stored already (a reader may use it at once)."""
        self._write("INSERT OR REPLACE INTO actions (key, used, record) VALUES (?, ?, ?)",
                    (record.key, time.time(), record.dumps()))

    def touch(self, key: str) -> None:
        """Mark a record used now (gc drops the least recently used first).

        Written by :meth:`flush` (at close, or every TOUCH_BATCH records): one transaction
        instead of one per restored target. A process killed first loses only these times.
        """
        self._touched[key] = time.time()
        if len(self._touched) >= TOUCH_BATCH:
            self.flush()

    def flush(self) -> None:
        """Write what is queued: the records' use times, and the rows of :meth:`_write`
        (another process sees them from then on)."""
        with self._lock:
            touched, self._touched = self._touched, {}
        with contextlib.suppress(IndexUnusable):  # only gc's order would suffer
            self._write_many("UPDATE actions SET used = max(used, ?) WHERE key = ?",
                             [(used, key) for key, used in touched.items()])

    def keys(self) -> list[str]:
        return [k for (k,) in self._query("SELECT key FROM actions ORDER BY key")]

    def actions(self) -> list[ActionInfo]:
        """Every record, with when it was last used and its size (for gc)."""
        found = []
        for key, used, data in self._query("SELECT key, used, record FROM actions"):
            try:
                record: ActionRecord | None = ActionRecord.loads(data)
            except ValueError:
                record = None
            if record is not None and record.key != key:
                record = None
            found.append(ActionInfo(key, used, len(data), record))
        return found

    def remove_actions(self, keys: Iterable[str]) -> None:
        """Drop records, in one transaction."""
        self._write_many("DELETE FROM actions WHERE key = ?", [(k,) for k in keys])

    # -- reading blobs ------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where blob ``digest`` is when it is a file (larger than INLINE_BLOB)."""
        return self.path / blob_rel(digest)

    def has_blob(self, digest: str) -> bool:
        try:
            inline = bool(self._query("SELECT 1 FROM blobs WHERE digest = ?", (digest,)))
        except IndexUnusable:  # as for a record: not cached, and a write will say why
            inline = False
        return inline or self.blob_path(digest).exists()

    def inline_blob(self, digest: str) -> bytes | None:
        """The content of blob ``digest`` when it is in the database; None otherwise (a
        file blob, see :meth:`blob_path`, or no blob at all)."""
        rows = self._query("SELECT data FROM blobs WHERE digest = ?", (digest,))
        return bytes(rows[0][0]) if rows else None

    def read_blob(self, digest: str) -> bytes | None:
        """A blob's whole content (as stored: unverified); None when there is none."""
        data = self.inline_blob(digest)
        if data is None:
            with contextlib.suppress(OSError):
                data = self.blob_path(digest).read_bytes()
        return data

    def open_blob(self, digest: str) -> IO[bytes]:
        """A blob for reading (as stored: unverified); FileNotFoundError when there is none."""
        data = self.inline_blob(digest)
        return io.BytesIO(data) if data is not None else open(self.blob_path(digest), "rb")

    def blob_size(self, digest: str) -> int | None:
        rows = self._query("SELECT size FROM blobs WHERE digest = ?", (digest,))
        if rows:
            return int(rows[0][0])
        try:
            return self.blob_path(digest).stat().st_size
        except OSError:
            return None

    def blobs(self) -> list[BlobInfo]:
        """Every blob: those in the database, then the files."""
        found = [BlobInfo(d, s, a, True)
                 for d, s, a in self._query("SELECT digest, size, added FROM blobs")]
        for path in self.path.glob("blobs/*/*"):
            if is_digest(path.name):
                with contextlib.suppress(OSError):
                    st = path.stat()
                    found.append(BlobInfo(path.name, st.st_size, st.st_mtime, False))
        return found

    def remove_blobs(self, digests: Iterable[str]) -> None:
        """Drop blobs, inline (in one transaction) or files."""
        digests = list(digests)
        self._write_many("DELETE FROM blobs WHERE digest = ?", [(d,) for d in digests])
        for digest in digests:
            with contextlib.suppress(FileNotFoundError):
                self.blob_path(digest).unlink()

    def manifest(self, digest: str) -> list[ManifestFile] | None:
        data = self.read_blob(digest)
        return None if data is None else parse_manifest(data, digest)

    def blobs_of(self, record: ActionRecord) -> set[str]:
        """Every blob a record needs: its outputs' and, for folders, their files'."""
        found = set()
        for entry in record.outputs.values():
            found.add(entry.digest)
            if entry.kind == DIR:
                found.update(d for _, d, _ in self.manifest(entry.digest) or ())
        return found

    # -- writing blobs ------------------------------------------------------------------

    def _add_inline(self, digest: str, data: bytes) -> None:
        """Store verified content (a blob never changes: a second copy is dropped)."""
        self._write("INSERT OR IGNORE INTO blobs (digest, size, added, data) VALUES (?, ?, ?, ?)",
                    (digest, len(data), time.time(), data))

    @contextlib.contextmanager
    def _staged(self) -> Iterator[Path]:
        """A new temporary file's path in the cache, for a blob being written: gone
        afterwards unless it was published (renamed into place)."""
        folder = self.path / "tmp"
        self._mkdir(folder)
        tmp = folder / f"{self._prefix}-{next(self._names)}"
        try:
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _mkdir(self, folder: Path) -> None:
        key = str(folder)
        if key not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(key)

    def _publish(self, tmp: Path, final: Path) -> None:
        """Rename a whole temporary file into place; blobs are read-only from then on."""
        os.chmod(tmp, 0o444)
        self._mkdir(final.parent)
        try:
            os.replace(tmp, final)
        except FileNotFoundError:  # its folder was removed since (`rm -r` by hand, ...)
            self._made.discard(str(final.parent))
            self._mkdir(final.parent)
            os.replace(tmp, final)

    def add_file(self, source: str, digest: str) -> None:
        """Copy a file into the cache as blob ``digest`` (nothing to do if it is there).

        Raises Mismatch when the file no longer hashes to ``digest`` (it changed since it
        was hashed): a blob always holds what its name says.
        """
        with open(source, "rb") as f:
            head = f.read(INLINE_BLOB + 1)  # one read decides: a row, or a file
        if len(head) <= INLINE_BLOB:
            if hash_bytes(head) != digest:
                raise Mismatch(f"{source} changed since it was hashed")
            self._add_inline(digest, head)  # INSERT OR IGNORE: no lookup first
            return
        if os.path.exists(self.blob_path(digest)):
            return
        with self._staged() as tmp:
            if not copy_verified(source, str(tmp), digest, 0o444):
                raise Mismatch(f"{source} changed since it was hashed")
            self._publish(tmp, self.blob_path(digest))

    def add_bytes(self, data: bytes, digest: str) -> None:
        """Store ``data`` as blob ``digest``: its content's digest or, for a folder
        manifest, the folder's (Mismatch when it is neither)."""
        if hash_bytes(data) != digest and parse_manifest(data, digest) is None:
            raise Mismatch(f"content does not match digest {digest}")
        if len(data) <= INLINE_BLOB:
            self._add_inline(digest, data)
            return
        final = self.blob_path(digest)
        if not final.exists():
            with self._staged() as tmp:
                tmp.write_bytes(data)
                self._publish(tmp, final)

    def receive(self, stream: IO[bytes], digest: str | None, *, manifest: bool = False,
                sha256: str | None = None) -> str:
        """Store a blob read from ``stream``, verifying it against ``digest``.

        With ``digest`` None the content's own digest names it (a URL output being saved).
        A folder manifest is verified by recomputing the folder digest from its entries.
        ``sha256``: the content's SHA-256 too (what a signed remote record names).
        Content up to INLINE_BLOB goes to the database; more is streamed to a file.
        Returns the digest; raises :class:`Mismatch` and keeps nothing when it differs.
        """
        head = _read_up_to(stream, INLINE_BLOB + 1)
        if len(head) <= INLINE_BLOB:
            digest = _verified(head, digest, manifest)
            if sha256 is not None:
                _check_sha256([head], sha256)
            self._add_inline(digest, head)
            return digest
        with self._staged() as tmp:
            h = xxhash.xxh3_128(head)
            with open(tmp, "wb") as out:
                out.write(head)
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if manifest:
                digest = _verified(tmp.read_bytes(), digest, manifest)
            elif digest is not None and h.hexdigest() != digest:
                raise Mismatch(MISMATCH)
            if sha256 is not None:  # read again, from the page cache: only with a key
                with open(tmp, "rb") as f:
                    _check_sha256(iter(lambda: f.read(_CHUNK), b""), sha256)
            digest = digest or h.hexdigest()
            final = self.blob_path(digest)
            if not final.exists():
                self._publish(tmp, final)
            return digest

    # -- restoring outputs --------------------------------------------------------------

    def place_file(self, digest: str, dest: str, executable: bool) -> None:
        """Copy blob ``digest`` to ``dest`` atomically, verified on the way.

        Raises Mismatch (and drops the blob) when the cached copy was damaged.
        """
        tmp = _beside(dest)
        mode = 0o777 if executable else 0o666  # the umask applies, as to any new file
        data = self.inline_blob(digest)
        try:
            if data is not None:
                if hash_bytes(data) != digest:
                    self.remove_blobs([digest])
                    raise Mismatch(f"cached blob {digest} is damaged; it was removed")
                _write_new(tmp, data, mode)
            else:
                blob = str(self.blob_path(digest))
                if not copy_verified(blob, tmp, digest, mode):
                    os.unlink(blob)
                    raise Mismatch(f"cached blob {digest} is damaged; it was removed")
            if os.path.isdir(dest) and not os.path.islink(dest):
                remove_path(dest)  # a file replaces a folder; a file is replaced atomically
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def place_dir(self, digest: str, dest: str) -> None:
        """Rebuild a folder from its manifest beside ``dest``, then swap it in."""
        files = self.manifest(digest)
        if files is None:
            raise Mismatch(f"cached folder manifest {digest} is missing or damaged")
        tmp = _beside(dest)
        os.makedirs(tmp)
        try:
            for rel, file_digest, executable in files:
                self.place_file(file_digest, os.path.join(tmp, rel), executable)
            old = tmp + ".old"
            if os.path.isdir(dest) and not os.path.islink(dest):
                os.replace(dest, old)  # swapped out first, removed once the new one is in
            else:
                remove_path(dest)
            os.replace(tmp, dest)
            remove_path(old)
        finally:
            remove_path(tmp)

    # -- size -----------------------------------------------------------------------------

    def usage(self) -> tuple[int, int, int]:
        """(action records, blobs, bytes): the records' and blobs' own sizes (index.db may
        hold a little more: SQLite's pages, and pages freed but not yet given back)."""
        rows = self._query("SELECT (SELECT count(*) FROM actions),"
                           " (SELECT coalesce(sum(length(record)), 0) FROM actions)")
        records, record_bytes = rows[0] if rows else (0, 0)
        blobs = self.blobs()
        return records, len(blobs), record_bytes + sum(b.size for b in blobs)

    def compact(self) -> None:
        """Give the pages freed by removals back to the filesystem (after gc)."""
        with self._index(create=False) as db:
            if db is not None:
                # executescript: a plain execute() frees a single page per call
                db.executescript("PRAGMA incremental_vacuum;")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _open_index(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect in a new file only
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
            db.execute("BEGIN IMMEDIATE")  # several processes may open a new cache at once
            if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_VERSION:
                # Another layout (a newer flowmake's?) is dropped: the cache is safe to lose.
                db.execute("DROP TABLE IF EXISTS actions")
                db.execute("DROP TABLE IF EXISTS blobs")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {INDEX_VERSION}")
            db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end (a socket may return less per read)."""
    parts, got = [], 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _verified(data: bytes, digest: str | None, manifest: bool) -> str:
    """The digest naming ``data``; Mismatch when it is not ``digest``."""
    if manifest:
        if digest is None or parse_manifest(data, digest) is None:
            raise Mismatch(MISMATCH)
        return digest
    actual = hash_bytes(data)
    if digest is not None and actual != digest:
        raise Mismatch(MISMATCH)
    return actual


def _check_sha256(chunks: Iterable[bytes], expected: str) -> None:
    """Mismatch unless the content's SHA-256 is ``expected`` (a signed remote record's)."""
    import hashlib  # only for a signed remote record

    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    if h.hexdigest() != expected:
        raise Mismatch("its content does not match the SHA-256 its signed record names")


def _write_new(path: str, data: bytes, mode: int) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
        out.write(data)


def _beside(dest: str) -> str:
    """A hidden temporary name in ``dest``'s folder (made if need be), for a rename into place."""
    parent = os.path.dirname(dest) or "."
    os.makedirs(parent, exist_ok=True)
    return os.path.join(parent, f".{os.path.basename(dest)}.flowmake-{os.urandom(6).hex()}")


def remove_path(path: str) -> None:
    """Remove a file, a symlink (never what it points to) or a folder, if there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def copy_verified(source: str, dest: str, digest: str, mode: int) -> bool:
    """Copy ``source`` to a new file ``dest``; False (``dest`` left to the caller to remove)
    when the content does not hash to ``digest``."""
    if os.path.getsize(source) <= _SMALL:  # one read, verified before it is written
        data = Path(source).read_bytes()
        if hash_bytes(data) != digest:
            return False
        with os.fdopen(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
            out.write(data)
        return True
    copy_file(source, dest, mode)  # a reflink where the filesystem can, then a verifying read
    return hash_file(dest) == digest


def copy_file(source: str, dest: str, mode: int = 0o666) -> None:
    """A copy that shares storage where it can: reflink, then copy_file_range, then copy."""
    with open(source, "rb") as src:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as dst:
            if not _fast_copy(src.fileno(), dst.fileno()):
                src.seek(0)
                dst.seek(0)
                dst.truncate()
                shutil.copyfileobj(src, dst, _CHUNK)


def _fast_copy(src: int, dst: int) -> bool:
    """Copy inside the kernel: a reflink (btrfs, xfs), else copy_file_range; False if neither."""
    try:
        import fcntl

        fcntl.ioctl(dst, _FICLONE, src)
        return True
    except (OSError, ImportError):
        pass
    try:
        size, copied = os.fstat(src).st_size, 0
        while copied < size:
            n = os.copy_file_range(src, dst, size - copied)
            if n == 0:
                break
            copied += n
        return copied == size
    except (OSError, AttributeError):  # another filesystem, an old kernel, not Linux
        return False


def is_executable(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IXUSR)
    except OSError:
        return False
