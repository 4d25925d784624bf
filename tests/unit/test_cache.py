"""The artifact cache in process: records, blobs, copies, verification, remotes, gc.

Real files under tmp_path, real SQLite (the cache's index.db, inspected and tampered with
through a connection of the test's own), a real folder remote and fsspec's real
``memory://`` filesystem as an object store.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowmake.builtin.backends import FsspecBackend
from flowmake.cache import index as cache_index
from flowmake.cache.index import INLINE_BLOB, WRITE_BATCH, IndexUnusable
from flowmake.cache.local import LocalCache
from flowmake.cache.records import (
    DIR,
    FILE,
    ActionRecord,
    Entry,
    Mismatch,
    action_rel,
    blob_rel,
    manifest_bytes,
    parse_manifest,
)
from flowmake.cache.remote import SMALL_BLOB, BackendRemote, FolderRemote, Transfers, open_remote
from flowmake.cli.cache import _collect, parse_size
from flowmake.digest import hash_bytes, hash_file
from flowmake.errors import UsageError
from flowmake.executor import JobResult
from flowmake.fsutil import copy_file
from flowmake.model import Output, Shell, Target
from flowmake.plan.fingerprint import Hasher
from flowmake.plugin.urls import Urls, digest_url_outputs


def blob(cache: LocalCache, tmp_path: Path, content: bytes) -> str:
    """Put ``content`` in the cache as a blob; its digest."""
    src = tmp_path / f"src-{uuid.uuid4().hex}"
    src.write_bytes(content)
    digest = hash_file(str(src))
    cache.add_file(str(src), digest)
    return digest


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[LocalCache]:
    local = LocalCache(tmp_path / "cache")
    yield local
    local.close()


@contextlib.contextmanager
def index(cache: LocalCache) -> Iterator[sqlite3.Connection]:
    """A connection of the test's own to the cache's index.db (autocommit), as another
    process would open it once the cache has written what it queued."""
    cache.flush()
    db = sqlite3.connect(cache.path / "index.db", isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def files_in(folder: Path) -> list[str]:
    """Every file under ``folder``, relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


SMALL, LARGE = b"precious\n", os.urandom(INLINE_BLOB + 1)  # stored inline / as a file


# -- records and manifests ---------------------------------------------------------------


def test_action_record_round_trips_through_json() -> None:
    record = ActionRecord("k" * 32, "t", {"out/a": Entry(FILE, "a" * 32, True),
                                          "s3://b/x": Entry("url", "b" * 32, False, "etag:1:2")},
                          log="hello\n", created=12.5)
    assert ActionRecord.loads(record.dumps()) == record


@pytest.mark.parametrize("data", [b"", b"{", b'{"version": 1}', b'{"version": 99, "key": "k",'
                                  b' "target": "t", "outputs": {}}',
                                  b'{"version": 1, "key": "k", "target": "t",'
                                  b' "outputs": {"a": {"kind": "file", "digest": "../../etc"}}}'])
def test_a_malformed_record_is_rejected(data: bytes) -> None:
    with pytest.raises(ValueError):
        ActionRecord.loads(data)


