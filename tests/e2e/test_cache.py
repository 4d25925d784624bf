"""The artifact cache through the ``flowmake`` command: restore, log replay, copies, small
blobs in index.db and large ones as files, builds sharing a cache, a folder remote shared
by two clones, read-only remotes, corruption, gc, push/pull, and URL inputs and outputs
(``file://``: no object store needed). S3 is in tests/s3/.

The local cache is inspected through LocalCache and a connection of the test's own to its
index.db; a folder remote, whose layout other flowmake versions read, through its files.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from flowmake.cache.index import INLINE_BLOB
from flowmake.cache.local import LocalCache
from flowmake.cache.records import blob_rel
from flowmake.digest import hash_bytes, hash_file

CHAIN = """
[targets.a]
cmd = "echo building a; echo a-run >> ../runs.log; cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd = "echo building b; echo b-run >> ../runs.log; sort ${inputs} > ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]

[targets.tree]
cmd = "echo b-tree >> ../runs.log; mkdir -p out/t/sub && cp ${inputs} out/t/x && printf '#!/bin/sh\\n' > out/t/sub/tool && chmod +x out/t/sub/tool"
inputs = ["out/b.txt"]
outputs = ["out/t"]
"""


def chain(project: Any, flow_head: str = "") -> Any:
    return project.flow(flow_head + CHAIN, {"src/a.txt": "b\na\n"})


def runs(project: Any) -> list[str]:
    log = project.root.parent / "runs.log"
    return log.read_text().split() if log.exists() else []


def blobs(cache: Path) -> dict[str, bytes]:
    """A local cache's blobs by digest, inline or files, as stored."""
    local = LocalCache(cache)
    try:
        return {b.digest: local.read_blob(b.digest) or b"" for b in local.blobs()}
    finally:
        local.close()


def entries(cache: Path) -> set[str]:
    """A local cache's action record keys."""
    local = LocalCache(cache)
    try:
        return set(local.keys())
    finally:
        local.close()


def remote_entries(remote: Path) -> set[str]:
    """A folder remote's records: one file each, ``actions/12/<key>.json``."""
    return {p.stem for p in remote.glob("actions/*/*.json")}


def cache_files(cache: Path) -> set[str]:
    return {str(p.relative_to(cache)) for p in cache.rglob("*")}


def test_clean_then_build_restores_and_replays_the_log(project: Any) -> None:
    chain(project)
    assert set(project.build().values()) == {"built"}
    built = {p: project.read(p) for p in ("out/a.txt", "out/b.txt", "out/t/x")}
    project.run("clean", "--all", check=True)
    assert project.states()["a"]["state"] == "restorable"
    dry = project.json("build", "-n", check=True)
    # b's key needs out/a.txt, which is not there yet: only a is known to be restorable.
    assert {t["name"]: t["status"] for t in dry["targets"]} == {
        "a": "would-restore", "b": "would-build", "tree": "would-build"}
    before = runs(project)
    result = project.run("build", check=True)
    assert "building a" in result.stdout and "building b" in result.stdout  # replayed
    assert runs(project) == before  # nothing ran
    assert {p: project.read(p) for p in built} == built
    assert os.stat(project.path("out/t/sub/tool")).st_mode & stat.S_IXUSR
    assert set(project.build().values()) == {"fresh"}
    assert [r["counts"]["restored"] for r in project.json("log", check=True)["runs"][:2]] == [0, 3]


def test_restored_outputs_are_copies_the_user_may_edit(project: Any) -> None:
    chain(project)
    project.build()
    cache = project.path(".flowmake/cache")
    saved = blobs(cache)
    project.run("clean", "--all", check=True)
    assert set(project.build().values()) == {"restored"}
    path = project.path("out/a.txt")
    with open(path, "r+") as f:  # edit in place: a hard link would change the blob too
        f.write("X")
    assert blobs(cache) == saved
    assert all(hash_bytes(data) == digest for digest, data in saved.items()
               if not data.startswith(b'{"files"'))
    states = project.states("a")
    assert states["a"]["state"] == "restorable"
    assert any("output modified" in r for r in states["a"]["reasons"])
    assert project.build("a") == {"a": "restored"}
    assert project.read("out/a.txt") == "b\na\n"


