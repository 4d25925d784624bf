"""Files read ahead into the page cache (fsutil.prefetch), and which files a build reads
at random (store/paths.read_at_random). Residency is what the kernel says (util-linux's
``fincore``), on real files dropped from the cache first."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from flowmake import fsutil
from flowmake.store import paths

SIZE = 4 << 20


def resident(path: Path) -> int:
    done = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES",
                           str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.strip() or 0)


def out_of_cache(path: Path, size: int = SIZE) -> Path:
    with open(path, "wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())  # clean pages: the kernel may drop them
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return path


def prefetched(files: list[str]) -> None:
    fsutil.prefetch(files)
    for thread in threading.enumerate():
        if thread.name == "flowmake-prefetch":
            thread.join()


def settled(path: Path, want: int) -> int:
    """Residency once the reads the hints started are done (they run on after them)."""
    deadline = time.monotonic() + 10
    while (now := resident(path)) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    return now


def test_a_file_out_of_the_cache_is_read_in_by_the_hint(tmp_path: Path) -> None:
    small, big = out_of_cache(tmp_path / "state.db"), out_of_cache(tmp_path / "index.db",
                                                                    20 << 20)
    if resident(small) == SIZE:
        pytest.fail("the kernel kept the file cached after POSIX_FADV_DONTNEED")
    prefetched([str(small), str(tmp_path / "missing.db"), str(big)])  # a missing one: skipped
    assert settled(small, SIZE) == SIZE
    assert settled(big, 20 << 20) == 20 << 20  # past one hint's ~8 MB: hinted in parts


def test_a_file_over_the_limit_is_left_out(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsutil, "PREFETCH_MAX", SIZE - 1)
    large = out_of_cache(tmp_path / "large.db")
    prefetched([str(large)])
    time.sleep(0.3)
    assert resident(large) < SIZE // 2


def test_the_files_a_build_reads_at_random(tmp_path: Path) -> None:
    state = str(tmp_path / ".flowmake")
    names = [os.path.relpath(p, tmp_path) for p in paths.read_at_random(state)]
    assert names == [".flowmake/state.db", ".flowmake/lock.cache", ".flowmake/cache/index.db"]
    elsewhere = paths.read_at_random(state, "shared/cache", str(tmp_path))
    assert elsewhere[-1] == str(tmp_path / "shared" / "cache" / "index.db")
    absolute = paths.read_at_random(state, "/var/cache/fm", str(tmp_path))
    assert absolute[-1] == "/var/cache/fm/index.db"
    home = paths.read_at_random(state, "~/fm-cache", str(tmp_path))
    assert home[-1] == os.path.join(os.path.expanduser("~"), "fm-cache", "index.db")
    assert len(paths.read_at_random(state, None, str(tmp_path))) == 2  # cache = false
