"""The local artifact cache: content-addressed blobs and one action record per key.

Layout of the cache folder (``[flow] cache``, default ``.flowmake/cache``); a remote cache
(remote.py) has the same layout under its URL::

    blobs/ab/abcdef…           a file's content, named by its XXH3-128 digest; a folder's
                               manifest (JSON: its files' paths, digests, modes) is a blob
                               named by the folder's digest
    actions/12/1234….json      one record per target key: each output path's kind and
                               digest, and the log the target printed when it was built
    tmp/                       partial writes, renamed into place when whole

Blobs are immutable and written under a temporary name then renamed, so concurrent builds
(or projects sharing one cache folder) never see half of one. Restored outputs are copies
(reflinks where the filesystem offers them), never hard links: a user editing an output
must not change the cache. An action record's mtime is when it was last used (for ``gc``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import xxhash

from .fingerprint import hash_bytes, hash_file, tree_digest

FILE, DIR, URL = "file", "dir", "url"
RECORD_VERSION = 1
_CHUNK = 1 << 20
_SMALL = 1 << 20  # restored from memory in one read; larger blobs are copied, then verified
_FICLONE = 0x40049409  # Linux ioctl: share the extents of another file (btrfs, xfs)


@dataclass(frozen=True, slots=True)
class Entry:
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
        if kind not in (FILE, DIR, URL) or not _is_digest(digest):
            raise ValueError(f"bad output entry {data!r}")
        return cls(kind, digest, bool(data.get("executable")), data.get("fingerprint"))


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """What one successful run of a target left: its outputs by path, and its log."""

    key: str
    target: str
    outputs: dict[str, Entry]
    log: str = ""
    created: float = field(default_factory=time.time)

    def dumps(self) -> bytes:
        return json.dumps({"version": RECORD_VERSION, "key": self.key, "target": self.target,
                           "created": self.created, "log": self.log,
                           "outputs": {p: e.to_json() for p, e in self.outputs.items()}},
                          sort_keys=True).encode()

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
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
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
    if any(".." in p.split("/") or p.startswith("/") or not _is_digest(d) for p, d, _ in files):
        return None  # never let a manifest write outside its folder
    return files if tree_digest((p, d) for p, d, _ in files) == digest else None


def _is_digest(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def blob_rel(digest: str) -> str:
    return f"blobs/{digest[:2]}/{digest}"


def action_rel(key: str) -> str:
    return f"actions/{key[:2]}/{key}.json"


class Mismatch(Exception):
    """A blob whose content does not hash to its name."""


class LocalCache:
    """The cache folder: blobs and action records, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._made: set[str] = set()  # folders known to exist: no mkdir per blob
        self._names = itertools.count()
        self._prefix = f"{os.getpid()}-{os.urandom(6).hex()}"  # one random part per process

    # -- paths and records --------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.path / blob_rel(digest)

    def action_path(self, key: str) -> Path:
        return self.path / action_rel(key)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_action(self, key: str) -> ActionRecord | None:
        try:
            record = ActionRecord.loads(self.action_path(key).read_bytes())
        except (OSError, ValueError):
            return None
        return record if record.key == key else None

    def write_action(self, record: ActionRecord) -> None:
        self._write_whole(self.action_path(record.key), record.dumps())

    def touch(self, key: str) -> None:
        """Mark a record used now (gc drops the least recently used first)."""
        with contextlib.suppress(OSError):
            os.utime(self.action_path(key))

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.path.glob("actions/*/*.json"))

    def blobs(self) -> Iterator[Path]:
        return self.path.glob("blobs/*/*")

    def manifest(self, digest: str) -> list[ManifestFile] | None:
        try:
            return parse_manifest(self.blob_path(digest).read_bytes(), digest)
        except OSError:
            return None

    def blobs_of(self, record: ActionRecord) -> set[str]:
        """Every blob a record needs: its outputs' and, for folders, their files'."""
        found = set()
        for entry in record.outputs.values():
            found.add(entry.digest)
            if entry.kind == DIR:
                found.update(d for _, d, _ in self.manifest(entry.digest) or ())
        return found

    # -- writing blobs ------------------------------------------------------------------

    def _tmp(self) -> Path:
        tmp = self.path / "tmp"
        self._mkdir(tmp)
        return tmp / f"{self._prefix}-{next(self._names)}"

    def _mkdir(self, folder: Path) -> None:
        key = str(folder)
        if key not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(key)

    def _publish(self, tmp: Path, final: Path) -> None:
        """Rename a whole temporary file into place; blobs are read-only from then on."""
        os.chmod(tmp, 0o444)
        self._rename(tmp, final)

    def _rename(self, tmp: Path, final: Path) -> None:
        self._mkdir(final.parent)
        try:
            os.replace(tmp, final)
        except FileNotFoundError:  # its folder was removed since (`rm -r` by hand, ...)
            self._made.discard(str(final.parent))
            self._mkdir(final.parent)
            os.replace(tmp, final)

    def _write_whole(self, final: Path, data: bytes) -> None:
        tmp = self._tmp()
        try:
            tmp.write_bytes(data)
            self._rename(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def add_file(self, source: str, digest: str) -> None:
        """Copy a file into the cache as blob ``digest`` (nothing to do if it is there).

        Raises Mismatch when the file no longer hashes to ``digest`` (it changed since it
        was hashed): a blob always holds what its name says.
        """
        final = self.blob_path(digest)
        if final.exists():
            return
        tmp = self._tmp()
        try:
            if not copy_verified(source, str(tmp), digest, 0o444):
                raise Mismatch(f"{source} changed since it was hashed")
            self._publish(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def add_bytes(self, data: bytes, digest: str) -> None:
        final = self.blob_path(digest)
        if not final.exists():
            tmp = self._tmp()
            try:
                tmp.write_bytes(data)
                self._publish(tmp, final)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    def receive(self, stream: IO[bytes], digest: str | None, *, manifest: bool = False) -> str:
        """Store a blob read from ``stream``, verifying it against ``digest``.

        With ``digest`` None the content's own digest names it (a URL output being saved).
        A folder manifest is verified by recomputing the folder digest from its entries.
        Returns the digest; raises :class:`Mismatch` and keeps nothing when it differs.
        """
        tmp = self._tmp()
        try:
            h = xxhash.xxh3_128()
            with open(tmp, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            if manifest:
                ok = digest is not None and parse_manifest(tmp.read_bytes(), digest) is not None
            else:
                ok = digest is None or h.hexdigest() == digest
            if not ok:
                raise Mismatch(f"content does not match digest {digest}")
            digest = digest or h.hexdigest()
            final = self.blob_path(digest)
            if not final.exists():
                self._publish(tmp, final)
            return digest
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    # -- restoring outputs --------------------------------------------------------------

    def place_file(self, digest: str, dest: str, executable: bool) -> None:
        """Copy blob ``digest`` to ``dest`` atomically, verified on the way.

        Raises Mismatch (and drops the blob) when the cached copy was damaged.
        """
        tmp = _beside(dest)
        mode = 0o777 if executable else 0o666  # the umask applies, as to any new file
        blob = str(self.blob_path(digest))
        try:
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
        """(action records, blobs, bytes on disk)."""
        records = list(self.path.glob("actions/*/*.json"))
        blobs = list(self.blobs())
        size = sum(_size(p) for p in records) + sum(_size(p) for p in blobs)
        return len(records), len(blobs), size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
