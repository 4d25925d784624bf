"""flowmake/warm.py on real files: a kept object answers only for the very file it was
decoded from (replaced by rename, rewritten in place with the mtime put back, removed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowmake import warm

decoded: list[bytes] = []


@pytest.fixture(autouse=True)
def loader() -> Iterator[None]:
    decoded.clear()
    warm.LOADERS["test"] = lambda data: (decoded.append(data), [data])[1]
    warm._kept.clear()
    warm.read_here.clear()
    yield
    warm.LOADERS.pop("test")
    warm._kept.clear()
    warm.read_here.clear()


def test_without_a_kept_object_the_file_is_read_and_noted(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    assert warm.read(str(path), "test") == [b"one"]
    assert warm.read_here == [(str(path), "test")]


def test_a_kept_object_answers_for_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    warm.keep(str(path), "test")
    kept = warm.read(str(path), "test")
    assert kept == [b"one"] and decoded == [b"one"]  # decoded once, by keep
    assert warm.read(str(path), "test") is kept
    assert warm.read_here == []


def test_a_file_replaced_by_rename_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    warm.keep(str(path), "test")
    new = tmp_path / "f.new"
    new.write_bytes(b"two")
    st = path.stat()
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    os.replace(new, path)
    assert warm.read(str(path), "test") == [b"two"]


def test_a_file_rewritten_in_place_with_its_mtime_put_back_is_read_again(tmp_path: Path
                                                                          ) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    st = path.stat()
    warm.keep(str(path), "test")
    path.write_bytes(b"two")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the ctime still moves
    assert warm.read(str(path), "test") == [b"two"]


def test_a_removed_file_raises_as_open_does_and_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    warm.keep(str(path), "test")
    path.unlink()
    with pytest.raises(FileNotFoundError):
        warm.read(str(path), "test")
    warm.keep(str(path), "test")
    assert str(path) not in warm._kept


def test_keep_decodes_again_only_when_the_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    warm.keep(str(path), "test")
    warm.keep(str(path), "test")
    assert decoded == [b"one"]


def test_only_the_latest_files_are_kept(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i}" for i in range(warm.KEEP + 2)]
    for p in paths:
        p.write_bytes(p.name.encode())
        warm.keep(str(p), "test")
    assert list(warm._kept) == [str(p) for p in paths[-warm.KEEP:]]


def test_a_loader_error_leaves_nothing_kept(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one")
    warm.LOADERS["test"] = lambda data: 1 / 0
    warm.keep(str(path), "test")
    assert str(path) not in warm._kept


def test_each_kind_keeps_its_own_latest_files(tmp_path: Path) -> None:
    warm.LOADERS["other"] = lambda data: data
    try:
        others = [tmp_path / f"o{i}" for i in range(2)]
        for p in others:
            p.write_bytes(b"o")
            warm.keep(str(p), "other")
        paths = [tmp_path / f"f{i}" for i in range(warm.KEEP + 1)]
        for p in paths:
            p.write_bytes(p.name.encode())
            warm.keep(str(p), "test")
        assert list(warm._kept) == [str(p) for p in others + paths[1:]]
    finally:
        warm.LOADERS.pop("other")


def test_a_kept_object_answers_only_for_its_kind(tmp_path: Path) -> None:
    warm.LOADERS["other"] = lambda data: ("other", data)
    try:
        path = tmp_path / "f"
        path.write_bytes(b"one")
        warm.keep(str(path), "test")
        assert warm.read(str(path), "other") == ("other", b"one")
    finally:
        warm.LOADERS.pop("other")


def test_what_the_server_prepares_is_kept_and_a_plain_read_is_not_prepared(tmp_path: Path
                                                                            ) -> None:
    warm.PREPARE["test"] = lambda value: [*value, b"prepared"]
    try:
        path = tmp_path / "f"
        path.write_bytes(b"one")
        assert warm.read(str(path), "test") == [b"one"]
        warm.keep(str(path), "test")
        st, value = warm.read_stat(str(path), "test")
        assert value == [b"one", b"prepared"] and st.st_ino == path.stat().st_ino
    finally:
        warm.PREPARE.pop("test")
