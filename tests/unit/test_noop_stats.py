"""The no-op fast path's stat check, serial and shared among forked processes, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowmake import fastpath


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(fastpath, "PARALLEL_MIN", 4)  # forks from 4 paths on (if 2+ CPUs)
    paths = []
    for i in range(12):
        path = tmp_path / f"f{i}.txt"
        path.write_text(f"content {i}\n")
        paths.append(str(path))
    return paths


def test_unchanged_files_pass(files: list[str]) -> None:
    assert fastpath.changed(files, fastpath._stats(files)) == []


@pytest.mark.parametrize("which", [0, 5, 11])  # the caller's part, and the children's
def test_a_modified_file_is_seen_in_any_part(files: list[str], which: int) -> None:
    saved = fastpath._stats(files)
    st = os.stat(files[which])
    os.utime(files[which], ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size, 1 ns later
    assert fastpath.changed(files, saved) == [which]


@pytest.mark.parametrize("which", [1, 10])
def test_a_missing_file_is_seen_in_any_part(files: list[str], which: int) -> None:
    saved = fastpath._stats(files)
    os.unlink(files[which])
    assert fastpath.changed(files, saved) == [which]


@pytest.mark.parametrize("run", [1, 4, 5, 64])  # entries compared together (fastpath._RUN)
@pytest.mark.parametrize("which", [[], [0], [3, 4], [4, 7, 11], [11], list(range(12))])
def test_changed_names_exactly_the_paths_that_differ(files: list[str], which: list[int],
                                                     run: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpath, "_RUN", run)
    saved = fastpath._stats(files)
    for i in which:
        st = os.stat(files[i])
        os.utime(files[i], ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert fastpath.changed(files, saved) == which  # in order, each part's own offsets
    if 7 in which:
        os.unlink(files[7])  # missing: differs too
        assert fastpath.changed(files, saved) == which


def test_a_save_of_another_length_never_matches(files: list[str]) -> None:
    assert fastpath.changed(files, fastpath._stats(files[:-1])) is None
    assert fastpath.changed(files[:-1], fastpath._stats(files)) is None


def test_a_helper_whose_answer_is_cut_short_counts_as_a_change(
        files: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper's answer ends with a marker: without it (killed mid-write, or failed), the
    part it checked counts as changed, though no file did."""
    saved = fastpath._stats(files)
    write_all = fastpath._write_all
    monkeypatch.setattr(fastpath, "_write_all", lambda fd, data: write_all(fd, data[:-4]))
    if fastpath.changed(files, saved) is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: no helper is forked")
    assert fastpath.changed(files, saved) == [-1]
    fastpath.reap_exiting()


def test_helpers_that_answered_are_reaped_later(
        files: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The check does not wait for its helpers' exits; ``reap_exiting`` (at the command's
    end) waits for every one, so none is left a zombie."""
    forked: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    saved = fastpath._stats(files)
    for _ in range(5):
        assert fastpath.changed(files, saved) == []
    if not forked:
        pytest.skip("one CPU: no helper is forked")
    fastpath.reap_exiting()
    assert fastpath._exiting == []
    for pid in forked:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped already
