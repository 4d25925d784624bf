"""Signed remote cache entries (FLOWMAKE_CACHE_KEY) with a folder remote, through the
``flowmake`` command: a signed round trip, a record rewritten to name another valid blob,
a folder manifest changed behind its digest, unsigned records and another key (all
rejected with the key set), the key unset (as before: signatures ignored, nothing
verified), and the key kept out of the targets' environment and of every output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from flowmake.cache.records import ActionRecord
from flowmake.digest import hash_bytes

KEY = "k3y-for-tests-0123456789abcdef"
SIGNED = {"FLOWMAKE_CACHE_KEY": KEY}
UNSIGNED: dict[str, str | None] = {"FLOWMAKE_CACHE_KEY": None}

FLOW = """
[targets.a]
cmd = "echo building a; echo a >> ../runs.log; cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.tree]
cmd = "echo tree >> ../runs.log; mkdir -p out/t && cp ${inputs} out/t/x && echo y > out/t/y"
inputs = ["out/a.txt"]
outputs = ["out/t"]
"""


def setup(project: Any, remote: Path) -> Any:
    return project.flow(f'[flow]\nremote = "{remote}"\n' + FLOW, {"src/a.txt": "hello\n"})


def clone(source: Any, make_project: Any, name: str) -> Any:
    other = make_project(name)
    shutil.copytree(source.root, other.root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".flowmake", "out"))
    return other


def runs(project: Any) -> list[str]:
    log = project.root.parent / "runs.log"
    return log.read_text().split() if log.exists() else []


def build(project: Any, env: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """(status by target, warning lines) of one build; the key never shows."""
    result = project.run("build", "--json", env=env, check=True)
    assert KEY not in result.stdout and KEY not in result.stderr
    statuses = {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}
    return statuses, [line for line in result.stderr.splitlines() if "warning" in line]


def record_file(remote: Path, target: str) -> Path:
    (path,) = [p for p in remote.glob("actions/*/*.json")
               if json.loads(p.read_bytes())["target"] == target]
    return path


def test_a_signed_round_trip_restores_everything(project: Any, make_project: Any,
                                                 tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote)
    assert build(project, SIGNED) == ({"a": "built", "tree": "built"}, [])
    for target in ("a", "tree"):
        signature = json.loads(record_file(remote, target).read_bytes())["signature"]
        assert signature["alg"] == "hmac-sha256" and len(signature["mac"]) == 64
    assert not any(KEY.encode() in p.read_bytes() for p in remote.rglob("*") if p.is_file())
    before = runs(project)
    other = clone(project, make_project, "clone")
    assert build(other, SIGNED) == ({"a": "restored", "tree": "restored"}, [])
    assert runs(project) == before  # nothing ran
    assert other.read("out/t/x") == "hello\n"


def point_a_at_another_blob(remote: Path) -> None:
    """Rewrite a's record to name out/t/y's blob: valid, in the remote, but not a's."""
    path = record_file(remote, "a")
    doc = json.loads(path.read_bytes())
    doc["outputs"]["out/a.txt"]["digest"] = hash_bytes(b"y\n")
    path.write_text(json.dumps(doc))


def test_a_record_rewritten_to_another_valid_blob_is_rejected_and_rebuilt(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote)
    build(project, SIGNED)
    point_a_at_another_blob(remote)
    # Without the key, the record is trusted whole: the wrong content comes back.
    trusting = clone(project, make_project, "trusting")
    statuses, warned = build(trusting, {**UNSIGNED, "FLOWMAKE_REMOTE_READONLY": "1"})
    assert statuses["a"] == "restored" and warned == []
    assert trusting.read("out/a.txt") == "y\n"
    # With it: one warning naming the target and why, a rebuild, the right content...
    other = clone(project, make_project, "clone")
    statuses, warned = build(other, SIGNED)
    assert statuses == {"a": "built", "tree": "restored"}
    assert warned == [f"flowmake: warning: remote record {record_file(remote, 'a')} of target"
                      " 'a' rejected: its signature does not match (the record was changed,"
                      " or signed with another FLOWMAKE_CACHE_KEY)"]
    assert other.read("out/a.txt") == "hello\n"
    # ...and the good, signed entry pushed back over the bad one.
    record = ActionRecord.loads(record_file(remote, "a").read_bytes())
    assert record.outputs["out/a.txt"].digest == hash_bytes(b"hello\n")
    third = clone(project, make_project, "third")
    assert build(third, SIGNED) == ({"a": "restored", "tree": "restored"}, [])
    assert third.read("out/a.txt") == "hello\n"


