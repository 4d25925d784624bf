"""A folder remote cache that goes wrong, through the ``flowmake`` command: a tampered or
missing blob, a truncated record, a remote that cannot be reached or refuses writes.
Each problem is one warning line (never two that contradict each other, never a
traceback), the build goes on, and a writable remote is repaired by the rebuild's push.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowmake.cache.records import ActionRecord
from flowmake.digest import hash_bytes, hash_file

BIG = 300_000  # past remote.SMALL_BLOB: a push probes the remote for it instead of sending it

FLOW = """
[targets.a]
cmd = "echo building a; echo a >> ../runs.log; cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.big]
cmd = "echo big >> ../runs.log; python -c 'import sys; open(sys.argv[1], \\"w\\").write(\\"x\\" * BIG)' ${outputs}"
outputs = ["out/big.txt"]

[targets.tree]
cmd = "echo tree >> ../runs.log; mkdir -p out/t && cp ${inputs} out/t/x && echo y > out/t/y"
inputs = ["out/a.txt"]
outputs = ["out/t"]
""".replace("BIG", str(BIG))


def setup(project: Any, remote: Path | str) -> Any:
    return project.flow(f'[flow]\nremote = "{remote}"\n' + FLOW, {"src/a.txt": "hello\n"})


def clone(source: Any, make_project: Any, name: str = "clone") -> Any:
    other = make_project(name)
    shutil.copytree(source.root, other.root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".flowmake", "out"))
    return other


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("flowmake: warning:")]


def statuses(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}


def blob(remote: Path, digest: str) -> Path:
    return remote / "blobs" / digest[:2] / digest


def tamper(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


def test_a_tampered_large_blob_is_one_warning_and_the_rebuild_overwrites_it(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote).build()
    digest = hash_bytes(b"x" * BIG)
    tamper(blob(remote, digest), b"y" * BIG)
    other = clone(project, make_project)
    result = other.run("build", "--json", check=True)
    assert statuses(result) == {"a": "restored", "big": "built", "tree": "restored"}
    # one line: rejected (before, a second one said the same blob "is missing")
    assert warnings(result.stderr) == [
        f"flowmake: warning: remote blob {remote}/blobs/{digest[:2]}/{digest} of target 'big'"
        " rejected: its content does not match its digest"]
    assert other.read("out/big.txt") == "x" * BIG
    assert hash_file(str(blob(remote, digest))) == digest  # the push put the good one back
    third = clone(project, make_project, "third")
    again = third.run("build", "--json", check=True)
    assert set(statuses(again).values()) == {"restored"} and warnings(again.stderr) == []


def test_a_tampered_file_of_a_folder_output_is_one_warning(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote).build()
    digest = hash_bytes(b"y\n")  # out/t/y
    tamper(blob(remote, digest), b"z\n")
    other = clone(project, make_project)
    result = other.run("build", "--json", check=True)
    assert statuses(result)["tree"] == "built"
    assert len(warnings(result.stderr)) == 1
    assert f"blobs/{digest[:2]}/{digest} of target 'tree' rejected" in result.stderr
    assert other.read("out/t/y") == "y\n"
    assert blob(remote, digest).read_bytes() == b"y\n"


def test_a_missing_remote_blob_is_one_warning(project: Any, make_project: Any,
                                             tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote).build()
    digest = hash_bytes(b"x" * BIG)
    blob(remote, digest).unlink()
    other = clone(project, make_project)
    result = other.run("build", "--json", check=True)
    assert statuses(result)["big"] == "built"
    assert warnings(result.stderr) == [
        f"flowmake: warning: remote blob {remote}/blobs/{digest[:2]}/{digest} of target 'big'"
        " is missing"]
    assert hash_file(str(blob(remote, digest))) == digest


def test_a_truncated_remote_record_is_one_warning_naming_its_target_and_replaced(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote).build()
    (path,) = [p for p in remote.glob("actions/*/*.json")
               if json.loads(p.read_bytes())["target"] == "a"]
    whole = path.read_bytes()
    path.write_bytes(whole[:50])
    other = clone(project, make_project)
    result = other.run("build", "--json", check=True)
    assert statuses(result)["a"] == "built"
    (line,) = warnings(result.stderr)
    assert f"remote record {path} of target 'a' rejected: not whole JSON, truncated?" in line
    assert "Traceback" not in result.stderr
    assert ActionRecord.loads(path.read_bytes()).target == "a"  # the rebuild pushed it whole
    path.write_bytes(b"")  # status asks the remote too (is it restorable?): one line
    status = clone(project, make_project, "third").run("status", "a", check=True)
    (line,) = warnings(status.stderr)
    assert f"remote record {path} of target 'a' rejected: not whole JSON" in line


def test_an_unreachable_folder_remote_is_one_warning(project: Any, tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("not a folder\n")
    setup(project, tmp_path / "plain-file" / "cache")
    result = project.run("build", "--json", check=True)
    assert set(statuses(result).values()) == {"built"}
    (line,) = warnings(result.stderr)  # before: and "3 cache entries not pushed" after it
    assert "remote cache" in line and "unavailable" in line and "going on without it" in line
    assert "Traceback" not in result.stderr


@contextlib.contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """Make every folder under ``folder`` refuse changes, even root's (chattr +i)."""
    folders = [str(p) for p in [folder, *folder.rglob("*")] if p.is_dir()]
    done = subprocess.run(["chattr", "+i", *folders], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i unavailable here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *folders], check=True)


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr")
def test_a_remote_that_refuses_writes_is_one_warning_with_a_hint(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote).build()
    other = clone(project, make_project)
    other.write("src/a.txt", "changed\n")  # a and tree are built, and cannot be pushed
    with immutable(remote):
        result = other.run("build", "--json", check=True)
    assert statuses(result) == {"a": "built", "big": "restored", "tree": "built"}
    (line,) = warnings(result.stderr)
    assert line.startswith(f"flowmake: warning: 2 cache entries not pushed to {remote}:"
                           " PermissionError:")
    assert "set remote_readonly = true, or FLOWMAKE_REMOTE_READONLY=1" in line
