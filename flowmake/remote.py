"""A remote artifact cache (``[flow] remote``) and the transfers between it and the local one.

The remote holds one object per blob (``blobs/ab/<digest>``) and per action record
(``actions/12/<key>.json``), whatever their size (the local cache keeps small ones in its
index.db instead: cache.py), under its URL: ``s3://…``, ``memory://…`` or any protocol a
backend serves, or a plain folder (``file://`` or a path, relative to the project root).
Blobs are immutable and named by their digest, so concurrent pushers never conflict: an
object store writes each object whole, a folder gets a temporary name and a rename. A
record is pushed only after all its blobs. Every blob downloaded is verified against its
digest; one that does not match is rejected (and, unless the remote is read-only,
deleted so that the next push replaces it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from .cache import DIR, ActionRecord, LocalCache, Mismatch, action_rel, blob_rel

if TYPE_CHECKING:
    from concurrent.futures import Future

TRANSFER_THREADS = 16  # object stores answer slowly but in parallel
SMALL_BLOB = 256 << 10  # up to this size, uploading costs about what probing does


class RemoteStore(Protocol):
    """Objects by relative path under the remote's URL."""

    url: str

    def open(self, rel: str) -> IO[bytes]:
        """Open for reading; FileNotFoundError when absent."""
        ...

    def put_file(self, rel: str, source: str) -> None: ...
    def put_bytes(self, rel: str, data: bytes) -> None: ...
    def exists(self, rel: str) -> bool: ...
    def remove(self, rel: str) -> None: ...

    def listing(self, folder: str) -> set[str]:
        """Every object two levels under ``folder`` (``blobs/ab/…``), as relative paths:
        one listing instead of a probe per object."""
        ...


class FolderRemote:
    """A folder on this machine (a mounted share): temporary names, then renames."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = str(path)

    def open(self, rel: str) -> IO[bytes]:
        return open(self.path / rel, "rb")

    def _whole(self, rel: str, write: Callable[[str], None]) -> None:
        final = self.path / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{final}.{os.urandom(16).hex()}.tmp"
        try:
            write(tmp)
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put_file(self, rel: str, source: str) -> None:
        self._whole(rel, lambda tmp: shutil.copyfile(source, tmp))

    def put_bytes(self, rel: str, data: bytes) -> None:
        self._whole(rel, lambda tmp: Path(tmp).write_bytes(data))

    def exists(self, rel: str) -> bool:
        return (self.path / rel).exists()

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / rel).unlink()

    def listing(self, folder: str) -> set[str]:
        base = self.path / folder
        if not base.is_dir():
            return set()
        return {f"{folder}/{sub.name}/{entry.name}" for sub in os.scandir(base) if sub.is_dir()
                for entry in os.scandir(sub.path) if not entry.name.endswith(".tmp")}


class BackendRemote:
    """A URL served by a storage backend; an object store writes each object whole."""

    def __init__(self, url: str, backend: Any) -> None:
        self.url = url.rstrip("/")
        self.backend = backend

    def _url(self, rel: str) -> str:
        return f"{self.url}/{rel}"

    def open(self, rel: str) -> IO[bytes]:
        # A backend may offer a one-request sequential read (flowmake-s3 does): blobs and
        # records are read once, front to back, so the metadata round trip is wasted.
        read_stream = getattr(self.backend, "read_stream", None)
        if read_stream is not None:
            return read_stream(self._url(rel))
        return self.backend.open(self._url(rel), "rb")

    def put_file(self, rel: str, source: str) -> None:
        with open(source, "rb") as src, self.backend.open(self._url(rel), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def put_bytes(self, rel: str, data: bytes) -> None:
        with self.backend.open(self._url(rel), "wb") as dst:
            dst.write(data)

    def exists(self, rel: str) -> bool:
        # Blobs are never folders: a backend's plain object probe is enough when it has one.
        probe = getattr(self.backend, "object_exists", None) or self.backend.exists
        return bool(probe(self._url(rel)))

    def remove(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.backend.remove(self._url(rel))

    def listing(self, folder: str) -> set[str]:
        start = len(self.url) + 1
        find = getattr(self.backend, "find", None)  # optional: a flat listing is far cheaper
        urls = find(self._url(folder)) if find else self.backend.glob(self._url(f"{folder}/*/*"))
        return {url[start:] for url in urls if url[start:].count("/") == 2}


def open_remote(url: str, root: Path, backend_for: Callable[[str], Any]) -> RemoteStore:
    """The store behind ``[flow] remote``: a folder for paths and ``file://``, else a backend."""
    if "://" not in url or url.startswith("file://"):
        path = Path(os.path.expanduser(url.removeprefix("file://")))
        return FolderRemote(path if path.is_absolute() else root / path)
    return BackendRemote(url, backend_for(url))


@dataclass(slots=True)
class PushCount:
    records: int = 0
    uploaded: int = 0
    present: int = 0


