"""The artifact cache in process: records, blobs, copies, verification, remotes, gc.

Real files under tmp_path, a real folder remote and fsspec's real ``memory://``
filesystem as an object store.
"""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from pathlib import Path

import pytest

from flowmake.builtin.backends import FsspecBackend
from flowmake.cache import (
    DIR,
    FILE,
    ActionRecord,
    Entry,
    LocalCache,
    Mismatch,
    action_rel,
    blob_rel,
    copy_file,
    manifest_bytes,
    parse_manifest,
)
from flowmake.cache_cli import _collect, parse_size
from flowmake.errors import UsageError
from flowmake.executor import JobResult
from flowmake.fingerprint import Hasher, hash_bytes, hash_file
from flowmake.model import Output, Shell, Target
from flowmake.remote import SMALL_BLOB, BackendRemote, FolderRemote, Transfers, open_remote
from flowmake.urls import Urls, digest_url_outputs


def blob(cache: LocalCache, tmp_path: Path, content: bytes) -> str:
    """Put ``content`` in the cache as a blob; its digest."""
    src = tmp_path / f"src-{uuid.uuid4().hex}"
    src.write_bytes(content)
    digest = hash_file(str(src))
    cache.add_file(str(src), digest)
    return digest


@pytest.fixture
def cache(tmp_path: Path) -> LocalCache:
    return LocalCache(tmp_path / "cache")


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


def test_restored_file_is_an_independent_copy(cache: LocalCache, tmp_path: Path) -> None:
    digest = blob(cache, tmp_path, b"precious\n")
    dest = tmp_path / "out" / "a.txt"
    cache.place_file(digest, str(dest), executable=False)
    assert dest.read_bytes() == b"precious\n"
    blob_file = cache.blob_path(digest)
    assert os.stat(dest).st_ino != os.stat(blob_file).st_ino
    assert os.stat(dest).st_nlink == 1
    dest.write_bytes(b"edited by the user\n")  # in place, as an editor might
    assert blob_file.read_bytes() == b"precious\n"
    assert stat.S_IMODE(os.stat(blob_file).st_mode) == 0o444  # blobs are read-only


def test_restore_replaces_the_old_file_atomically_and_keeps_exec_bit(
        cache: LocalCache, tmp_path: Path) -> None:
    digest = blob(cache, tmp_path, b"#!/bin/sh\necho hi\n")
    dest = tmp_path / "run.sh"
    dest.write_text("old")
    cache.place_file(digest, str(dest), executable=True)
    assert dest.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.stat(dest).st_mode & stat.S_IXUSR
    assert [p.name for p in tmp_path.iterdir() if "flowmake" in p.name] == []  # no temp left


def test_a_damaged_local_blob_is_detected_and_dropped(cache: LocalCache, tmp_path: Path) -> None:
    digest = blob(cache, tmp_path, b"good content\n")
    path = cache.blob_path(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"bad content!\n")
    dest = tmp_path / "out.txt"
    with pytest.raises(Mismatch):
        cache.place_file(digest, str(dest), executable=False)
    assert not dest.exists()
    assert not path.exists()


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
    assert list((cache.path / "tmp").iterdir()) == []


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
    assert second.blob_path(digest).read_bytes() == b"data\n"
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
    assert not second.has_blob(digest)
    assert len(warnings) == 1 and blob_rel(digest) in warnings[0]
    assert "does not match its digest" in warnings[0]
    # A writable remote loses the bad blob (the next push replaces it); read-only: untouched.
    assert remote.exists(blob_rel(digest)) is not writable


def test_a_record_under_the_wrong_key_is_ignored(tmp_path: Path) -> None:
    remote = FolderRemote(tmp_path / "remote")
    record = saved_record(LocalCache(tmp_path / "c1"), tmp_path)
    other = hash_bytes("another key")
    remote.put_bytes(action_rel(other), record.dumps())
    remote.put_bytes(action_rel(hash_bytes("junk")), b"{not json")
    warnings: list[str] = []
    transfers = Transfers(LocalCache(tmp_path / "c2"), remote, warnings.append, writable=False)
    assert transfers.fetch_record(other) is None
    assert transfers.fetch_record(hash_bytes("junk")) is None
    assert "rejected" in warnings[0]


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


def test_gc_by_age_keeps_the_current_records(cache: LocalCache, tmp_path: Path) -> None:
    old = saved_record(cache, tmp_path, b"old\n")
    current = saved_record(cache, tmp_path, b"current\n")
    for record in (old, current):
        age(cache.action_path(record.key), 10)
    report = _collect(cache, {current.key}, max_age=5, max_size=None)
    assert report["removed_entries"] == 1 and report["removed_blobs"] == 1
    assert cache.read_action(old.key) is None
    assert not cache.has_blob(old.outputs["out/a.txt"].digest)
    assert cache.read_action(current.key) == current
    assert cache.has_blob(current.outputs["out/a.txt"].digest)


def test_gc_by_size_drops_least_recently_used_first(cache: LocalCache, tmp_path: Path) -> None:
    records = [saved_record(cache, tmp_path, bytes([65 + i]) * 4000) for i in range(3)]
    for days, record in zip((3, 1, 2), records, strict=True):
        age(cache.action_path(record.key), days)
    _, _, size = cache.usage()
    report = _collect(cache, set(), max_age=None, max_size=size - 1000)
    assert report["removed_entries"] == 1
    assert cache.read_action(records[0].key) is None  # the least recently used
    assert cache.read_action(records[1].key) is not None
    assert report["size"] <= size - 1000
    assert _collect(cache, {records[2].key}, max_age=None, max_size=0)["entries"] == 1


def test_gc_removes_old_orphans_but_not_young_ones(cache: LocalCache, tmp_path: Path) -> None:
    young = blob(cache, tmp_path, b"being saved right now\n")
    old = blob(cache, tmp_path, b"left behind\n")
    age(cache.blob_path(old), 1)
    report = _collect(cache, set(), max_age=None, max_size=None)
    assert report["removed_blobs"] == 1
    assert cache.has_blob(young) and not cache.has_blob(old)


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
    hasher = Hasher(str(tmp_path))
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
    result = digest_url_outputs(Hasher(str(tmp_path)), target, JobResult("t", True, "", 0.1))
    assert not result.ok and result.error == f"declared output not produced: {url}"


def test_record_json_is_whole_on_disk(cache: LocalCache, tmp_path: Path) -> None:
    record = saved_record(cache, tmp_path)
    doc = json.loads(cache.action_path(record.key).read_text())
    assert doc["outputs"]["out/a.txt"]["kind"] == "file"
    assert list((cache.path / "tmp").iterdir()) == []
