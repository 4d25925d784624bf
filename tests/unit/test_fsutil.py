"""fsutil's atomic write from pieces, and the second name that keeps a replaced file's
blocks for later (real files)."""

from __future__ import annotations

import os

from flowmake.fsutil import _IOV_MAX, atomic_write, keep_blocks


def test_pieces_are_written_one_after_another_as_one_file(tmp_path):
    target = tmp_path / "f.txt"
    data = b"".join(b"%05d\n" % i for i in range(3 * _IOV_MAX))
    view = memoryview(data)
    pieces = [view[i:i + 6] for i in range(0, len(data), 6)] + [b"", bytearray(b"end")]
    assert len(pieces) > 2 * _IOV_MAX  # more than one writev takes
    written = atomic_write(target, pieces)
    assert target.read_bytes() == data + b"end"
    now = target.stat()
    assert (written.st_ino, written.st_size) == (now.st_ino, now.st_size)
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary file left


def test_a_file_kept_aside_holds_the_old_bytes_and_the_path_the_new(tmp_path):
    target, aside = tmp_path / "flow.lock", tmp_path / "old"
    assert not keep_blocks(str(target), str(aside))  # nothing to keep yet
    target.write_bytes(b"old\n")
    aside.write_bytes(b"a stale one, left by a process killed before removing it\n")
    assert keep_blocks(str(target), str(aside))
    atomic_write(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert aside.read_bytes() == b"old\n"
    assert target.stat().st_nlink == 1 and aside.stat().st_nlink == 1


def test_no_second_name_where_no_link_can_be_made(tmp_path):
    target = tmp_path / "flow.lock"
    target.write_bytes(b"x\n")
    assert not keep_blocks(str(target), str(tmp_path / "no-such-folder" / "old"))
    assert target.read_bytes() == b"x\n"


def test_no_second_name_where_the_old_one_cannot_be_removed(tmp_path):
    """A name taken by a folder (or in a read-only folder): False, and the write goes on."""
    target, aside = tmp_path / "flow.lock", tmp_path / "old"
    target.write_bytes(b"x\n")
    aside.mkdir()
    assert not keep_blocks(str(target), str(aside))
    atomic_write(target, b"y\n")
    assert target.read_bytes() == b"y\n" and aside.is_dir()