def test_changed_input_builds_then_restoring_the_old_input_restores(project: Any) -> None:
    chain(project)
    project.build()
    project.write("src/a.txt", "c\n")
    assert project.build() == {"a": "built", "b": "built", "tree": "built"}
    project.write("src/a.txt", "b\na\n")
    assert project.build() == {"a": "restored", "b": "restored", "tree": "restored"}
    assert project.read("out/b.txt") == "a\nb\n"


def test_no_cache_flag_and_cache_false_targets(project: Any) -> None:
    chain(project)
    project.build("--no-cache")
    cache = project.path(".flowmake/cache")
    assert entries(cache) == set()
    project.run("clean", "--all", check=True)
    assert set(project.build().values()) == {"built"}
    assert len(entries(cache)) == 3
    project.run("clean", "--all", check=True)
    assert set(project.build("--no-cache").values()) == {"built"}
    project.edit_flow('outputs = ["out/b.txt"]', 'outputs = ["out/b.txt"]\ncache = false')
    project.run("clean", "--all", check=True)
    assert project.build() == {"a": "restored", "b": "built", "tree": "restored"}
    assert project.states("b")["b"]["state"] == "fresh"


def test_cache_false_in_flow_disables_it(project: Any) -> None:
    chain(project, "[flow]\ncache = false\n")
    project.build()
    project.run("clean", "--all", check=True)
    assert set(project.build().values()) == {"built"}
    assert not project.path(".flowmake/cache").exists()
    doc = project.json("cache", "status", check=True)
    assert doc["enabled"] is False
    assert "disabled" in project.run("cache", "gc", check=2).stderr


def test_cache_in_a_custom_folder(project: Any, tmp_path: Path) -> None:
    chain(project, f'[flow]\ncache = "{tmp_path}/shared-cache"\n')
    project.build()
    assert len(entries(tmp_path / "shared-cache")) == 3
    doc = project.json("cache", "status", check=True)
    assert doc["path"] == str(tmp_path / "shared-cache") and doc["entries"] == 3
    assert doc["current"] == 3 and doc["blobs"] == 4 and doc["size"] > 0
    assert doc["remote"] is None


# -- the local layout: index.db and large blob files ----------------------------------------------


INDEX_FILES = {"index.db", "index.db-wal", "index.db-shm"}


def test_small_outputs_create_no_file_in_the_cache(project: Any) -> None:
    chain(project)
    project.states()
    assert not project.exists(".flowmake/cache")  # a reader never creates the cache
    project.build()
    cache = project.path(".flowmake/cache")
    assert "index.db" in cache_files(cache) and cache_files(cache) <= INDEX_FILES
    assert len(entries(cache)) == 3 and len(blobs(cache)) == 4  # out/t's manifest included
    local = LocalCache(cache)
    try:  # each record says when it was made
        made = [local.read_action(key) for key in entries(cache)]
        assert all(r is not None and time.time() - 120 < r.created <= time.time() for r in made)
    finally:
        local.close()
    doc = project.json("cache", "status", check=True)
    assert (doc["entries"], doc["current"], doc["blobs"]) == (3, 3, 4)
    project.run("clean", "--all", check=True)
    assert set(project.build().values()) == {"restored"}
    assert cache_files(cache) <= INDEX_FILES


BIG = f"""
[targets.big]
cmd = "echo big-run >> ../runs.log; head -c {INLINE_BLOB + 1000} /dev/urandom > ${{outputs}}"
outputs = ["out/big.bin"]

[targets.small]
cmd = "echo small-run >> ../runs.log; echo small > ${{outputs}}"
outputs = ["out/small.txt"]
"""