def test_manifest_is_verified_against_the_folder_digest(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    hasher = Hasher(str(tmp_path))
    digest = hasher.digest("d")
    files = [(rel, hasher.digest(f"d/{rel}"), False) for rel in hasher.walk("d")]
    data = manifest_bytes(files)
    assert parse_manifest(data, digest) == sorted(files)
    tampered = manifest_bytes([(files[0][0], hash_bytes("evil"), False), files[1]])
    assert parse_manifest(tampered, digest) is None
    escaping = manifest_bytes([("../outside", files[0][1], False)])
    assert parse_manifest(escaping, digest) is None


# -- blobs: copies, never links, verified ---------------------------------------------------


@pytest.mark.parametrize("content", [SMALL, LARGE], ids=["inline", "file"])
def test_restored_file_is_an_independent_copy(cache: LocalCache, tmp_path: Path,
                                              content: bytes) -> None:
    digest = blob(cache, tmp_path, content)
    dest = tmp_path / "out" / "a.txt"
    cache.place_file(digest, str(dest), executable=False)
    assert dest.read_bytes() == content
    assert os.stat(dest).st_nlink == 1
    blob_file = cache.blob_path(digest)
    if content is LARGE:
        assert os.stat(dest).st_ino != os.stat(blob_file).st_ino
        assert stat.S_IMODE(os.stat(blob_file).st_mode) == 0o444  # blobs are read-only
    else:
        assert not blob_file.exists()
    with open(dest, "r+b") as f:  # in place, as an editor might
        f.write(b"edited by the user\n")
    assert cache.read_blob(digest) == content


def test_a_small_blob_is_a_row_and_a_large_one_a_file(cache: LocalCache, tmp_path: Path) -> None:
    small = blob(cache, tmp_path, b"s" * INLINE_BLOB)  # the threshold itself is inline
    record = ActionRecord(hash_bytes("k"), "t", {"out/s": Entry(FILE, small)})
    cache.write_action(record)
    assert files_in(cache.path) == ["index.db", "index.db-shm", "index.db-wal"]
    assert cache.inline_blob(small) == b"s" * INLINE_BLOB
    assert cache.blob_size(small) == INLINE_BLOB
    large = blob(cache, tmp_path, LARGE)
    assert files_in(cache.path) == [blob_rel(large), "index.db", "index.db-shm", "index.db-wal"]
    assert cache.inline_blob(large) is None and cache.has_blob(large)
    assert cache.blob_size(large) == len(LARGE) and cache.read_blob(large) == LARGE
    with cache.open_blob(small) as f:
        assert f.read() == b"s" * INLINE_BLOB
    with cache.open_blob(large) as f:
        assert f.read() == LARGE
    assert sorted((b.digest, b.size, b.inline) for b in cache.blobs()) == sorted(
        [(small, INLINE_BLOB, True), (large, len(LARGE), False)])
    assert cache.usage() == (1, 2, len(record.dumps()) + INLINE_BLOB + len(LARGE))
    with pytest.raises(FileNotFoundError):
        cache.open_blob(hash_bytes("absent"))
    assert cache.blob_size(hash_bytes("absent")) is None


def rows_seen_by_another_process(cache: LocalCache) -> tuple[int, int]:
    """(records, blobs) in index.db as another connection sees them, without flushing."""
    db = sqlite3.connect(cache.path / "index.db", isolation_level=None)
    try:
        return db.execute("SELECT (SELECT count(*) FROM actions),"
                          " (SELECT count(*) FROM blobs)").fetchone()
    finally:
        db.close()


def test_saves_are_written_in_batches_and_seen_at_once_by_their_process(
        cache: LocalCache, tmp_path: Path) -> None:
    digest = blob(cache, tmp_path, b"one\n")
    record = ActionRecord(hash_bytes("k0"), "t0", {"out/a": Entry(FILE, digest)})
    cache.write_action(record)
    assert rows_seen_by_another_process(cache) == (0, 0)  # queued: no transaction yet
    # a lookup answers from the queue without writing it (a build's checks come between
    # its saves: writing the queue there made every save a transaction of its own)
    assert cache.read_action(record.key) == record
    assert cache.has_blob(digest) and cache.read_blob(digest) == b"one\n"
    assert cache.blob_size(digest) == 4 and cache.blobs_of(record) == {digest}
    assert rows_seen_by_another_process(cache) == (0, 0)
    assert cache.keys() == [record.key]  # a query of the whole index writes the queue
    assert rows_seen_by_another_process(cache) == (1, 1)
    for i in range(1, WRITE_BATCH // 2):
        d = blob(cache, tmp_path, f"content {i}\n".encode())
        cache.write_action(ActionRecord(hash_bytes(f"k{i}"), f"t{i}", {"out/a": Entry(FILE, d)}))
    assert rows_seen_by_another_process(cache) == (1, 1)
    d = blob(cache, tmp_path, b"the last one\n")
    assert rows_seen_by_another_process(cache) == (1, 1)  # WRITE_BATCH - 1 rows queued
    cache.write_action(ActionRecord(hash_bytes("last"), "last", {"out/a": Entry(FILE, d)}))
    seen = WRITE_BATCH // 2 + 1
    assert rows_seen_by_another_process(cache) == (seen, seen)  # the batch: written
    blob(cache, tmp_path, b"after the batch\n")
    cache.close()  # and the rest at close
    assert rows_seen_by_another_process(cache) == (seen, seen + 1)


def test_queued_writes_wait_at_most_write_seconds(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A build waiting for a slow target has its saves written all the same: a timer
    writes the queue WRITE_SECONDS after its first row, with no save or lookup."""
    monkeypatch.setattr(cache_index, "WRITE_SECONDS", 0.2)
    cache = LocalCache(tmp_path / "cache")
    try:
        first = blob(cache, tmp_path, b"first\n")
        cache.write_action(ActionRecord(hash_bytes("k"), "t", {"out/a": Entry(FILE, first)}))
        assert rows_seen_by_another_process(cache) == (0, 0)
        deadline = time.monotonic() + 10
        while rows_seen_by_another_process(cache) != (1, 1):
            assert time.monotonic() < deadline, "the queue was not written"
            time.sleep(0.02)
        blob(cache, tmp_path, b"second\n")  # a row after the timer: a new timer
        while rows_seen_by_another_process(cache) != (1, 2):
            assert time.monotonic() < deadline, "the second row was not written"
            time.sleep(0.02)
    finally:
        cache.close()
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)
                and t.is_alive() and t.function == cache._write_due]


def test_a_record_and_its_blobs_are_written_in_one_transaction(
        cache: LocalCache, tmp_path: Path) -> None:
    """Another process sees an entry whole or not at all: the queue is one transaction,
    in the order of the saves (the blobs before the record that names them)."""
    for i in range(WRITE_BATCH // 2 - 1):
        d = blob(cache, tmp_path, f"content {i}\n".encode())
        cache.write_action(ActionRecord(hash_bytes(f"k{i}"), f"t{i}", {"out/a": Entry(FILE, d)}))
        seen_records, seen_blobs = rows_seen_by_another_process(cache)
        assert seen_records == seen_blobs and seen_records in (0, i + 1)
    cache.close()
    assert rows_seen_by_another_process(cache) == (WRITE_BATCH // 2 - 1,) * 2


@pytest.mark.parametrize("size", [0, 1, INLINE_BLOB - 1, INLINE_BLOB, INLINE_BLOB + 1])
def test_add_file_stores_a_file_whole_inline_up_to_inline_blob(
        cache: LocalCache, tmp_path: Path, size: int) -> None:
    content = bytes(i % 251 for i in range(size))
    src = tmp_path / "out.bin"
    src.write_bytes(content)
    src.chmod(0o755)
    digest = hash_file(str(src))
    assert cache.add_file(str(src), digest) is True  # executable
    assert (cache.inline_blob(digest) is not None) == (size <= INLINE_BLOB)
    assert cache.read_blob(digest) == content and cache.blob_size(digest) == size
    (tmp_path / "folder").mkdir()
    assert cache.add_file(str(tmp_path / "folder"), digest) is None  # a folder: nothing
    src.write_bytes(content + b"grown")
    other = LocalCache(tmp_path / "other")
    with pytest.raises(Mismatch, match="changed since it was hashed"):
        other.add_file(str(src), digest)  # changed since it was hashed: never stored
    assert other.read_blob(digest) is None and cache.read_blob(digest) == content
    other.close()


def test_queued_writes_that_fail_are_reported_at_close(cache: LocalCache, tmp_path: Path) -> None:
    digest = blob(cache, tmp_path, b"one\n")
    cache.write_action(ActionRecord(hash_bytes("k"), "t", {"out/a": Entry(FILE, digest)}))
    other = sqlite3.connect(cache.path / "index.db", isolation_level=None)
    other.execute("DROP TABLE actions")  # another process breaks the index meanwhile
    other.close()
    with pytest.raises(IndexUnusable, match="no such table: actions"):
        cache.close()
    assert cache.read_action(hash_bytes("k")) is None  # dropped, and the cache still answers


def test_a_reader_never_creates_the_cache(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "nowhere")
    assert cache.read_action(hash_bytes("k")) is None
    assert not cache.has_blob(hash_bytes("b")) and cache.keys() == []
    assert cache.usage() == (0, 0, 0)
    assert not cache.path.exists()


def test_restore_replaces_the_old_file_atomically_and_keeps_exec_bit(
        cache: LocalCache, tmp_path: Path) -> None:
    digest = blob(cache, tmp_path, b"#!/bin/sh\necho hi\n")
    dest = tmp_path / "run.sh"
    dest.write_text("old")
    cache.place_file(digest, str(dest), executable=True)
    assert dest.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.stat(dest).st_mode & stat.S_IXUSR
    assert [p.name for p in tmp_path.iterdir() if "flowmake" in p.name] == []  # no temp left


@pytest.mark.parametrize("content", [b"good content\n", LARGE], ids=["inline", "file"])
def test_a_damaged_local_blob_is_detected_and_dropped(cache: LocalCache, tmp_path: Path,
                                                      content: bytes) -> None:
    digest = blob(cache, tmp_path, content)
    bad = b"bad content!\n" if len(content) < 100 else content[:-1] + b"!"
    path = cache.blob_path(digest)
    if content is LARGE:
        os.chmod(path, 0o644)
        path.write_bytes(bad)
    else:
        with index(cache) as db:
            assert db.execute("UPDATE blobs SET data = ? WHERE digest = ?",
                              (bad, digest)).rowcount == 1
    dest = tmp_path / "out.txt"
    with pytest.raises(Mismatch, match="damaged"):
        cache.place_file(digest, str(dest), executable=False)
    assert not dest.exists()
    assert not cache.has_blob(digest) and not path.exists()
    assert [p.name for p in tmp_path.iterdir() if "flowmake" in p.name] == []  # no temp left


def test_receive_verifies_the_digest(cache: LocalCache, tmp_path: Path) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"payload")
    digest = hash_file(str(src))
    with open(src, "rb") as f:
        assert cache.receive(f, digest) == digest
    assert cache.has_blob(digest)
    wrong = hash_bytes("something else")
    with open(src, "rb") as f, pytest.raises(Mismatch):
        cache.receive(f, wrong)
    assert not cache.has_blob(wrong)
    assert not (cache.path / "tmp").exists()  # small content never touches a file


class Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes a read, as a socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        end = self.pos + min(self.step, size if size >= 0 else self.step)
        chunk, self.pos = self.data[self.pos:end], min(end, len(self.data))
        return chunk


@pytest.mark.parametrize("size", [0, 1000, INLINE_BLOB, INLINE_BLOB + 1, 3 * INLINE_BLOB])
def test_receive_keeps_small_content_inline_and_streams_the_rest(
        cache: LocalCache, size: int) -> None:
    data = os.urandom(size)
    digest = hash_bytes(data)
    assert cache.receive(Trickle(data, 7000), digest) == digest  # short reads
    assert (cache.inline_blob(digest) is not None) is (size <= INLINE_BLOB)
    assert cache.blob_path(digest).exists() is (size > INLINE_BLOB)
    assert cache.read_blob(digest) == data
    assert cache.receive(Trickle(data, 7000), None) == digest  # named by its content
    with pytest.raises(Mismatch):
        cache.receive(Trickle(data + b"x", 7000), hash_bytes(data[:-1] + b"?"))
    assert not (cache.path / "tmp").exists() or list((cache.path / "tmp").iterdir()) == []


def test_add_bytes_verifies_content_or_manifest(cache: LocalCache) -> None:
    cache.add_bytes(b"plain", hash_bytes(b"plain"))
    assert cache.inline_blob(hash_bytes(b"plain")) == b"plain"
    with pytest.raises(Mismatch):
        cache.add_bytes(b"plain", hash_bytes(b"other"))
    assert not cache.has_blob(hash_bytes(b"other"))


def test_copy_file_copies_large_files_exactly(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 123)
    (tmp_path / "big").write_bytes(data)
    copy_file(str(tmp_path / "big"), str(tmp_path / "copy"))
    assert (tmp_path / "copy").read_bytes() == data


def test_a_folder_is_restored_from_its_manifest(cache: LocalCache, tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "d" / "sub").mkdir(parents=True)
    (root / "d" / "a.txt").write_text("a")
    (root / "d" / "sub" / "tool").write_text("#!/bin/sh\n")
    os.chmod(root / "d" / "sub" / "tool", 0o755)
    hasher = Hasher(str(root))
    digest = hasher.digest("d")
    files = []
    for rel in hasher.walk("d"):
        file_digest = hasher.digest(f"d/{rel}")
        cache.add_file(str(root / "d" / rel), file_digest)
        files.append((rel, file_digest, rel.endswith("tool")))
    cache.add_bytes(manifest_bytes(files), digest)
    (root / "d" / "a.txt").write_text("changed")
    (root / "d" / "stray.txt").write_text("not in the cached folder")
    cache.place_dir(digest, str(root / "d"))
    assert Hasher(str(root)).digest("d") == digest
    assert not (root / "d" / "stray.txt").exists()
    assert os.stat(root / "d" / "sub" / "tool").st_mode & stat.S_IXUSR


# -- remotes -------------------------------------------------------------------------------


def saved_record(cache: LocalCache, tmp_path: Path, content: bytes = b"data\n") -> ActionRecord:
    digest = blob(cache, tmp_path, content)
    record = ActionRecord(hash_bytes(content + b"key"), "t", {"out/a.txt": Entry(FILE, digest)},
                          log="built t\n")
    cache.write_action(record)
    return record


def memory_remote() -> BackendRemote:
    return BackendRemote(f"memory://flowmake-test-{uuid.uuid4().hex}", FsspecBackend({}))


@pytest.mark.parametrize("kind", ["memory", "folder"])
def test_push_then_fetch_into_another_cache(tmp_path: Path, kind: str) -> None:
    remote = memory_remote() if kind == "memory" else FolderRemote(tmp_path / "remote")
    first, second = LocalCache(tmp_path / "c1"), LocalCache(tmp_path / "c2")
    record = saved_record(first, tmp_path)
    warnings: list[str] = []
    pusher = Transfers(first, remote, warnings.append, writable=True)
    count = pusher.push(record)
    assert (count.records, count.uploaded, count.present) == (1, 1, 0)
    # A small blob is sent again rather than probed (one request either way) ...
    assert pusher.push(record).uploaded == 1
    # ... but not when a listing says it is there: then nothing at all is written.
    listed = pusher.remote_listing()
    assert blob_rel(record.outputs["out/a.txt"].digest) in listed
    assert (pusher.push(record, listed).uploaded, pusher.push(record, listed).present) == (0, 1)
    puller = Transfers(second, remote, warnings.append, writable=True)
    fetched = puller.fetch_record(record.key)
    assert fetched == record
    assert puller.fetch_blobs(fetched)
    digest = record.outputs["out/a.txt"].digest
    assert second.read_blob(digest) == b"data\n"
    assert puller.fetch_record(hash_bytes("unknown")) is None
    assert warnings == []
    pusher.close()
    puller.close()


@pytest.mark.parametrize("kind", ["memory", "folder"])
def test_a_large_blob_is_probed_and_never_sent_twice(tmp_path: Path, kind: str) -> None:
    remote = memory_remote() if kind == "memory" else FolderRemote(tmp_path / "remote")
    cache = LocalCache(tmp_path / "c1")
    record = saved_record(cache, tmp_path, b"x" * (SMALL_BLOB + 1))
    pusher = Transfers(cache, remote, print, writable=True)
    assert (pusher.push(record).uploaded, pusher.push(record).present) == (1, 1)
    pusher.close()


@pytest.mark.parametrize("writable", [True, False])
def test_a_corrupt_remote_blob_is_rejected(tmp_path: Path, writable: bool) -> None:
    remote = memory_remote()
    first, second = LocalCache(tmp_path / "c1"), LocalCache(tmp_path / "c2")
    record = saved_record(first, tmp_path)
    Transfers(first, remote, print, writable=True).push(record)
    digest = record.outputs["out/a.txt"].digest
    remote.put_bytes(blob_rel(digest), b"tampered\n")
    warnings: list[str] = []
    puller = Transfers(second, remote, warnings.append, writable=writable)
    assert not puller.fetch_blobs(record)
    assert not puller.fetch_blobs(record)  # asked again (restore after prefetch): no new line
    assert not second.has_blob(digest)
    assert len(warnings) == 1 and blob_rel(digest) in warnings[0]
    assert "does not match its digest" in warnings[0]
    assert remote.open(blob_rel(digest)).read() == b"tampered\n"  # left for the push...
    # ...of the rebuild, which overwrites it, although a blob there is otherwise left alone
    second.add_bytes(b"data\n", digest)
    listed = puller.remote_listing()
    assert puller.push(record, listed).uploaded == 1
    assert remote.open(blob_rel(digest)).read() == b"data\n"
    assert puller.push(record, listed).uploaded == 0  # once
    puller.close()


def test_a_record_under_the_wrong_key_or_truncated_is_rejected(tmp_path: Path) -> None:
    remote = FolderRemote(tmp_path / "remote")
    record = saved_record(LocalCache(tmp_path / "c1"), tmp_path)
    other = hash_bytes("another key")
    remote.put_bytes(action_rel(other), record.dumps())
    remote.put_bytes(action_rel(hash_bytes("junk")), record.dumps()[:40])
    warnings: list[str] = []
    transfers = Transfers(LocalCache(tmp_path / "c2"), remote, warnings.append, writable=False)
    assert transfers.fetch_record(other, "t") is None
    assert transfers.fetch_record(hash_bytes("junk"), "u") is None
    assert len(warnings) == 2
    assert f"{action_rel(other)} of target 't' rejected: it is the record of another key" \
        in warnings[0]
    assert f"{action_rel(hash_bytes('junk'))} of target 'u' rejected: not whole JSON," \
        " truncated?" in warnings[1]
    transfers.close()


def test_a_folder_travels_with_its_files(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "d").mkdir(parents=True)
    (root / "d" / "one").write_text("1")
    (root / "d" / "two").write_text("2")
    hasher = Hasher(str(root))
    first = LocalCache(tmp_path / "c1")
    files = [(rel, hasher.digest(f"d/{rel}"), False) for rel in hasher.walk("d")]
    for rel, digest, _ in files:
        first.add_file(str(root / "d" / rel), digest)
    first.add_bytes(manifest_bytes(files), hasher.digest("d"))
    record = ActionRecord(hash_bytes("k"), "t", {"d": Entry(DIR, hasher.digest("d"))})
    remote = memory_remote()
    assert Transfers(first, remote, print, writable=True).push(record).uploaded == 3
    second = LocalCache(tmp_path / "c2")
    assert Transfers(second, remote, print, writable=False).fetch_blobs(record)
    assert second.blobs_of(record) == first.blobs_of(record)
    assert all(second.has_blob(d) for d in second.blobs_of(record))


def test_open_remote_chooses_a_folder_or_a_backend(tmp_path: Path) -> None:
    urls = Urls.default(str(tmp_path))
    folder = open_remote("shared/cache", tmp_path, urls.backend)
    assert isinstance(folder, FolderRemote) and folder.path == tmp_path / "shared" / "cache"
    assert isinstance(open_remote(f"file://{tmp_path}/c", tmp_path, urls.backend), FolderRemote)
    assert isinstance(open_remote("memory://x/cache", tmp_path, urls.backend), BackendRemote)


# -- gc --------------------------------------------------------------------------------------


def age(path: Path, days: float) -> None:
    past = time.time() - days * 86400
    os.utime(path, (past, past))


def age_record(cache: LocalCache, key: str, days: float) -> None:
    """Make a record look last used ``days`` ago (``used`` replaces a file's mtime)."""
    with index(cache) as db:
        assert db.execute("UPDATE actions SET used = ? WHERE key = ?",
                          (time.time() - days * 86400, key)).rowcount == 1


def age_blob(cache: LocalCache, digest: str, days: float) -> None:
    """Make a blob look stored ``days`` ago, in the database or as a file."""
    if cache.inline_blob(digest) is None:
        age(cache.blob_path(digest), days)
        return
    with index(cache) as db:
        db.execute("UPDATE blobs SET added = ? WHERE digest = ?",
                   (time.time() - days * 86400, digest))


def test_gc_by_age_keeps_the_current_records(cache: LocalCache, tmp_path: Path) -> None:
    old = saved_record(cache, tmp_path, b"old\n")
    current = saved_record(cache, tmp_path, b"current\n")
    for record in (old, current):
        age_record(cache, record.key, 10)
    report = _collect(cache, {current.key}, max_age=5, max_size=None)
    assert report["removed_entries"] == 1 and report["removed_blobs"] == 1
    assert cache.read_action(old.key) is None
    assert not cache.has_blob(old.outputs["out/a.txt"].digest)
    assert cache.read_action(current.key) == current
    assert cache.has_blob(current.outputs["out/a.txt"].digest)


def test_gc_by_size_drops_least_recently_used_first(cache: LocalCache, tmp_path: Path) -> None:
    records = [saved_record(cache, tmp_path, bytes([65 + i]) * 4000) for i in range(3)]
    for days, record in zip((3, 1, 2), records, strict=True):
        age_record(cache, record.key, days)
    _, _, size = cache.usage()
    report = _collect(cache, set(), max_age=None, max_size=size - 1000)
    assert report["removed_entries"] == 1
    assert cache.read_action(records[0].key) is None  # the least recently used
    assert cache.read_action(records[1].key) is not None
    assert report["size"] <= size - 1000
    assert _collect(cache, {records[2].key}, max_age=None, max_size=0)["entries"] == 1


@pytest.mark.parametrize("extra", [b"", LARGE], ids=["inline", "file"])
def test_gc_removes_old_orphans_but_not_young_ones(cache: LocalCache, tmp_path: Path,
                                                   extra: bytes) -> None:
    young = blob(cache, tmp_path, b"being saved right now\n" + extra)
    old = blob(cache, tmp_path, b"left behind\n" + extra)
    age_blob(cache, old, 1)
    report = _collect(cache, set(), max_age=None, max_size=None)
    assert report["removed_blobs"] == 1 and report["freed"] == len(b"left behind\n" + extra)
    assert cache.has_blob(young) and not cache.has_blob(old)
    assert not cache.blob_path(old).exists()


def test_gc_gives_the_space_of_dropped_blobs_back(cache: LocalCache, tmp_path: Path) -> None:
    records = [saved_record(cache, tmp_path, os.urandom(50_000)) for _ in range(40)]
    cache.close()  # the last connection's checkpoint: index.db holds every page
    full = os.path.getsize(cache.path / "index.db")
    assert full > 40 * 50_000
    report = _collect(cache, {records[0].key}, max_age=None, max_size=0)
    assert report["removed_entries"] == 39 and report["entries"] == 1
    assert os.path.getsize(cache.path / "index.db") < full / 10
    assert cache.read_action(records[0].key) == records[0]
    assert cache.has_blob(records[0].outputs["out/a.txt"].digest)


def test_the_layout_before_index_db_is_ignored_and_collected(cache: LocalCache,
                                                             tmp_path: Path) -> None:
    record = ActionRecord(hash_bytes("old"), "t", {"out/a": Entry(FILE, hash_bytes("x"))})
    legacy = cache.path / action_rel(record.key)
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(record.dumps())
    old_blob = cache.path / blob_rel(hash_bytes(b"x"))  # a small blob file: still good
    old_blob.parent.mkdir(parents=True)
    old_blob.write_bytes(b"x")
    assert cache.read_action(record.key) is None and cache.keys() == []
    assert cache.read_blob(hash_bytes(b"x")) == b"x"
    cache.place_file(hash_bytes(b"x"), str(tmp_path / "x"), executable=False)
    assert (tmp_path / "x").read_bytes() == b"x"
    saved_record(cache, tmp_path)  # the database is made beside the old files
    _collect(cache, set(), max_age=None, max_size=None)
    assert not legacy.exists() and old_blob.exists()  # a young orphan, kept for now


V1_SCHEMA = """
CREATE TABLE actions (key TEXT PRIMARY KEY, used REAL NOT NULL, record BLOB NOT NULL)
    WITHOUT ROWID;
CREATE TABLE blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL, added REAL NOT NULL,
    data BLOB NOT NULL) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


def test_an_index_of_version_1_keeps_its_entries_in_the_new_layout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # version 1 kept rows in WITHOUT ROWID tables (a random big page written per save)
    record = ActionRecord(hash_bytes("k"), "t", {"out/a.txt": Entry(FILE, hash_bytes(b"x"))},
                          log="built t\n")
    (tmp_path / "cache").mkdir()
    old = sqlite3.connect(tmp_path / "cache" / "index.db")
    old.executescript(V1_SCHEMA)
    old.execute("INSERT INTO actions VALUES (?, ?, ?)", (record.key, 5.0, record.dumps()))
    old.execute("INSERT INTO blobs VALUES (?, 1, 5.0, ?)", (hash_bytes(b"x"), b"x"))
    old.commit()
    old.close()
    cache = LocalCache(tmp_path / "cache")
    try:
        assert cache.read_action(record.key) == record
        assert cache.read_blob(hash_bytes(b"x")) == b"x"
        saved = saved_record(cache, tmp_path)  # and it takes new entries
        assert cache.read_action(saved.key) == saved
    finally:
        cache.close()
    said = capsys.readouterr().err.splitlines()
    assert said == [f"flowmake: moving the artifact cache's index to its new layout (once): "
                    f"{tmp_path / 'cache' / 'index.db'}"]
    again = LocalCache(tmp_path / "cache")
    assert again.read_action(record.key) == record
    again.close()
    assert capsys.readouterr().err == ""  # once
    with contextlib.closing(sqlite3.connect(tmp_path / "cache" / "index.db")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == cache_index.INDEX_VERSION
        sql = " ".join(r[0] for r in db.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
        assert "WITHOUT ROWID" not in sql and "_v1" not in sql
        assert db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 2


@pytest.mark.parametrize(("text", "size"), [("1024", 1024), ("2K", 2048), ("1.5m", 1572864),
                                            ("2G", 2 << 30), ("3GiB", 3 << 30), ("10 MB", 10 << 20)])
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "-1G", "2X"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


# -- URL paths ---------------------------------------------------------------------------------


def test_url_fingerprints_come_from_metadata_and_are_memoized(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    url = f"memory://fm-{uuid.uuid4().hex}/data.json"
    hasher = Hasher(str(tmp_path), urls=Urls.default(str(tmp_path)))
    assert hasher.digest(url) is None
    fs.pipe(url, b'{"a": 1}')
    hasher.forget([url])
    first = hasher.digest(url)
    assert first is not None
    time.sleep(0.01)
    fs.pipe(url, b'{"a": 2, "b": 3}')
    assert hasher.digest(url) == first  # memoized for the command
    hasher.forget([url])
    assert hasher.digest(url) != first
    assert hasher.glob(url.rsplit("/", 1)[0] + "/*.json") == [url]


def test_a_folder_url_changes_when_an_object_under_it_changes(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    base = f"memory://fm-{uuid.uuid4().hex}/parts"
    fs.pipe(f"{base}/a", b"1")
    urls = Urls.default(str(tmp_path))
    before = urls.fingerprint(base)
    fs.pipe(f"{base}/b", b"2")
    assert urls.fingerprint(base) != before


def test_a_url_output_not_written_fails_the_target(tmp_path: Path) -> None:
    url = f"memory://fm-{uuid.uuid4().hex}/never.json"
    target = Target("t", Shell("true"), outputs=(Output(url),))
    hasher = Hasher(str(tmp_path), urls=Urls.default(str(tmp_path)))
    result = digest_url_outputs(hasher, target, JobResult("t", True, "", 0.1))
    assert not result.ok and result.error == f"declared output not produced: {url}"


def test_a_record_is_stored_whole_in_the_index(cache: LocalCache, tmp_path: Path) -> None:
    record = saved_record(cache, tmp_path)
    with index(cache) as db:
        (data, used), = db.execute("SELECT record, used FROM actions WHERE key = ?",
                                   (record.key,)).fetchall()
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert data == record.dumps()
    assert json.loads(data)["outputs"]["out/a.txt"]["kind"] == "file"
    assert time.time() - 60 < used <= time.time()
    age_record(cache, record.key, 5)
    cache.touch(record.key)  # written in a batch, at the latest when the cache is closed
    assert [a.used < time.time() - 86400 for a in cache.actions()] == [True]
    cache.close()
    assert [a.used > time.time() - 60 for a in cache.actions()] == [True]
    assert files_in(cache.path) == ["index.db", "index.db-shm", "index.db-wal"]


def test_threads_share_one_cache(cache: LocalCache, tmp_path: Path) -> None:
    contents = [f"content {i}\n".encode() * (1 + i % 3) for i in range(200)]
    contents += [os.urandom(INLINE_BLOB + i) for i in range(4)]
    errors: list[BaseException] = []

    def save(part: list[bytes]) -> None:
        try:
            for content in part:
                saved_record(cache, tmp_path, content)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(contents[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache.keys()) == len(contents)
    for content in contents:
        record = cache.read_action(hash_bytes(content + b"key"))
        assert record is not None
        assert cache.read_blob(record.outputs["out/a.txt"].digest) == content


def test_a_close_in_the_background_still_checkpoints_before_the_process_ends(
        tmp_path: Path) -> None:
    """``close(wait=False)`` (a build's) returns before SQLite's own close; the process
    still ends only once it is done: the log is copied into index.db and removed, and the
    rows are there for the next process. A real process, which exits right after."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from flowmake.cache.local import LocalCache\n"
        "from tests.unit.test_cache import saved_record\n"
        "root = Path(sys.argv[1])\n"
        "cache = LocalCache(root / 'cache')\n"
        "records = [saved_record(cache, root, bytes([i]) * 100) for i in range(50)]\n"
        "cache.close(wait=False)\n"
        "print(' '.join(r.key for r in records))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).parents[2])
    keys = done.stdout.split()
    assert len(keys) == 50
    assert not (tmp_path / "cache" / "index.db-wal").exists()  # checkpointed, then removed
    again = LocalCache(tmp_path / "cache")
    try:
        assert all(again.read_action(key) is not None for key in keys)
    finally:
        again.close()


def test_a_close_in_the_background_lets_the_cache_be_used_again_at_once(
        cache: LocalCache, tmp_path: Path) -> None:
    first = saved_record(cache, tmp_path, b"first\n")
    cache.close(wait=False)
    second = saved_record(cache, tmp_path, b"second\n")  # a new connection, meanwhile
    assert cache.read_action(first.key) == first and cache.read_action(second.key) == second
    for thread in threading.enumerate():
        if thread.name == "flowmake-cache-close":
            thread.join()
    cache.close()
    assert not (cache.path / "index.db-wal").exists()


# A new cache opened by several processes at once (two builds sharing a cache folder):
# the one that switches the file to WAL while another does answers "locked" at once,
# whatever the busy timeout. Each worker (a fresh interpreter: a fork of this threaded
# process could hang on a lock another thread held) opens the index it is sent at the
# instant it is sent, and says how it went.
OPENER = """
import sys, time
from pathlib import Path
from flowmake.cache.index import _open_index
for line in sys.stdin:
    path, start = line.rstrip("\\n").split("\\t")
    while time.time() < float(start):
        pass
    try:
        _open_index(Path(path)).close()
        print("ok", flush=True)
    except BaseException as exc:
        print(repr(exc), flush=True)
"""


@pytest.mark.slow
def test_a_new_index_opened_by_several_processes_at_once_opens_in_each(tmp_path: Path) -> None:
    import subprocess
    import sys

    workers = [subprocess.Popen([sys.executable, "-c", OPENER], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for _ in range(6)]
    answers: list[str] = []
    try:
        for trial in range(150):  # without the retry, ~0.3-0.6% of the opens failed here
            path = tmp_path / str(trial) / cache_index.INDEX
            path.parent.mkdir()
            start = time.time() + 0.02
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"{path}\t{start}\n")
                worker.stdin.flush()
            for worker in workers:
                assert worker.stdout is not None
                answers.append(worker.stdout.readline().strip())
            assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.close()
            worker.wait(60)
    assert [a for a in answers if a != "ok"] == []
    assert len(answers) == 900