class Transfers:
    """Pulls and pushes between a local cache and a remote, in parallel threads.

    Args:
        warn: prints one warning line (corrupt blobs, an unreachable remote).
        writable: False for ``remote_readonly``: nothing is ever written or deleted.
    """

    def __init__(self, local: LocalCache, remote: RemoteStore, warn: Callable[[str], None],
                 *, writable: bool, threads: int = TRANSFER_THREADS) -> None:
        self.local, self.remote, self.warn, self.writable = local, remote, warn, writable
        from concurrent.futures import ThreadPoolExecutor  # only a build with a remote needs it

        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="flowmake-transfer")
        self.pushes: list[Future[PushCount]] = []

    # -- pulling ------------------------------------------------------------------------

    def fetch_record(self, key: str) -> ActionRecord | None:
        """The remote's record for ``key``; None when absent (or not a valid record)."""
        try:
            with self.remote.open(action_rel(key)) as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            record = ActionRecord.loads(data)
        except ValueError as exc:
            self.warn(f"remote record {action_rel(key)} rejected: {exc}")
            return None
        return record if record.key == key else None

    def fetch_records(self, keys: list[str]) -> dict[str, ActionRecord | None]:
        """Several records at once, in parallel."""
        return dict(zip(keys, self.pool.map(self.fetch_record, keys), strict=True))

    def fetch_blobs(self, record: ActionRecord) -> bool:
        """Download the blobs a record needs that the local cache lacks, verified."""
        return self.fetch_many([record])[record.key]

    def fetch_many(self, records: list[ActionRecord]) -> dict[str, bool]:
        """Download (in parallel) what each record needs; which records are now complete.

        Folder manifests come first: they name the folders' files.
        """
        def fetch(pairs: list[tuple[str, ActionRecord]], manifest: bool) -> set[str]:
            ok = self.pool.map(lambda p: self.fetch_blob(p[0], p[1], manifest=manifest), pairs)
            return {d for (d, _), good in zip(pairs, ok, strict=True) if good}

        manifests = {e.digest: r for r in records for e in r.outputs.values() if e.kind == DIR}
        have = fetch(sorted(manifests.items()), True)
        files: dict[str, ActionRecord] = {}
        for record in records:
            for entry in record.outputs.values():
                if entry.kind != DIR:
                    files.setdefault(entry.digest, record)
                elif entry.digest in have:
                    for _, digest, _ in self.local.manifest(entry.digest) or ():
                        files.setdefault(digest, record)
        have |= fetch(sorted(files.items()), False)
        return {r.key: all(d in have for d in self.local.blobs_of(r))
                and all(e.digest in have for e in r.outputs.values()) for r in records}

    def fetch_blob(self, digest: str, record: ActionRecord, *, manifest: bool = False) -> bool:
        if self.local.has_blob(digest):
            return True
        rel = blob_rel(digest)
        try:
            with self.remote.open(rel) as f:
                self.local.receive(f, digest, manifest=manifest)
            return True
        except FileNotFoundError:
            self.warn(f"remote blob {rel} of target '{record.target}' is missing")
        except Mismatch:
            self.warn(f"remote blob {self.remote.url}/{rel} of target '{record.target}' does"
                      " not match its digest: rejected")
            if self.writable:  # so that the next push of these outputs replaces it
                self.remote.remove(rel)
        return False

    # -- pushing ------------------------------------------------------------------------

    def push(self, record: ActionRecord, present: set[str] | None = None) -> PushCount:
        """Upload a record's blobs that the remote lacks, then the record itself.

        ``present``: what a listing found on the remote (``cache push``); without it,
        each blob is probed. A record already there, with all its blobs, is left alone.
        """
        count = PushCount(records=1)
        for digest in sorted(self.local.blobs_of(record)):
            rel = blob_rel(digest)
            if present is not None:
                there = rel in present
            else:  # a small blob is sent rather than probed: one request instead of two,
                # and rewriting an immutable blob with its own bytes is harmless
                there = self._size(digest) > SMALL_BLOB and self.remote.exists(rel)
            if there:
                count.present += 1
                continue
            data = self.local.inline_blob(digest)  # small blobs live in the local index.db
            if data is not None:
                self.remote.put_bytes(rel, data)
            else:
                self.remote.put_file(rel, str(self.local.blob_path(digest)))
            count.uploaded += 1
        if count.uploaded or present is None or action_rel(record.key) not in present:
            self.remote.put_bytes(action_rel(record.key), record.dumps())
        return count

    def _size(self, digest: str) -> int:
        return self.local.blob_size(digest) or 0

    def remote_listing(self) -> set[str]:
        """The remote's records and blobs, as relative paths (a few LIST requests)."""
        return self.remote.listing("actions") | self.remote.listing("blobs")

    def push_later(self, record: ActionRecord) -> None:
        """Push in the background; :meth:`wait` collects the results."""
        if self.writable:
            self.pushes.append(self.pool.submit(self.push, record))

    def wait(self, *, cancel: bool = False) -> tuple[PushCount, list[str]]:
        """Wait for every background push (``cancel``: drop those not started yet): the
        totals and one line per failure."""
        total, errors = PushCount(), []
        for future in self.pushes:
            if cancel and future.cancel():
                continue
            try:
                count = future.result()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            total.records += count.records
            total.uploaded += count.uploaded
            total.present += count.present
        self.pushes.clear()
        return total, errors

    def close(self) -> None:
        self.pool.shutdown(wait=True)