def test_a_large_output_is_a_blob_file_and_both_kinds_restore(project: Any) -> None:
    project.flow(BIG)
    project.build()
    big, small = project.path("out/big.bin").read_bytes(), project.read("out/small.txt")
    digest = hash_bytes(big)
    cache = project.path(".flowmake/cache")
    assert cache_files(cache) - INDEX_FILES == {"blobs", f"blobs/{digest[:2]}",
                                                blob_rel(digest), "tmp"}
    assert (cache / blob_rel(digest)).read_bytes() == big
    project.run("clean", "--all", check=True)
    before = runs(project)
    assert project.build() == {"big": "restored", "small": "restored"}
    assert runs(project) == before
    assert project.path("out/big.bin").read_bytes() == big and project.read("out/small.txt") == small
    assert os.stat(project.path("out/big.bin")).st_ino != os.stat(cache / blob_rel(digest)).st_ino


def test_a_damaged_inline_blob_is_detected_on_restore(project: Any) -> None:
    chain(project)
    project.build()
    digest = hash_file(str(project.path("out/a.txt")))
    db = sqlite3.connect(project.path(".flowmake/cache/index.db"), isolation_level=None)
    try:
        assert db.execute("UPDATE blobs SET data = ? WHERE digest = ?",
                          (b"tampered\n", digest)).rowcount == 1
    finally:
        db.close()
    project.run("clean", "--all", check=True)
    result = project.run("build", "--json", check=True)
    statuses = {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}
    assert statuses == {"a": "built", "b": "restored", "tree": "restored"}
    assert "a: cannot restore from the cache" in result.stderr and digest in result.stderr
    assert "damaged" in result.stderr
    assert project.read("out/a.txt") == "b\na\n"
    assert blobs(project.path(".flowmake/cache"))[digest] == b"b\na\n"  # saved again, whole


def test_an_unusable_index_never_fails_a_build(project: Any) -> None:
    chain(project)
    project.write(".flowmake/cache/index.db", "not a database at all " * 10)
    result = project.run("build", "--json", check=True)
    assert {t["status"] for t in json.loads(result.stdout)["targets"]} == {"built"}
    assert "a: outputs not cached" in result.stderr and "not a database" in result.stderr
    status = project.run("cache", "status", check=2)
    assert "index.db" in status.stderr and "deleting the cache folder is safe" in status.stderr
    shutil.rmtree(project.path(".flowmake/cache"))
    project.run("clean", "--all", check=True)
    project.build()
    project.run("clean", "--all", check=True)
    assert set(project.build().values()) == {"restored"}


def many(tag: str, other: str, n: int) -> str:
    """``n`` targets after a gate that opens once the ``other`` project's build reached
    its own (so that both save at the same time). The even targets are the same in every
    project (the same key, the same blob), the odd ones differ; and one large output."""
    gate = (f'[targets.gate]\ncmd = "touch ../{tag}.ready; for i in $(seq 600); do'
            f' [ -e ../{other}.ready ] && break; sleep 0.05; done; echo open > ${{outputs}}"\n'
            'outputs = ["out/gate.txt"]\n')
    targets = [f'[targets.t{i}]\ncmd = "echo {"same" if i % 2 == 0 else tag} {i} > ${{outputs}}"\n'
               f'outputs = ["out/t{i}.txt"]\ndeps = ["gate"]\n' for i in range(n)]
    targets.append(f'[targets.big]\ncmd = "yes {tag} | head -c {2 * INLINE_BLOB} > ${{outputs}}"\n'
                   'outputs = ["out/big.txt"]\ndeps = ["gate"]\n')
    return "\n".join([gate, *targets])


