"""`flowmake lock merge` as git's merge driver for flow.lock, in a real git repository."""

from __future__ import annotations

import subprocess

import pytest

FLOW = """
[flow]
cache = false

[targets.a]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["a.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["b.txt"]
outputs = ["out/b.txt"]
"""


def git(project, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], cwd=project.root, capture_output=True, text=True,
                            env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                                 "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
                                 "PATH": __import__("os").environ["PATH"], "HOME": str(project.root)})
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture
def repo(project):
    project.flow(FLOW, {"a.txt": "a\n", "b.txt": "b\n", ".gitignore": ".flowmake/\n"})
    project.build()
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "base")
    return project


def branches(repo) -> None:
    """Two branches, each rebuilding one target: adjacent lines of flow.lock change."""
    git(repo, "checkout", "-qb", "left")
    repo.write("a.txt", "left\n")
    repo.build()
    git(repo, "commit", "-qam", "left")
    git(repo, "checkout", "-q", "main")
    repo.write("b.txt", "right\n")
    repo.build()
    git(repo, "commit", "-qam", "right")


def test_git_merges_changes_to_different_targets_by_itself(repo):
    """One line per part of each entry: two branches that rebuilt different targets merge
    as text, without any driver."""
    branches(repo)
    git(repo, "merge", "-q", "--no-edit", "left")
    import shutil

    shutil.rmtree(repo.path(".flowmake"))  # as a fresh clone of the merge
    assert repo.run("status", "--check").returncode == 0


def test_without_the_driver_one_entry_changed_on_both_sides_conflicts(repo):
    both_sides(repo)
    merged = git(repo, "merge", "--no-edit", "left", check=False)
    assert "Merge conflict in flow.lock" in merged.stdout
    result = repo.run("status")
    assert result.returncode == 2 and "flow.lock:" in result.stderr
    assert "merge conflict" in result.stderr and "Traceback" not in result.stderr


def both_sides(repo) -> None:
    git(repo, "checkout", "-qb", "left")
    repo.write("a.txt", "left\n")
    repo.build()
    git(repo, "commit", "-qam", "left")
    git(repo, "checkout", "-q", "main")
    repo.write("a.txt", "right\n")
    repo.build()
    git(repo, "commit", "-qam", "right")


def test_the_merge_driver_merges_entry_by_entry(repo):
    repo.write(".gitattributes", "flow.lock merge=flowmake-lock\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-qm", "driver")
    python = __import__("sys").executable
    git(repo, "config", "merge.flowmake-lock.driver", f"{python} -m flowmake lock merge %O %A %B")
    branches(repo)
    git(repo, "merge", "-q", "--no-edit", "left")  # no conflict
    assert "<<<<<<<" not in repo.read("flow.lock")
    import shutil

    shutil.rmtree(repo.path(".flowmake"))  # as a fresh clone of the merge
    assert repo.run("status", "--check").returncode == 0
    states = repo.states()
    assert {n: s["source"] for n, s in states.items()} == {"a": "lock", "b": "lock"}


def test_both_sides_changing_one_entry_keeps_ours(repo):
    repo.write(".gitattributes", "flow.lock merge=flowmake-lock\n")
    git(repo, "add", ".gitattributes")
    git(repo, "commit", "-qm", "driver")
    python = __import__("sys").executable
    git(repo, "config", "merge.flowmake-lock.driver", f"{python} -m flowmake lock merge %O %A %B")
    both_sides(repo)
    merged = git(repo, "merge", "--no-edit", "left", check=False)
    # a.txt and out/a.txt conflict as files; flow.lock itself merged (ours kept for a)
    assert "<<<<<<<" not in repo.read("flow.lock")
    assert "CONFLICT (content): Merge conflict in flow.lock" not in merged.stdout
    git(repo, "checkout", "--ours", "a.txt", "out/a.txt")
    assert repo.run("status", "--check").returncode == 0
