"""The shipped pre-commit hooks (.pre-commit-hooks.yaml), run by real `pre-commit` in real
git repositories, with this flowmake repository as the hook repository.

pre-commit clones the hook repository at ``rev`` (here: this repository's HEAD, so only
committed code is tested) and installs it with its dependencies from the package index
into a virtualenv under PRE_COMMIT_HOME, which is shared by the tests of one session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TESTPLUGIN = REPO / "tests" / "fixtures" / "flowmake-testplugin"

# A project with its outputs committed. Each command appends to ran.log (not an output,
# gitignored), so a test can tell whether anything ran.
FLOW = """\
[targets.upper]
cmd     = "echo upper >> ran.log; tr a-z A-Z < ${inputs} > ${outputs}"
inputs  = ["data/words.txt"]
outputs = ["out/upper.txt"]

[targets.count]
cmd     = "echo count >> ran.log; wc -l < ${inputs} | tr -d ' ' > ${outputs}"
inputs  = ["out/upper.txt"]
outputs = ["out/count.txt"]
"""


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], cwd=cwd, env=env, text=True, capture_output=True,
                            timeout=600)
    if check:
        assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def hook_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of git and pre-commit: a session-wide PRE_COMMIT_HOME (each hook
    environment is installed once), a fixed identity, this Python's pre-commit first on PATH."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytest.importorskip("pre_commit")
    home = tmp_path_factory.mktemp("pre-commit-home")
    bin_dir = str(Path(sys.executable).parent)
    # The session's resident servers (tests/conftest.py) stay the ones the hooks use.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "FLOWMAKE_", "GITHUB_", "PRE_COMMIT"))
           or k in ("FLOWMAKE_RESIDENT_DIR", "FLOWMAKE_RESIDENT_IDLE")}
    env.update({"PRE_COMMIT_HOME": str(home), "PATH": bin_dir + os.pathsep + env["PATH"],
                "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
                "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
                "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(home), "NO_COLOR": "1"})
    yield env


@pytest.fixture(scope="session")
def rev() -> str:
    """The commit pre-commit installs the hooks from: this repository's HEAD."""
    if not (REPO / ".git").exists():
        pytest.skip("not in a git checkout of flowmake")
    return _git(REPO, "rev-parse", "HEAD").stdout.strip()


def _config(rev: str, hook: str, plugin: bool = False) -> str:
    extra = f"\n        additional_dependencies: [{str(TESTPLUGIN)!r}]" if plugin else ""
    return (f"repos:\n  - repo: {REPO}\n    rev: {rev}\n    hooks:\n"
            f"      - id: {hook}{extra}\n")


def _project(root: Path, env: dict[str, str], config: str) -> Path:
    """A git repository holding a built project: flow.toml, its input, its outputs and
    flow.lock committed (built with this flowmake), `.flowmake/` ignored."""
    root.mkdir()
    (root / "flow.toml").write_text(FLOW)
    (root / "data").mkdir()
    (root / "data" / "words.txt").write_text("alpha\nbeta\n")
    (root / ".gitignore").write_text(".flowmake/\nran.log\n")
    (root / ".pre-commit-config.yaml").write_text(config)
    build = subprocess.run([sys.executable, "-m", "flowmake", "build"], cwd=root, env=env,
                           text=True, capture_output=True, timeout=120)
    assert build.returncode == 0, build.stderr
    assert (root / "ran.log").read_text() == "upper\ncount\n"
    _git(root, "init", "-q", "-b", "main", env=env)
    _git(root, "add", ".", env=env)
    _git(root, "commit", "-q", "-m", "a built project", env=env)
    return root


def _commit(repo: Path, env: dict[str, str], message: str) -> subprocess.CompletedProcess[str]:
    return _git(repo, "commit", "-m", message, env=env, check=False)


def test_flowmake_check_passes_in_a_fresh_clone_without_building(tmp_path, hook_env, rev):
    origin = _project(tmp_path / "origin", hook_env, _config(rev, "flowmake-check"))
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone), env=hook_env)
    assert not (clone / ".flowmake").exists() and not (clone / "ran.log").exists()
    install = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=clone,
                             env=hook_env, text=True, capture_output=True, timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr

    (clone / "NOTES.md").write_text("a change that touches no target\n")
    _git(clone, "add", "NOTES.md", env=hook_env)
    result = _commit(clone, hook_env, "notes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "flowmake status --check" in result.stdout + result.stderr
    assert "Passed" in result.stdout + result.stderr
    assert not (clone / "ran.log").exists()  # nothing was built: flow.lock answered

    # (b) An input edited and committed without rebuilding is blocked, naming the target.
    (clone / "data" / "words.txt").write_text("alpha\nbeta\ngamma\n")
    _git(clone, "add", "data/words.txt", env=hook_env)
    result = _commit(clone, hook_env, "more words")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Failed" in output and "upper" in output and "input changed: data/words.txt" in output
    assert _git(clone, "log", "--format=%s", env=hook_env).stdout.split("\n")[0] == "notes"
    assert not (clone / "ran.log").exists()


def test_flowmake_build_builds_then_the_staged_outputs_pass(tmp_path, hook_env, rev):
    repo = _project(tmp_path / "repo", hook_env, _config(rev, "flowmake-build", plugin=True))
    install = subprocess.run([sys.executable, "-m", "pre_commit", "install"], cwd=repo,
                             env=hook_env, text=True, capture_output=True, timeout=120)
    assert install.returncode == 0, install.stdout + install.stderr
    (repo / "ran.log").unlink()
    events = tmp_path / "plugin-events.jsonl"
    env = {**hook_env, "FLOWMAKE_TESTPLUGIN_LOG": str(events)}

    (repo / "data" / "words.txt").write_text("alpha\nbeta\ngamma\n")
    _git(repo, "add", "data/words.txt", env=env)
    first = _commit(repo, env, "more words")
    output = first.stdout + first.stderr
    # The hook built the stale targets; their outputs changed, so the commit stops there
    # (pre-commit's rule for a hook that modifies files) until they are staged.
    assert first.returncode != 0, output
    assert "files were modified by this hook" in output
    assert (repo / "ran.log").read_text() == "upper\ncount\n"
    assert (repo / "out" / "upper.txt").read_text() == "ALPHA\nBETA\nGAMMA\n"
    assert (repo / "out" / "count.txt").read_text() == "3\n"
    modified = _git(repo, "diff", "--name-only", env=env).stdout.split()
    assert sorted(modified) == ["flow.lock", "out/count.txt", "out/upper.txt"]
    # The plugin named in additional_dependencies was loaded in the hook's environment.
    assert '"event": "build_finish"' in events.read_text()

    _git(repo, "add", "out", "flow.lock", env=env)
    second = _commit(repo, env, "more words, built")
    assert second.returncode == 0, second.stdout + second.stderr
    assert (repo / "ran.log").read_text() == "upper\ncount\n"  # nothing rebuilt
    assert _git(repo, "status", "--porcelain", env=env).stdout == ""
    # The hook's builds are kept out of the history (build --no-record).
    log = subprocess.run([sys.executable, "-m", "flowmake", "log", "--json"], cwd=repo,
                         env=env, text=True, capture_output=True, timeout=60)
    assert '"run_id": 1' in log.stdout and '"run_id": 2' not in log.stdout
