"""The stat check's helpers forked before a command (``fastpath.stand_by``, as a resident
spare forks them): on real files and processes, they find every change in their part,
serve only the very objects they hold, and leave no process behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowmake import fastpath, warm

COUNT = 40


@pytest.fixture
def kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[str], bytes]]:
    """A snapshot of COUNT files kept as a resident server keeps one (warm.py), with its
    paths split as the server splits them; helpers are dismissed after the test."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("a helper is forked for a second CPU only")  # never on CI's 2 cores
    monkeypatch.setattr(fastpath, "PARALLEL_MIN", 8)  # shared from 8 paths on
    paths = []
    for i in range(COUNT):
        path = tmp_path / f"f{i}.txt"
        path.write_text(f"content {i}\n")
        paths.append(str(path))
    stats = fastpath._stats(paths)
    saved = (fastpath.FORMAT, None, (), (), fastpath.SEP.join(paths), stats,
             "", 0, 0, "", "", "", "", None)
    monkeypatch.setitem(warm._kept, str(tmp_path / "noop.marshal"),
                        ((0, 0, 0, 0, 0), fastpath.SNAPSHOT, (saved, {4: paths})))
    monkeypatch.setattr(fastpath, "_held", {})
    try:
        yield paths, stats
    finally:
        fastpath.dismiss()
        fastpath.reap_exiting()


def helpers() -> list[int]:
    return [pid for pid, _, _ in fastpath._standing]


def alive(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


@pytest.mark.parametrize("which", [[], [0], [COUNT - 1], [3, COUNT // 2, COUNT - 2]])
def test_a_standing_helper_checks_its_part_of_the_kept_paths(
        kept: tuple[list[str], bytes], which: list[int], capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    paths, stats = kept
    fastpath.stand_by()
    standing = helpers()
    assert len(standing) == min(len(os.sched_getaffinity(0)), fastpath.MAX_PROCESSES) - 1
    for i in which:
        st = os.stat(paths[i])
        os.utime(paths[i], ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # 1 ns later
    monkeypatch.setenv("FLOWMAKE_TRACE", "resident")
    assert fastpath.changed(paths, stats) == which
    assert "shared with" in capfd.readouterr().err  # answered by them, not by new forks
    assert fastpath._standing == []  # each serves one check
    fastpath.reap_exiting()
    assert not any(alive(pid) for pid in standing)


def test_another_list_of_the_same_paths_is_not_theirs(kept: tuple[list[str], bytes]) -> None:
    """A helper serves only the objects it was forked with (their ids, checked against
    the objects this process holds alive): another list is checked by forks made now."""
    paths, stats = kept
    fastpath.stand_by()
    copy = list(paths)
    os.utime(copy[-1], ns=(0, 1))
    assert fastpath.changed(copy, bytes(bytearray(stats))) == [COUNT - 1]
    assert len(fastpath._standing) == len(helpers()) > 0  # still waiting, unused


def test_a_killed_helper_counts_its_part_as_changed(kept: tuple[list[str], bytes]) -> None:
    paths, stats = kept
    fastpath.stand_by()
    for pid in helpers():
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    found = fastpath.changed(paths, stats)
    assert found is not None and -1 in found  # "some change not located": the full way


def test_helpers_no_check_used_are_ended_and_reaped(kept: tuple[list[str], bytes]) -> None:
    fastpath.stand_by()
    standing = helpers()
    assert standing
    fastpath.dismiss()
    assert fastpath._standing == []
    assert not any(alive(pid) for pid in standing)


def test_no_helper_for_a_short_snapshot(kept: tuple[list[str], bytes],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath, "PARALLEL_MIN", COUNT + 1)
    fastpath.stand_by()
    assert fastpath._standing == []
