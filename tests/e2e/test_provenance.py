"""Each build records its environment (SPEC §9): `flowmake log RUN_ID`, `log --json`."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time

from flowmake import __version__
from flowmake.store.provenance import distributions

FLOW = """
[targets.hello]
cmd = "echo hi > ${outputs}"
inputs = ["src.txt"]
outputs = ["out/hello.txt"]
"""

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}


def git(root, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def test_log_shows_the_environment_without_git(project):
    project.flow(FLOW, {"src.txt": "a\n"})
    project.build()
    text = project.run("log", "-", check=True).stdout
    assert f"  python: {platform.python_version()} (CPython)" in text
    assert f"  flowmake: {__version__}; plugins: " in text
    assert "  git: not a git repository" in text
    run = project.json("log", "1")["runs"][0]
    env = run["environment"]
    assert env["python"] == platform.python_version() and env["flowmake"] == __version__
    assert env["git"] is None
    assert f"flowmake=={__version__}" in env["distributions"]
    assert any(d.lower().startswith("pytest==") for d in env["distributions"])
    assert env["distributions"] == sorted(env["distributions"], key=str.lower)
    # the list view: the digest, not the list
    listed = project.json("log")["runs"][0]["environment"]
    assert listed["distributions_digest"] == env["distributions_digest"]
    assert "distributions" not in listed and listed["plugins"] == env["plugins"]


def test_plugins_are_named_with_their_distributions(project):
    project.flow(FLOW, {"src.txt": "a\n"})
    project.build()
    env = project.json("log", "-")["runs"][0]["environment"]
    # the plugins installed in the test environment come through entry points
    assert env["plugins"].get("parquet", "").startswith("flowmake-parquet ")


def test_git_commit_and_dirty_flag(project):
    project.flow(FLOW, {"src.txt": "a\n"})
    git(project.root, "init", "-q")
    git(project.root, "add", "flow.toml", "src.txt")
    git(project.root, "commit", "-q", "-m", "first")
    head = git(project.root, "rev-parse", "HEAD")
    project.build()
    env = project.json("log", "-")["runs"][0]["environment"]
    # untracked files (outputs, .flowmake) do not make it dirty
    assert env["git"] == {"commit": head, "dirty": False}
    assert f"  git: {head[:12]}\n" in project.run("log", "-", check=True).stdout
    project.write("src.txt", "b\n")  # a tracked file changed, not committed
    project.build()
    env = project.json("log", "-")["runs"][0]["environment"]
    assert env["git"] == {"commit": head, "dirty": True}
    assert f"  git: {head[:12]} (dirty)" in project.run("log", "2", check=True).stdout
    first = project.json("log", "1")["runs"][0]["environment"]["git"]
    assert first == {"commit": head, "dirty": False}  # each run keeps its own


def test_a_no_op_build_records_no_environment(project):
    project.flow(FLOW, {"src.txt": "a\n"})
    project.build()
    past = time.time() - 10  # nothing "racy" (just written): the fast path trusts the stats
    for path in [project.root / "flow.toml", *project.root.rglob("*")]:
        if ".flowmake" not in path.parts:
            os.utime(path, (past, past))
    project.build()  # all fresh: the next no-op build may take the fast path
    noop = project.run("build", "-v", check=True)  # the no-op fast path: no git, no scan
    assert "no-op fast path" in noop.stderr + noop.stdout
    runs = project.json("log")["runs"]
    assert len(runs) == 3 and runs[0]["environment"] is None
    assert runs[1]["environment"] is not None  # a full build, even with nothing to do
    assert "  environment: not recorded" in project.run("log", "-", check=True).stdout


def test_the_distributions_list_is_cached_by_sys_path_mtimes(tmp_path):
    found = distributions(tmp_path)
    cache = json.loads((tmp_path / "distributions.json").read_text())
    assert cache["distributions"] == found
    cache["distributions"] = ["only==1"]
    (tmp_path / "distributions.json").write_text(json.dumps(cache))
    assert distributions(tmp_path) == ["only==1"]  # same sys.path mtimes: the cached list
    cache["signature"][0] = "/another/python"
    (tmp_path / "distributions.json").write_text(json.dumps(cache))
    assert distributions(tmp_path) == found  # anything else: scanned again


def test_a_servers_kept_list_serves_a_first_build_while_its_signature_holds(tmp_path,
                                                                          monkeypatch):
    """A resident server lists the distributions once (keep_distributions); a fork's first
    build in a project (no distributions.json) takes that list, unless sys.path's
    folders changed since (then it lists them again)."""
    from flowmake.store import provenance

    provenance.keep_distributions()
    assert provenance._kept is not None
    signature, listed = provenance._kept
    assert f"flowmake=={__version__}" in listed
    assert distributions(tmp_path / "a") == listed
    monkeypatch.setattr(provenance, "_kept", (signature, ["kept==1"]))
    assert distributions(tmp_path / "b") == ["kept==1"]  # the server's, not a new scan
    monkeypatch.setattr(provenance, "_kept", ([*signature, ["/new/site", 1]], ["kept==1"]))
    assert distributions(tmp_path / "c") == listed  # an install since: listed again


def test_dirty_is_the_state_the_build_started_from(project):
    """A command that rewrites a committed output does not make its own build dirty: the
    git state is taken before any command runs (the rest of the environment is taken in a
    thread once the first command started)."""
    project.flow("""
