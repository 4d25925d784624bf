"""The no-op fast path (fastpath.py): it answers only when nothing that matters changed."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

FLOW = """
[flow]
cache = false  # these tests are about building: nothing is restored from the cache

[params]
n = 1

[targets.a]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs} && echo ${params.n} >> ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]
env = ["FM_FAST_ENV"]
"""


def run(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "FM_FAST_ENV"}
    full_env = {**base, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=full_env, timeout=60)


def age_everything(root: Path, seconds: float = 10.0) -> None:
    """Move every mtime into the past so that nothing is 'racy' (fresh from a write)."""
    past = time.time() - seconds
    for path in [root / "flow.toml", *root.rglob("*")]:
        if ".flowmake" not in path.parts and path.exists():
            os.utime(path, (past, past))


def settle(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """Build, age the files, build again (all fresh): the fast path is now armed."""
    assert run(root, "build", *args, env=env).returncode == 0
    age_everything(root)
    result = run(root, "build", *args, env=env)
    assert result.returncode == 0
    assert (root / ".flowmake" / "noop.marshal").exists()


def is_fast(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[bool, dict]:
    result = run(root, "build", "-v", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return "no-op fast path" in result.stderr, json.loads(result.stdout)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("hello\n")
    (tmp_path / "flow.toml").write_text(FLOW)
    return tmp_path


def test_all_fresh_build_is_answered_by_the_fast_path(root: Path) -> None:
    settle(root)
    fast, doc = is_fast(root)
    assert fast
    assert doc["result"] == "success"
    assert sorted(t["name"] for t in doc["targets"]) == ["a", "b"]
    assert {t["status"] for t in doc["targets"]} == {"fresh"}
    log = run(root, "status", "--check")
    assert log.returncode == 0


def test_changed_input_misses_and_rebuilds(root: Path) -> None:
    settle(root)
    (root / "src" / "a.txt").write_text("changed\n")
    fast, doc = is_fast(root)
    assert not fast
    assert {t["name"]: t["status"] for t in doc["targets"]} == {"a": "built", "b": "built"}
    assert (root / "out" / "b.txt").read_text().startswith("changed")


def test_edited_output_misses(root: Path) -> None:
    settle(root)
    (root / "out" / "b.txt").write_text("tampered\n")
    fast, doc = is_fast(root)
    assert not fast
    assert {t["name"]: t["status"] for t in doc["targets"]}["b"] == "built"


def test_env_override_and_selection_are_in_the_signature(root: Path) -> None:
    settle(root)
    fast, doc = is_fast(root, env={"FM_FAST_ENV": "x"})
    assert not fast
    assert {t["name"]: t["status"] for t in doc["targets"]}["b"] == "built"
    fast, doc = is_fast(root, "-p", "n=2")
    assert not fast
    assert (root / "out" / "b.txt").read_text().endswith("2\n")
    fast, _ = is_fast(root, "a")
    assert not fast  # another selection was never saved


def test_flow_toml_edit_misses(root: Path) -> None:
    settle(root)
    (root / "flow.toml").write_text(FLOW.replace("cat ${inputs} > ${outputs}\"", "cp ${inputs} ${outputs}\"", 1))
    fast, doc = is_fast(root)
    assert not fast
    assert {t["name"]: t["status"] for t in doc["targets"]}["a"] == "built"


def test_clean_voids_the_saved_answer(root: Path) -> None:
    settle(root)
    assert run(root, "clean", "b").returncode == 0
    assert not (root / ".flowmake" / "noop.marshal").exists()
    fast, doc = is_fast(root)
    assert not fast
    assert {t["name"]: t["status"] for t in doc["targets"]}["b"] == "built"


def test_always_and_glob_targets_never_use_it(root: Path) -> None:
    (root / "flow.toml").write_text(FLOW + '\n[targets.c]\ncmd = "true"\nalways = true\n')
    assert run(root, "build").returncode == 0
    age_everything(root)
    assert run(root, "build").returncode == 0
    assert not (root / ".flowmake" / "noop.marshal").exists()
    (root / "flow.toml").write_text(FLOW + '\n[targets.g]\ncmd = "cat ${inputs} > ${outputs}"\n'
                                    'inputs = ["src/*.txt"]\noutputs = ["out/g.txt"]\n')
    assert run(root, "build").returncode == 0
    age_everything(root)
    assert run(root, "build").returncode == 0
    assert not (root / ".flowmake" / "noop.marshal").exists()


def test_racy_outputs_are_not_trusted(root: Path) -> None:
    assert run(root, "build").returncode == 0
    # Everything was just written: a second build is all fresh but must not arm the path.
    assert run(root, "build").returncode == 0
    assert not (root / ".flowmake" / "noop.marshal").exists()


# -- status answers from it too -------------------------------------------------------------

DIAMOND = FLOW + """
[targets.c]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/c.txt"]

