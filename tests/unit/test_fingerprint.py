"""flowmake.plan.fingerprint: content digests behind the stat cache (incl. the racy case)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import xxhash

from flowmake.digest import digest_output, digest_path, hash_bytes, hash_file
from flowmake.plan.fingerprint import RACY_NS, Hasher

OLD_NS = 1_500_000_000 * 10**9  # 2017: far older than any "racy" window


def write(root: Path, rel: str, content: str | bytes, *, mtime_ns: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_hash_bytes_and_hash_file_agree(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    path = write(tmp_path, "big.bin", data)
    assert hash_file(str(path)) == xxhash.xxh3_128_hexdigest(data) == hash_bytes(data)
    assert hash_bytes("text") == hash_bytes(b"text")
    assert len(hash_bytes(b"")) == 32


def test_digest_of_files_and_missing_paths(tmp_path):
    write(tmp_path, "a.txt", "hello")
    write(tmp_path, "b.txt", "hello")
    write(tmp_path, "c.txt", "other")
    h = Hasher(str(tmp_path))
    assert h.digest("a.txt") == hash_bytes("hello")
    assert h.digest("a.txt") == h.digest("b.txt") != h.digest("c.txt")
    assert h.digest("missing.txt") is None
    assert h.digest("a.txt/inside") is None  # a file used as a folder: missing, not a crash


def test_memo_reads_each_file_once(tmp_path):
    write(tmp_path, "a.txt", "x")
    h = Hasher(str(tmp_path))
    for _ in range(3):
        h.digest("a.txt")
    assert h.hashed_files == 1


def test_stat_unchanged_old_entry_is_not_reread(tmp_path):
    write(tmp_path, "a.txt", "content", mtime_ns=OLD_NS)
    first = Hasher(str(tmp_path))
    digest = first.digest("a.txt")
    assert first.hashed_files == 1
    entry = first.cache["a.txt"]
    assert first.dirty["a.txt"] == entry
    assert entry[4] == digest and entry[1] == OLD_NS
    assert entry[1] < entry[3] - RACY_NS  # hashed long after the last write: trusted

    second = Hasher(str(tmp_path), dict(first.cache))
    assert second.digest("a.txt") == digest
    assert second.hashed_files == 0
    assert second.dirty == {}


def test_trusted_entry_is_used_without_reading_the_file(tmp_path):
    path = write(tmp_path, "a.txt", "content", mtime_ns=OLD_NS)
    st = os.stat(path)
    planted = "f" * 32  # not the real digest: proves the file was not read
    cache = {"a.txt": (st.st_size, st.st_mtime_ns, st.st_ino, OLD_NS + 10 * RACY_NS, planted)}
    h = Hasher(str(tmp_path), cache)
    assert h.digest("a.txt") == planted
    assert h.hashed_files == 0


@pytest.mark.parametrize("field", ["size", "mtime", "inode"])
def test_any_stat_difference_rehashes(tmp_path, field):
    path = write(tmp_path, "a.txt", "content", mtime_ns=OLD_NS)
    st = os.stat(path)
    entry = [st.st_size, st.st_mtime_ns, st.st_ino, OLD_NS + 10 * RACY_NS, "f" * 32]
    entry[{"size": 0, "mtime": 1, "inode": 2}[field]] += 1
    h = Hasher(str(tmp_path), {"a.txt": tuple(entry)})
    assert h.digest("a.txt") == hash_bytes("content")
    assert h.hashed_files == 1
    assert h.dirty["a.txt"][4] == hash_bytes("content")


def test_racy_entry_is_rehashed(tmp_path):
    path = write(tmp_path, "a.txt", "content")  # mtime is now
    st = os.stat(path)
    # Hashed within RACY_NS of the file's mtime: a same-tick write could hide.
    cache = {"a.txt": (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mtime_ns + RACY_NS // 2,
                       "f" * 32)}
    h = Hasher(str(tmp_path), cache)
    assert h.digest("a.txt") == hash_bytes("content")
    assert h.hashed_files == 1


def test_fresh_file_stays_racy_across_hashers(tmp_path):
    write(tmp_path, "a.txt", "content")
    first = Hasher(str(tmp_path))
    first.digest("a.txt")
    second = Hasher(str(tmp_path), dict(first.cache))
    second.digest("a.txt")
    assert second.hashed_files == 1  # just written: not trusted yet


def test_same_size_same_mtime_change_is_detected_when_racy(tmp_path):
    mtime = time.time_ns()
    path = write(tmp_path, "a.txt", "aaaa", mtime_ns=mtime)
    first = Hasher(str(tmp_path))
    before = first.digest("a.txt")
    inode = os.stat(path).st_ino
    # Rewrite in place: same size, same inode, mtime forced back to the same value.
    with open(path, "r+b") as f:
        f.write(b"bbbb")
    os.utime(path, ns=(mtime, mtime))
    st = os.stat(path)
    assert (st.st_size, st.st_mtime_ns, st.st_ino) == first.cache["a.txt"][:3]
    assert st.st_ino == inode

    second = Hasher(str(tmp_path), dict(first.cache))
    after = second.digest("a.txt")
    assert after == hash_bytes("bbbb") != before
    assert second.hashed_files == 1


def test_folder_digest_tracks_content_names_and_additions(tmp_path):
    write(tmp_path, "d/a.txt", "a")
    write(tmp_path, "d/sub/b.txt", "b")

    def digest() -> str:
        return Hasher(str(tmp_path)).digest("d")

    base = digest()
    assert base.startswith("d")
    assert base == digest()  # deterministic

    write(tmp_path, "d/sub/b.txt", "B")
    changed = digest()
    assert changed != base

    write(tmp_path, "d/sub/b.txt", "b")
    assert digest() == base  # content, not mtime

    write(tmp_path, "d/new.txt", "")
    added = digest()
    assert added != base

    (tmp_path / "d/new.txt").rename(tmp_path / "d/renamed.txt")
    assert digest() not in {base, added}

    (tmp_path / "d/renamed.txt").unlink()
    assert digest() == base


def test_folder_digest_depends_on_relative_paths_only(tmp_path):
    write(tmp_path, "one/x/f.txt", "same")
    write(tmp_path, "two/x/f.txt", "same")
    h = Hasher(str(tmp_path))
    assert h.digest("one") == h.digest("two")
    # A file's digest is never mistaken for a folder's.
    write(tmp_path, "file", "same")
    assert h.digest("file") != h.digest("one")


def test_folder_walk_skips_state_and_git(tmp_path):
    write(tmp_path, "src/a.py", "a")
    h = Hasher(str(tmp_path))
    before = h.digest(".")
    write(tmp_path, ".flowmake/state.db", "db")
    write(tmp_path, ".git/HEAD", "ref")
    write(tmp_path, "src/.git/x", "nested")
    assert Hasher(str(tmp_path)).digest(".") == before
    assert Hasher(str(tmp_path)).walk(".") == ["src/a.py"]


def test_empty_folders_and_sorted_walk(tmp_path):
    write(tmp_path, "d/b.txt", "")
    write(tmp_path, "d/a/z.txt", "")
    write(tmp_path, "d/c/y.txt", "")
    (tmp_path / "e").mkdir()
    h = Hasher(str(tmp_path))
    assert h.walk("d") == ["a/z.txt", "b.txt", "c/y.txt"]
    assert h.digest("e").startswith("d")


def test_forget_drops_memo_of_folder_and_its_files(tmp_path):
    write(tmp_path, "out/a.txt", "1")
    write(tmp_path, "other.txt", "o")
    h = Hasher(str(tmp_path))
    first = h.digest("out")
    h.digest("other.txt")
    write(tmp_path, "out/a.txt", "2")
    assert h.digest("out") == first  # memoized within one Hasher
    h.forget(["out"])
    assert "out/a.txt" not in h.memo and "other.txt" in h.memo
    assert h.digest("out") != first


def test_learn_takes_a_digest_from_elsewhere(tmp_path):
    path = write(tmp_path, "o.txt", "payload")
    found = digest_output(str(path))
    assert found is not None
    digest, entry = found
    assert entry is not None and digest == entry[4] == hash_bytes("payload")
    h = Hasher(str(tmp_path))
    h.learn("o.txt", entry)
    assert h.digest("o.txt") == hash_bytes("payload")
    assert h.hashed_files == 0
    assert h.dirty == {"o.txt": entry}


def test_digest_output_and_digest_path(tmp_path):
    write(tmp_path, "d/f.txt", "x")
    assert digest_output(str(tmp_path / "d")) == (Hasher(str(tmp_path)).digest("d"), None)
    assert digest_output(str(tmp_path / "missing")) is None
    assert digest_path(str(tmp_path / "d/f.txt")) == hash_bytes("x")
    assert digest_path(str(tmp_path / "d")) == Hasher(str(tmp_path)).digest("d")
    assert digest_path(str(tmp_path / "missing")) is None


def test_glob(tmp_path):
    for rel in ["src/a.py", "src/pkg/b.py", "src/pkg/deep/c.py", "src/notes.txt", "top.py",
                ".flowmake/x.py"]:
        write(tmp_path, rel, rel)
    (tmp_path / "src/dir.py").mkdir()  # folders are never matched
    h = Hasher(str(tmp_path))
    assert h.glob("src/*.py") == ["src/a.py"]
    assert h.glob("src/**/*.py") == ["src/a.py", "src/pkg/b.py", "src/pkg/deep/c.py"]
    assert h.glob("**/*.py") == ["src/a.py", "src/pkg/b.py", "src/pkg/deep/c.py", "top.py"]
    assert h.glob("src/?otes.txt") == ["src/notes.txt"]
    assert h.glob("nothing/*.py") == []