[targets.hello]
cmd = "echo new > ${outputs}"
inputs = ["src.txt"]
outputs = ["out.txt"]
""", {"src.txt": "a\n", "out.txt": "old\n"})
    git(project.root, "init", "-q")
    git(project.root, "add", "flow.toml", "src.txt", "out.txt")
    git(project.root, "commit", "-q", "-m", "first")
    project.build()
    assert (project.root / "out.txt").read_text() == "new\n"
    env = project.json("log", "-")["runs"][0]["environment"]
    assert env["git"] == {"commit": git(project.root, "rev-parse", "HEAD"), "dirty": False}
    project.write("src.txt", "b\n")  # the next build starts from a dirty tree
    project.build()
    assert project.json("log", "-")["runs"][0]["environment"]["git"]["dirty"] is True


def test_a_failed_build_records_its_environment(project):
    project.flow(FLOW.replace("echo hi > ${outputs}", "exit 3"), {"src.txt": "a\n"})
    project.build(check=1)
    env = project.json("log", "-")["runs"][0]["environment"]
    assert env is not None and env["flowmake"] == __version__


def test_the_script_and_python_m_share_the_distributions_cache(project):
    """sys.path[0] is the script's folder for `flowmake`, the project's under `python -m`:
    neither holds a distribution, so both read one cached list (it was written again on
    every switch)."""
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "flowmake"
    project.flow(FLOW, {"src.txt": "a\n"})
    project.build()
    cache = project.root / ".flowmake" / "distributions.json"
    before = cache.stat().st_mtime_ns
    for i in range(2):
        project.write("src.txt", f"{i}\n")
        done = subprocess.run([str(script), "build"], cwd=project.root, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        project.write("src.txt", f"m{i}\n")
        project.build()
    assert cache.stat().st_mtime_ns == before


def spy_git(tmp_path) -> tuple[str, object]:
    """A `git` first on PATH that notes each call and then runs the real one."""
    real = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True,
                          check=True).stdout.strip()
    bin_dir = tmp_path / "spy"
    bin_dir.mkdir()
    log = tmp_path / "git-calls.txt"
    (bin_dir / "git").write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {real} "$@"\n')
    (bin_dir / "git").chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}", log


def test_outside_a_work_tree_no_git_process_is_started(project, tmp_path):
    path, log = spy_git(tmp_path)
    project.flow(FLOW, {"src.txt": "a\n"})
    project.build(env={"PATH": path})
    assert not log.exists()
    assert project.json("log", "1")["runs"][0]["environment"]["git"] is None
    git(project.root, "init", "-q")  # now a work tree: git is asked
    git(project.root, "add", "flow.toml", "src.txt")
    git(project.root, "commit", "-q", "-m", "first")
    project.build("-B", env={"PATH": path})
    assert "rev-parse HEAD" in log.read_text()
    assert project.json("log", "2")["runs"][0]["environment"]["git"]["commit"] == git(
        project.root, "rev-parse", "HEAD")