[targets.d]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/b.txt", "out/c.txt"]
outputs = ["out/d.txt"]

[targets.e]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/d.txt", "out/c.txt"]
outputs = ["out/e.txt"]

[targets.slow]
cmd = "sleep 3; touch ${outputs}"
outputs = ["out/slow.txt"]
"""


def status(root: Path, *args: str) -> tuple[bool, subprocess.CompletedProcess[str]]:
    result = run(root, "status", "-v", *args)
    assert result.returncode == 0, result.stderr
    return "no-op fast path" in result.stderr, result


def test_status_answers_from_the_fast_path_exactly_as_from_the_plan(root: Path) -> None:
    (root / "flow.toml").write_text(DIAMOND)
    for selection in (["a", "b", "c", "d", "e"], ["e"], ["b", "c"]):
        settle(root, *selection)
        for form in ([], ["--json"], ["-q"], ["--check"], ["-q", "--check"]):
            fast, from_stats = status(root, *form, *selection)
            assert fast, (selection, form)
            (root / ".flowmake" / "noop.marshal").unlink()
            slow, planned = status(root, *form, *selection)
            assert not slow
            assert from_stats.stdout == planned.stdout  # the tree, or the JSON document
            if "-q" not in form and "--json" not in form:  # "N fresh, 0 not fresh"
                assert from_stats.stderr.splitlines()[-1] == planned.stderr.splitlines()[-1]
    assert "c: fresh (upstream shown above)" in status(root, "e")[1].stdout  # a repeat


def test_an_all_fresh_status_arms_the_fast_path_and_a_change_disarms_it(root: Path) -> None:
    assert run(root, "build").returncode == 0
    age_everything(root)
    fast, _ = status(root)
    assert not fast and (root / ".flowmake" / "noop.marshal").exists()  # saved by status
    assert status(root)[0]
    assert is_fast(root)[0]  # a build is answered by it too
    (root / "src" / "a.txt").write_text("changed\n")
    fast, changed = status(root, "--json")
    assert not fast
    states = {t["name"]: t["state"] for t in json.loads(changed.stdout)["targets"]}
    assert states == {"a": "stale", "b": "stale"}
    assert not status(root)[0]  # the saved stats no longer match: planned every time


def lock_is_held(path: Path) -> bool:
    """Whether another process holds the project lock (flock), as a build does."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases it, had we taken it
    return False


def test_status_never_arms_it_while_a_build_runs(root: Path) -> None:
    (root / "flow.toml").write_text(DIAMOND)
    assert run(root, "build", "a", "b").returncode == 0
    age_everything(root)
    build = subprocess.Popen([sys.executable, "-m", "flowmake", "-C", str(root), "build", "slow"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not lock_is_held(root / ".flowmake" / "lock"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        fast, result = status(root, "a", "b")  # fresh, and answered without waiting
        assert not fast and "2 fresh, 0 not fresh" in result.stderr
        assert not (root / ".flowmake" / "noop.marshal").exists()  # the build holds the lock
    finally:
        assert build.wait(timeout=60) == 0
