"""flowmake.digest: the uncached hashing primitives give the values records depend on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash

from flowmake.digest import (
    _CHUNK,
    _WINDOW,
    _hash_chunks,
    digest_output,
    digest_path,
    folder_digest,
    hash_file,
)
from flowmake.errors import FlowmakeError
from flowmake.plan.fingerprint import Hasher


def pattern(size: int) -> bytes:
    """Bytes that differ at every offset mod 251, so a dropped or doubled chunk shows."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


@pytest.mark.parametrize("size", [0, 1, _CHUNK - 1, _CHUNK, _CHUNK + 1, 3 * _CHUNK + 17,
                                  _WINDOW, _WINDOW + 5, 2 * _WINDOW + _CHUNK])
def test_hash_file_is_xxh3_128_of_the_content(tmp_path: Path, size: int) -> None:
    data = pattern(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert hash_file(str(path)) == xxhash.xxh3_128_hexdigest(data)


def test_the_read_loop_gives_the_mapped_digest(tmp_path: Path) -> None:
    """Where a file cannot be mapped, 1 MiB reads give the same value."""
    data = pattern(3 * _CHUNK + 5)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with open(path, "rb", buffering=0) as f:
        assert _hash_chunks(f) == hash_file(str(path)) == xxhash.xxh3_128_hexdigest(data)


def test_a_file_cut_short_while_hashed_is_read_from_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The windows are mapped only while the file still holds them (a mapped page past
    the end would be a SIGBUS): truncated after its size was taken, the rest is read."""
    data = pattern(2 * _WINDOW + 100)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    real_fstat = os.fstat
    calls = []

    def fstat_then_cut(fd: int) -> os.stat_result:
        calls.append(fd)
        if len(calls) == 2:  # after the first window is hashed: another writer truncates
            os.truncate(path, _WINDOW + 10)
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", fstat_then_cut)  # only when the truncation happens
    got = hash_file(str(path))
    monkeypatch.undo()
    assert got == xxhash.xxh3_128_hexdigest(data[: _WINDOW + 10])


def test_the_digest_of_known_content_never_changes(tmp_path: Path) -> None:
    """Records, flow.lock and cache blob ids hold these values: pinned literally."""
    (tmp_path / "small").write_bytes(b"hello\n")
    (tmp_path / "big").write_bytes(pattern(5 * _CHUNK + 3))
    assert hash_file(str(tmp_path / "small")) == "6bba86c7e069f56d5a10b435f1c8e49c"
    assert hash_file(str(tmp_path / "big")) == "a2bcecece95bab6d3ef6dbc01520b74c"


def tricky_tree(root: Path) -> Path:
    """Nested folders, skipped .git/.flowmake, symlinks to a file, to a folder, dangling."""
    top = root / "d"
    for rel, content in [("a.txt", b"a"), ("sub/b.txt", b"b"), ("sub/deeper/c", b"c" * 3000),
                         (".git/HEAD", b"ref"), (".flowmake/state.db", b"x"),
                         ("sub/.git/x", b"y"), ("z/big.bin", pattern(_CHUNK + 9))]:
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_bytes(content)
    (top / "link-to-file").symlink_to("a.txt")
    (top / "link-to-dir").symlink_to("sub")
    (top / "dangling").symlink_to("nowhere")
    return top


def test_folder_digest_is_the_hashers(tmp_path: Path) -> None:
    top = tricky_tree(tmp_path)
    expected = Hasher(str(tmp_path)).digest("d")
    assert expected is not None and expected.startswith("d")
    assert folder_digest(str(top)) == expected
    assert digest_path(str(top)) == expected
    assert digest_output(str(top)) == (expected, None)
    assert Hasher(str(top)).digest(".") == expected


def test_folder_digest_changes_with_any_file_but_not_skipped_ones(tmp_path: Path) -> None:
    top = tricky_tree(tmp_path)
    before = folder_digest(str(top))
    (top / ".git/HEAD").write_bytes(b"other")
    assert folder_digest(str(top)) == before
    (top / "sub/deeper/c").write_bytes(b"C")
    assert folder_digest(str(top)) != before


def test_a_name_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    top = tmp_path / "d"
    top.mkdir()
    (top / os.fsdecode(b"bad\xff")).write_bytes(b"x")
    with pytest.raises(FlowmakeError, match=r"d/bad\\xff: the file name is not valid UTF-8"):
        folder_digest(str(top))
