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

Several processes (and projects sharing one cache folder) may use it at once: a
process's rows are written in short SQLite transactions of up to WRITE_BATCH rows or
WRITE_SECONDS (index.py; busy timeout 60 s), a record in the same transaction as its
inline blobs or a later one, large blobs are written under a temporary name then renamed
before their record is queued, so no one ever sees half of an entry. Restored outputs are copies (reflinks where the filesystem
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
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import xxhash

from flowmake.cache.index import INLINE_BLOB, BlobInfo, Index, IndexUnusable
from flowmake.cache.records import (
    DIR,
    MISMATCH,
    ActionRecord,
    ManifestFile,
    Mismatch,
    blob_rel,
    is_digest,
    parse_manifest,
)
from flowmake.digest import hash_bytes
from flowmake.fsutil import copy_verified, remove_path, temp_beside, write_new

_CHUNK = 1 << 20


class LocalCache(Index):
    """The cache folder: index.db (records, small blobs: index.py) and large blob files."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._made: set[str] = set()  # folders known to exist: no mkdir per blob
        self._names = itertools.count()
        self._prefix = f"{os.getpid()}-{os.urandom(6).hex()}"  # one random part per process

    # -- reading blobs ------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where blob ``digest`` is when it is a file (larger than INLINE_BLOB)."""
        return self.path / blob_rel(digest)

    def has_blob(self, digest: str) -> bool:
        try:
            inline = self.inline_size(digest) is not None
        except IndexUnusable:  # as for a record: not cached, and a write will say why
            inline = False
        return inline or self.blob_path(digest).exists()

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
        size = self.inline_size(digest)
        if size is not None:
            return size
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

    def add_file(self, source: str, digest: str) -> bool | None:
        """Copy a file into the cache as blob ``digest`` (nothing to do if it is there);
        whether it is executable. None, and nothing stored, when ``source`` is a folder.

        Raises Mismatch when the file no longer hashes to ``digest`` (it changed since it
        was hashed): a blob always holds what its name says.
        """
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)  # a folder opens too: one fstat
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                return None
            head = _read_fd(fd, st.st_size + 1)  # what is read decides: a row, or a file
        finally:
            os.close(fd)
        executable = bool(st.st_mode & stat.S_IXUSR)
        if len(head) <= INLINE_BLOB:
            if hash_bytes(head) != digest:  # what is stored is what was read, verified
                raise Mismatch(f"{source} changed since it was hashed")
            self._add_inline(digest, head)  # INSERT OR IGNORE: no lookup first
            return executable
        if os.path.exists(self.blob_path(digest)):
            return executable
        with self._staged() as tmp:
            if not copy_verified(source, str(tmp), digest, 0o444):
                raise Mismatch(f"{source} changed since it was hashed")
            self._publish(tmp, self.blob_path(digest))
        return executable

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
        tmp = temp_beside(dest)
        mode = 0o777 if executable else 0o666  # the umask applies, as to any new file
        data = self.inline_blob(digest)
        try:
            if data is not None:
                if hash_bytes(data) != digest:
                    self.remove_blobs([digest])
                    raise Mismatch(f"cached blob {digest} is damaged; it was removed")
                write_new(tmp, data, mode)
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
        tmp = temp_beside(dest)
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


def _read_fd(fd: int, size: int) -> bytes:
    """Up to INLINE_BLOB + 1 bytes of an open file, reading ``size`` first (its size + 1:
    a small file is read whole by one call); after a short read, one byte (the end of
    the file, as a rule: no buffer of INLINE_BLOB allocated to find it)."""
    limit = INLINE_BLOB + 1
    parts, got, want = [], 0, min(size, limit)
    while want > 0 and (chunk := os.read(fd, want)):
        parts.append(chunk)
        got += len(chunk)
        want = min(limit - got, limit if len(chunk) == want else 1)
    return parts[0] if len(parts) == 1 else b"".join(parts)


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
