"""A remote artifact cache (``[flow] remote``) and the transfers between it and the local one.

The remote holds one object per blob (``blobs/ab/<digest>``) and per action record
(``actions/12/<key>.json``), whatever their size (the local cache keeps small ones in its
index.db instead: cache.py), under its URL: ``s3://…``, ``memory://…`` or any protocol a
backend serves, or a plain folder (``file://`` or a path, relative to the project root).
Blobs are immutable and named by their digest, so concurrent pushers never conflict: an
object store writes each object whole, a folder gets a temporary name and a rename. A
record is pushed only after all its blobs. Every blob downloaded is verified against its
digest; one that does not match is rejected, and the push of the target's rebuild
overwrites it (even where a blob that is there is otherwise never sent again). A
rejected or missing blob is warned about once a command, naming the first target that
needed it. With ``FLOWMAKE_CACHE_KEY`` set, records are signed when pushed and verified
when pulled (signing.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from flowmake.cache.local import LocalCache
from flowmake.cache.records import DIR, ActionRecord, Mismatch, action_rel, blob_rel

if TYPE_CHECKING:
    from concurrent.futures import Future

    from flowmake.cache.signing import Signer

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

    def _whole(self, rel: str, write: Callable[[str], object]) -> None:
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
            return cast("IO[bytes]", read_stream(self._url(rel)))
        return cast("IO[bytes]", self.backend.open(self._url(rel), "rb"))

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
        writable: False for ``remote_readonly``: nothing is ever written.
        signer: signs the records pushed and verifies those pulled (FLOWMAKE_CACHE_KEY).
    """

    def __init__(self, local: LocalCache, remote: RemoteStore, warn: Callable[[str], None],
                 *, writable: bool, threads: int = TRANSFER_THREADS,
                 signer: Signer | None = None) -> None:
        self.local, self.remote, self.warn, self.writable = local, remote, warn, writable
        self.signer = signer
        from concurrent.futures import ThreadPoolExecutor  # only a build with a remote needs it

        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="flowmake-transfer")
        self.pushes: list[Future[PushCount]] = []
        self.rejected: set[str] = set()  # blobs whose remote copy is bad: a push overwrites
        self._failed: set[str] = set()  # blobs already warned about (missing or rejected)
        self._sha256: dict[str, dict[str, str]] = {}  # key → its signed blobs' SHA-256
        self._lock = threading.Lock()

    # -- pulling ------------------------------------------------------------------------

    def fetch_record(self, key: str, target: str | None = None) -> ActionRecord | None:
        """The remote's record for ``key`` (of ``target``, for warnings); None when absent
        or rejected (not a whole record, another key's, or not signed as it must be)."""
        rel = action_rel(key)
        try:
            with self.remote.open(rel) as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            return self._checked(key, data)
        except ValueError as exc:
            self.warn(f"remote record {self.remote.url}/{rel} of target '{target or '?'}'"
                      f" rejected: {exc}")
            return None

    def _checked(self, key: str, data: bytes) -> ActionRecord:
        """The record in ``data``; ValueError (signing.Rejected is one) when unusable."""
        record = ActionRecord.loads(data)
        if record.key != key:
            raise ValueError(f"it is the record of another key, {record.key}")
        if self.signer is not None:
            self._sha256[key] = self.signer.verify(data, record)
        return record

    def fetch_records(self, keys: Mapping[str, str | None]) -> dict[str, ActionRecord | None]:
        """Several records at once, in parallel: ``keys`` maps each key to its target."""
        found = self.pool.map(lambda k: self.fetch_record(k, keys[k]), keys)
        return dict(zip(keys, found, strict=True))

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
        """Download one blob ``record`` needs, verified; False (warned about once a
        command, whichever record needs it) when it is missing or rejected."""
        if self.local.has_blob(digest):
            return True
        if digest in self._failed:
            return False
        where = f"remote blob {self.remote.url}/{blob_rel(digest)} of target '{record.target}'"
        sha256 = None
        if self.signer is not None:
            sha256 = self._sha256.get(record.key, {}).get(digest)
            if sha256 is None:  # a signer covers every blob: a manifest changed by hand
                self._failed_once(digest, f"{where} rejected: the record's signature does"
                                  " not cover it")
                return False
        try:
            with self.remote.open(blob_rel(digest)) as f:
                self.local.receive(f, digest, manifest=manifest, sha256=sha256)
            return True
        except FileNotFoundError:
            self._failed_once(digest, f"{where} is missing")
        except Mismatch as exc:
            self.rejected.add(digest)  # the push of a rebuild overwrites it
            self._failed_once(digest, f"{where} rejected: {exc}")
        return False

    def _failed_once(self, digest: str, warning: str) -> None:
        with self._lock:
            if digest in self._failed:
                return
            self._failed.add(digest)
        self.warn(warning)

    # -- pushing ------------------------------------------------------------------------

    def push(self, record: ActionRecord, present: set[str] | None = None) -> PushCount:
        """Upload a record's blobs that the remote lacks, then the record itself (signed,
        with a signer).

        ``present``: what a listing found on the remote (``cache push``); without it,
        each blob is probed. A record already there, with all its blobs, is left alone
        (unless it is to be signed: whatever is there may be unsigned).
        """
        count = PushCount(records=1)
        sha256: dict[str, str] = {}
        for digest in sorted(self.local.blobs_of(record)):
            if self._there(digest, present):
                count.present += 1
            else:
                self._upload(digest)
                count.uploaded += 1
            if self.signer is not None:
                sha256[digest] = self._local_sha256(digest)
        rel = action_rel(record.key)
        if self.signer is not None:
            data = record.dumps({"signature": self.signer.sign(record, sha256)})
            self.remote.put_bytes(rel, data)
        elif count.uploaded or present is None or rel not in present:
            self.remote.put_bytes(rel, record.dumps())
        return count

    def _there(self, digest: str, present: set[str] | None) -> bool:
        """Whether the remote has blob ``digest`` (a bad copy rejected here does not count)."""
        rel = blob_rel(digest)
        if digest in self.rejected:
            return False
        if present is not None:
            return rel in present
        # A small blob is sent rather than probed: one request instead of two, and
        # rewriting an immutable blob with its own bytes is harmless.
        return self._size(digest) > SMALL_BLOB and self.remote.exists(rel)

    def _upload(self, digest: str) -> None:
        rel = blob_rel(digest)
        data = self.local.inline_blob(digest)  # small blobs live in the local index.db
        if data is not None:
            self.remote.put_bytes(rel, data)
        else:
            self.remote.put_file(rel, str(self.local.blob_path(digest)))
        self.rejected.discard(digest)

    def _local_sha256(self, digest: str) -> str:
        from flowmake.cache.signing import sha256_of

        data = self.local.inline_blob(digest)
        if data is not None:
            return sha256_of([data])
        with open(self.local.blob_path(digest), "rb") as f:
            return sha256_of(iter(lambda: f.read(1 << 20), b""))

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