@pytest.mark.slow
def test_two_builds_save_to_one_cache_at_once(make_project: Any, tmp_path: Path) -> None:
    n = 150
    shared = tmp_path / "shared-cache"
    projects = [make_project(tag).flow(f'[flow]\ncache = "{shared}"\n\n' + many(tag, other, n))
                for tag, other in (("one", "two"), ("two", "one"))]
    procs = [p.popen("build", "-j2") for p in projects]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    keys = entries(shared)
    # two gates and two bigs; the even targets' entries are the same in both projects
    assert len(keys) == 2 + n + n // 2 + 2
    stored = blobs(shared)
    assert len(stored) == 1 + n + n // 2 + 2  # both gates wrote "open"
    assert all(hash_bytes(data) == digest for digest, data in stored.items())
    for project in projects:
        project.run("clean", "--all", check=True)
        assert set(project.build().values()) == {"restored"}
        assert project.read("out/t1.txt") == f"{project.root.name} 1\n"


# -- a folder remote: two clones ---------------------------------------------------------------


def clone(source: Any, make_project: Any, name: str) -> Any:
    other = make_project(name)
    shutil.copytree(source.root, other.root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".flowmake", "out"))
    return other


def test_second_clone_restores_everything_from_a_folder_remote(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    chain(project, f'[flow]\nremote = "{tmp_path}/remote"\n')
    project.build()
    assert len(remote_entries(tmp_path / "remote")) == 3
    other = clone(project, make_project, "clone")
    before = runs(project)
    assert project.root.parent == other.root.parent  # the same runs.log: one count
    assert other.states("a")["a"]["state"] == "restorable"
    result = other.json("build", check=True)
    assert {t["status"] for t in result["targets"]} == {"restored"}
    assert runs(project) == before
    assert other.read("out/t/x") == project.read("out/t/x")


def test_a_relative_remote_folder_and_file_url(project: Any, make_project: Any,
                                               tmp_path: Path) -> None:
    chain(project, '[flow]\nremote = "../remote-rel"\n')
    project.build()
    assert len(remote_entries(tmp_path / "remote-rel")) == 3
    other = clone(project, make_project, "clone")
    other.edit_flow('remote = "../remote-rel"', f'remote = "file://{tmp_path}/remote-rel"')
    assert set(other.build().values()) == {"restored"}


def test_a_read_only_remote_is_never_written(project: Any, make_project: Any,
                                             tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    chain(project, f'[flow]\nremote = "{remote}"\nremote_readonly = true\n')
    project.build()
    assert not remote.exists()
    project.edit_flow("remote_readonly = true", "remote_readonly = false")
    project.run("clean", "--all", check=True)
    project.build()  # restored from the local cache: restores push nothing
    assert not remote.exists()
    project.write("src/a.txt", "z\n")
    project.build()
    listing = sorted(str(p.relative_to(remote)) for p in remote.rglob("*"))
    assert len(remote_entries(remote)) == 3
    other = clone(project, make_project, "clone")
    other.edit_flow("remote_readonly = false", "remote_readonly = true")
    other.write("src/a.txt", "new content\n")  # builds what the remote lacks...
    assert set(other.build().values()) == {"built"}
    assert sorted(str(p.relative_to(remote)) for p in remote.rglob("*")) == listing  # ...no push
    assert "read-only" in other.run("cache", "push", check=2).stderr


def test_a_remote_no_plugin_serves_is_exit_2(project: Any) -> None:
    chain(project, '[flow]\nremote = "nosuchproto://bucket/cache"\n')
    result = project.run("build", check=2)
    assert "flow.remote" in result.stderr and "nosuchproto://" in result.stderr
    assert not project.exists("out/a.txt")


def test_the_environment_can_make_the_remote_read_only(project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    chain(project, f'[flow]\nremote = "{remote}"\n')
    assert set(project.build(env={"FLOWMAKE_REMOTE_READONLY": "1"}).values()) == {"built"}
    assert not remote.exists()
    doc = project.json("cache", "status", env={"FLOWMAKE_REMOTE_READONLY": "yes"}, check=True)
    assert doc["remote_readonly"] is True
    bad = project.run("build", env={"FLOWMAKE_REMOTE_READONLY": "maybe"}, check=2)
    assert "FLOWMAKE_REMOTE_READONLY" in bad.stderr
    project.edit_flow("[flow]", "[flow]\nremote_readonly = true")
    assert project.json("cache", "push", env={"FLOWMAKE_REMOTE_READONLY": "0"},
                        check=True)["entries"] == 3
    assert len(remote_entries(remote)) == 3


def test_a_corrupt_remote_blob_is_rejected_and_the_target_rebuilt(
        project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    chain(project, f'[flow]\nremote = "{remote}"\n')
    project.build()
    digest = hash_file(str(project.path("out/a.txt")))
    bad = remote / "blobs" / digest[:2] / digest
    os.chmod(bad, 0o644)
    bad.write_text("tampered\n")
    other = clone(project, make_project, "clone")
    result = other.run("build", "--json", check=True)
    statuses = {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}
    assert statuses["a"] == "built"
    assert f"blobs/{digest[:2]}/{digest}" in result.stderr and "warning" in result.stderr
    assert other.read("out/a.txt") == "b\na\n"
    assert hash_file(str(bad)) == digest  # the rebuild's push replaced the bad blob


def test_cache_push_and_pull(project: Any, make_project: Any, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    chain(project)
    project.build()
    assert "no remote" in project.run("cache", "push", check=2).stderr
    project.edit_flow("[targets.a]", f'[flow]\nremote = "{remote}"\n\n[targets.a]')
    doc = project.json("cache", "push", check=True)
    # 5 blob references, 4 blobs: out/t/x is a copy of out/b.txt, stored once (the parallel
    # pushes of b and tree may both send it)
    assert doc["entries"] == 3 and doc["uploaded"] + doc["present"] == 5
    assert len(list(remote.glob("blobs/*/*"))) == 4 and len(remote_entries(remote)) == 3
    # the remote keeps one file per blob and record, whatever the local layout
    assert all(hash_file(str(p)) == p.name for p in remote.glob("blobs/*/*")
               if not p.read_bytes().startswith(b'{"files"'))
    assert project.json("cache", "push", check=True)["present"] == 5
    other = clone(project, make_project, "clone")
    pulled = other.json("cache", "pull", check=True)
    assert pulled["entries"] == 3 and pulled["blobs"] == 4 and pulled["missing"] == 0
    shutil.rmtree(remote)  # everything the build needs is now local
    assert set(other.build().values()) == {"restored"}
    assert "pulled 0 entries" in other.run("cache", "pull", check=True).stdout


def test_cache_gc(project: Any) -> None:
    chain(project)
    project.build()
    cache = project.path(".flowmake/cache")
    first = entries(cache)
    project.write("src/a.txt", "other\n")
    project.build()
    assert len(entries(cache)) == 6
    doc = project.json("cache", "gc", "--max-size", "0", check=True)
    assert doc["removed_entries"] == 3 and doc["entries"] == 3
    assert entries(cache).isdisjoint(first)  # the current records' entries stay
    assert set(project.build().values()) == {"fresh"}
    project.run("clean", "--all", check=True)
    assert project.json("cache", "gc", "--max-age", "0", check=True)["entries"] == 0
    assert "--max-size" in project.run("cache", "gc", "--max-size", "lots", check=2).stderr


# -- URL inputs and outputs (file:// through the local backend) ------------------------------------


def test_url_inputs_and_outputs(project: Any, tmp_path: Path) -> None:
    ext = tmp_path / "external"
    ext.mkdir()
    (ext / "in.txt").write_text("one\n")
    project.flow(f"""
        [targets.fetch]
        cmd = "cp {ext}/in.txt {ext}/copy.txt; echo ${{outputs}}"
        inputs = ["file://{ext}/in.txt"]
        outputs = ["file://{ext}/copy.txt"]

        [targets.use]
        cmd = "cat {ext}/copy.txt > ${{outputs}}"
        inputs = ["file://{ext}/copy.txt"]
        outputs = ["out/use.txt"]
        """)
    result = project.run("build", check=True)
    assert f"file://{ext}/copy.txt" in result.stdout
    assert set(project.build().values()) == {"fresh"}
    (ext / "in.txt").write_text("two\n")
    states = project.states()
    assert any(f"file://{ext}/in.txt" in r for r in states["fetch"]["reasons"])
    assert project.build() == {"fetch": "built", "use": "built"}
    assert project.read("out/use.txt") == "two\n"
    (ext / "copy.txt").write_text("edited elsewhere\n")
    assert project.build() == {"fetch": "restored", "use": "fresh"}  # put back from the cache
    assert (ext / "copy.txt").read_text() == "two\n"
    assert "removed file://" in project.run("clean", "fetch", check=True).stdout
    assert not (ext / "copy.txt").exists() and (ext / "in.txt").exists()


def test_a_missing_url_input_is_exit_2_naming_it(project: Any, tmp_path: Path) -> None:
    project.flow(f"""
        [targets.use]
        cmd = "true"
        inputs = ["file://{tmp_path}/nowhere.csv"]
        outputs = ["out/x"]
        """)
    result = project.run("build", check=2)
    assert f"file://{tmp_path}/nowhere.csv" in result.stderr and "use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_python_target_url_output_restored_in_a_clone(project: Any, make_project: Any,
                                                     tmp_path: Path) -> None:
    ext = tmp_path / "bucket"
    project.flow(f"""
        [flow]
        remote = "{tmp_path}/remote"

        [targets.make]
        python = "steps:make"
        outputs = ["file://{ext}/rows.json"]

        [targets.total]
        python = "steps:total"
        inputs = {{ rows = "file://{ext}/rows.json" }}
        outputs = ["out/total.json"]
        """, {"steps.py": "def make():\n    print('making')\n    return [1, 2, 3]\n\n"
                          "def total(rows):\n    return {'total': sum(rows)}\n"})
    assert set(project.build().values()) == {"built"}
    assert json.loads((ext / "rows.json").read_text()) == [1, 2, 3]
    shutil.rmtree(ext)
    other = clone(project, make_project, "clone")
    assert set(other.build().values()) == {"restored"}
    assert json.loads((ext / "rows.json").read_text()) == [1, 2, 3]
    assert json.loads(other.read("out/total.json")) == {"total": 6}


def test_a_build_killed_between_batched_saves_leaves_only_whole_entries(project: Any) -> None:
    """Saves are written in batches (one transaction per WRITE_BATCH rows or
    WRITE_SECONDS): a build killed with SIGKILL loses at most the entries not yet
    written, and every record left names blobs that are there. The next build from clean
    restores what was cached and builds the rest, with no warning."""
    n = 30
    flow = "".join(f'[targets.t{i}]\ncmd = "echo content {i} > ${{outputs}}; echo t{i} >> ../runs.log"\n'
                   f'outputs = ["out/t{i}.txt"]\n' for i in range(n))
    flow += '[targets.slow]\ncmd = "sleep 5; touch ${outputs}"\noutputs = ["out/slow"]\n'
    project.flow(flow)
    proc = project.popen("build", "-j2")
    project.wait_for(lambda: len(runs(project)) >= n, timeout=60, what="the small targets")
    time.sleep(1.2)  # the first batch, written by a lookup or a save after WRITE_SECONDS
    proc.kill()
    proc.wait()
    local = LocalCache(project.root / ".flowmake" / "cache")
    try:
        records = [info.record for info in local.actions()]
        assert records and all(r is not None for r in records)
        for record in records:
            assert record is not None and all(local.has_blob(d) for d in local.blobs_of(record))
    finally:
        local.close()
    project.run("clean", "--all", check=0)
    before = len(runs(project))
    result = project.run("build", "-j2", check=0)
    assert "warning" not in result.stderr, result.stderr
    assert len(runs(project)) - before == n - len(records)  # the cached ones restored
    assert all(project.read(f"out/t{i}.txt") == f"content {i}\n" for i in range(n))