def test_a_folder_manifest_changed_behind_its_digest_is_rejected(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote)
    build(project, SIGNED)
    digest = ActionRecord.loads(record_file(remote, "tree").read_bytes()).outputs["out/t"].digest
    manifest = remote / "blobs" / digest[:2] / digest
    doc = json.loads(manifest.read_bytes())
    doc["files"] = [[p, d, True] for p, d, _ in doc["files"]]  # all executable: same digest
    os.chmod(manifest, 0o644)
    manifest.write_text(json.dumps(doc))
    trusting = clone(project, make_project, "trusting")  # no key: the folder digest is all
    assert build(trusting, {**UNSIGNED, "FLOWMAKE_REMOTE_READONLY": "1"})[0]["tree"] == "restored"
    assert os.access(trusting.path("out/t/y"), os.X_OK)
    other = clone(project, make_project, "clone")
    statuses, warned = build(other, SIGNED)
    assert statuses == {"a": "restored", "tree": "built"}
    assert warned == [f"flowmake: warning: remote blob {manifest} of target 'tree' rejected:"
                      " its content does not match the SHA-256 its signed record names"]
    assert not os.access(other.path("out/t/y"), os.X_OK)
    assert all(not x for _, _, x in json.loads(manifest.read_bytes())["files"])  # put back


def test_unsigned_records_are_rejected_with_the_key_then_replaced_signed(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote)
    build(project, UNSIGNED)
    assert "signature" not in json.loads(record_file(remote, "a").read_bytes())
    other = clone(project, make_project, "clone")
    statuses, warned = build(other, SIGNED)
    assert statuses == {"a": "built", "tree": "built"}
    assert len(warned) == 2
    assert all("rejected: it is not signed, and FLOWMAKE_CACHE_KEY is set" in w for w in warned)
    assert "of target 'a'" in warned[0] and "of target 'tree'" in warned[1]
    assert "signature" in json.loads(record_file(remote, "a").read_bytes())
    third = clone(project, make_project, "third")
    assert build(third, SIGNED) == ({"a": "restored", "tree": "restored"}, [])


def test_another_key_is_rejected(project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote)
    build(project, SIGNED)
    other = clone(project, make_project, "clone")
    statuses, warned = build(other, {"FLOWMAKE_CACHE_KEY": "another key",
                                     "FLOWMAKE_REMOTE_READONLY": "1"})
    assert statuses == {"a": "built", "tree": "built"}
    assert len(warned) == 2 and all("its signature does not match" in w for w in warned)


def test_without_the_key_signatures_are_ignored_and_nothing_is_signed(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote)
    build(project, SIGNED)
    other = clone(project, make_project, "clone")
    assert build(other, UNSIGNED) == ({"a": "restored", "tree": "restored"}, [])
    other.write("src/a.txt", "changed\n")
    assert build(other, {"FLOWMAKE_CACHE_KEY": "  "}) == ({"a": "built", "tree": "built"}, [])
    records = [json.loads(p.read_bytes()) for p in remote.glob("actions/*/*.json")]
    assert sorted("signature" in r for r in records) == [False, False, True, True]


def test_the_key_is_kept_from_the_targets(project: Any, tmp_path: Path) -> None:
    project.flow(f"""
        [flow]
        remote = "{tmp_path / 'remote'}"

        [targets.sh]
        cmd = "echo key=$${{FLOWMAKE_CACHE_KEY:-absent}} | tee ${{outputs}}"
        outputs = ["out/sh.txt"]

        [targets.py]
        python = "steps:show"
        outputs = ["out/py.json"]
        """, {"steps.py": "import os\n\n\ndef show():\n"
                          "    return {'key': os.environ.get('FLOWMAKE_CACHE_KEY', 'absent')}\n"})
    assert build(project, SIGNED)[0] == {"sh": "built", "py": "built"}
    assert project.read("out/sh.txt") == "key=absent\n"
    assert json.loads(project.read("out/py.json")) == {"key": "absent"}
    listing = subprocess.run(["grep", "-r", "-l", KEY, str(tmp_path)], capture_output=True)
    assert listing.stdout == b""  # nowhere: not in the outputs, logs, caches, records


def test_cache_push_signs_what_is_there_and_cache_pull_verifies(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    setup(project, remote)
    build(project, UNSIGNED)
    pulled = clone(project, make_project, "early").json("cache", "pull", env=SIGNED, check=True)
    assert (pulled["entries"], pulled["missing"]) == (0, 1)  # a rejected; tree unknown then
    pushed = project.json("cache", "push", env=SIGNED, check=True)
    assert pushed["entries"] == 2 and pushed["uploaded"] == 0  # the blobs were all there
    assert all("signature" in json.loads(p.read_bytes()) for p in remote.glob("actions/*/*"))
    other = clone(project, make_project, "clone")
    pulled = other.json("cache", "pull", env=SIGNED, check=True)
    assert (pulled["entries"], pulled["missing"]) == (2, 0)
    assert build(other, SIGNED) == ({"a": "restored", "tree": "restored"}, [])


def test_no_cache_builds_do_not_hand_the_key_to_commands(project):
    project.flow("""
        [targets.env]
        cmd = "env > ${outputs}"
        outputs = ["out/env.txt"]
        """)
    result = project.run("build", "--no-cache", env={"FLOWMAKE_CACHE_KEY": "s3cr3t-key"})
    assert result.returncode == 0, result.stderr
    assert "s3cr3t-key" not in project.read("out/env.txt")
