"""A file edited while a build runs, after the build hashed it, is never saved in the no-op
snapshot as it is now (fastpath.Seen): its new content is in no key, so the next build
must see it. Before, the snapshot's stats were taken when the build ended, and a file
edited more than two seconds before that (the racy window) looked fresh to the next
no-op: flowmake said `fresh` with the output holding the old content. Real builds,
real files, an edit made from the test while the build's command sleeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_cone import age, run, write

FLOW = """
[flow]
cache = false

[targets.slow]
cmd = "cat src/s.txt > out/s.txt; sleep 4"
inputs = ["src/s.txt"]
outputs = ["out/s.txt"]

[targets.quick]
cmd = "cat src/q.txt > out/q.txt"
inputs = ["src/q.txt"]
outputs = ["out/q.txt"]

[targets.apart]
cmd = "cat src/a.txt > out/a.txt"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]
"""


def statuses(root: Path, *args: str) -> dict[str, str]:
    done = run(root, "build", "--json", *args)
    assert done.returncode == 0, done.stderr
    return {t["name"]: t["status"] for t in json.loads(done.stdout)["targets"]}


def edit_while_building(root: Path) -> None:
    """A build in which slow and quick run; once slow's command has read src/s.txt (and
    quick is done), both inputs are edited; the build then ends 4 s after that, well
    past the 2 s racy window."""
    proc = subprocess.Popen([sys.executable, "-m", "flowmake", "-C", str(root), "build",
                             "-q", "-j2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "FLOWMAKE_TRACE": "cone"})
    deadline = time.monotonic() + 30
    while not ((root / "out" / "s.txt").read_text() == "s2\n"
               and (root / "out" / "q.txt").read_text() == "q2\n"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    (root / "src" / "s.txt").write_text("s3\n")
    (root / "src" / "q.txt").write_text("q3\n")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # a cone build (two changed paths), whose snapshot is saved again at its end
    assert "cone: 2 changed paths" in err and "cone: snapshot saved" in err, err


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    for name in ("s", "q", "a"):
        (tmp_path / "src" / f"{name}.txt").write_text(f"{name}1\n")
    (tmp_path / "flow.toml").write_text(FLOW)
    assert set(statuses(tmp_path).values()) == {"built"}
    age(tmp_path)
    assert set(statuses(tmp_path).values()) == {"fresh"}  # the snapshot saved
    assert (tmp_path / ".flowmake" / "noop.marshal").exists()
    return tmp_path


@pytest.mark.slow
def test_inputs_edited_after_they_were_hashed_are_seen_by_the_next_build(root: Path) -> None:
    write(root, "src/s.txt", "s2\n")  # not racy: the build's cone is planned from the
    write(root, "src/q.txt", "q2\n")  # snapshot, its two targets rebuilt
    edit_while_building(root)
    # The snapshot holds them as not trusted: the next build checks and rebuilds them.
    status = run(root, "status")
    assert "slow: stale" in status.stdout and "quick: stale" in status.stdout, status.stdout
    done = statuses(root)
    assert done == {"slow": "built", "quick": "built", "apart": "fresh"}
    assert (root / "out" / "s.txt").read_text() == "s3\n"
    assert (root / "out" / "q.txt").read_text() == "q3\n"
