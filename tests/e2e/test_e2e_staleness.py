"""What is fresh, what is stale and why: content hashes, params, env, globs, outputs.

Every test drives the real ``flowmake`` command on a real project folder.
"""

from __future__ import annotations

import os
import time

import pytest

CHAIN = """
[params]
lr = 0.1
seed = 1

[targets.a]
help = "copy the source"
cmd = "cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs} && echo lr=${params.lr} >> ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]

[targets.c]
cmd = "tr a-z A-Z < ${inputs} > ${outputs}"
inputs = ["out/b.txt"]
outputs = ["out/c.txt"]

[targets.d]
help = "independent of the chain"
cmd = "echo seed=${params.seed} > ${outputs}"
outputs = ["out/d.txt"]

[targets.report]
cmd = "echo done > ${outputs}"
outputs = ["out/report.txt"]
deps = ["c"]
"""

ALL = {"a", "b", "c", "d", "report"}


@pytest.fixture
def chain(project):
    return project.flow(CHAIN, {"src/a.txt": "hello\n"}, cache=False)


def test_first_build_builds_everything_and_second_is_all_fresh(chain):
    first = chain.json("build", check=True)
    assert first["result"] == "success"
    assert isinstance(first["run_id"], int)
    assert {t["name"]: t["status"] for t in first["targets"]} == dict.fromkeys(ALL, "built")
    for target in first["targets"]:
        assert set(target) >= {"name", "status", "duration"}
        assert isinstance(target["duration"], (int, float)) and target["duration"] >= 0
    assert chain.read("out/c.txt") == "HELLO\nLR=0.1\n"
    assert chain.read("out/d.txt") == "seed=1\n"

    second = chain.json("build", check=True)
    assert second["result"] == "success"
    assert second["run_id"] != first["run_id"]
    assert {t["name"]: t["status"] for t in second["targets"]} == dict.fromkeys(ALL, "fresh")
    assert chain.run("status", "--check").returncode == 0

    assert chain.build("-B") == dict.fromkeys(ALL, "built")  # -B: even the fresh ones


def test_plain_build_output_and_summary(chain):
    result = chain.run("build", check=True)
    assert "flowmake: success" in result.stdout
    assert "5 built" in result.stdout
    again = chain.run("build", check=True)
    assert "5 fresh" in again.stdout and "0 built" in again.stdout


def test_status_json_shape_before_and_after_a_build(chain):
    before = chain.json("status", check=True)
    assert set(before) >= {"targets"}
    entries = {t["name"]: t for t in before["targets"]}
    assert set(entries) == ALL
    for entry in entries.values():
        assert set(entry) >= {"name", "state", "reasons", "upstream"}
        assert entry["state"] == "stale"
        assert any("never built" in r for r in entry["reasons"])
    assert entries["a"]["upstream"] == []
    assert entries["b"]["upstream"] == ["a"]
    assert entries["c"]["upstream"] == ["b"]
    assert entries["report"]["upstream"] == ["c"]
    assert not chain.exists("out/a.txt"), "status must change nothing"
    checked = chain.run("status", "--check")
    assert checked.returncode == 1, "--check: stale targets are exit 1"

    chain.build()
    after = chain.states()
    assert {n: e["state"] for n, e in after.items()} == dict.fromkeys(ALL, "fresh")
    assert all(e["reasons"] == [] for e in after.values())


def test_status_of_one_target_covers_its_upstream(chain):
    chain.build()
    chain.write("src/a.txt", "changed\n")
    states = chain.states("b")
    assert set(states) == {"a", "b"}
    assert states["a"]["state"] == "stale" and states["b"]["state"] == "stale"


def test_list_json_shape(chain):
    doc = chain.json("list", check=True)
    entries = {t["name"]: t for t in doc["targets"]}
    assert set(entries) == ALL
    for entry in entries.values():
        assert set(entry) >= {"name", "kind", "help", "inputs", "outputs", "deps"}
        assert entry["kind"] == "cmd"
    assert entries["a"]["help"] == "copy the source"
    assert entries["b"]["help"] == ""
    assert entries["a"]["inputs"] == ["src/a.txt"]
    assert entries["a"]["outputs"] == ["out/a.txt"]
    assert entries["b"]["deps"] == ["a"]
    assert entries["report"]["deps"] == ["c"]
    assert entries["d"]["deps"] == []
    plain = chain.run("list", check=True)
    assert "copy the source" in plain.stdout and "independent of the chain" in plain.stdout


def test_touching_an_input_without_changing_it_rebuilds_nothing(chain):
    chain.build()
    src = chain.path("src/a.txt")
    future = time.time() + 100
    os.utime(src, (future, future))
    assert chain.build() == dict.fromkeys(ALL, "fresh")
    # Rewritten with the same bytes (a re-checkout): still nothing to do.
    src.write_text("hello\n")
    assert chain.run("status", "--check").returncode == 0


def test_changed_input_rebuilds_it_and_its_downstream_only(chain):
    chain.build()
    chain.write("src/a.txt", "world\n")
    states = chain.states()
    assert states["a"]["state"] == "stale"
    assert "input changed: src/a.txt" in states["a"]["reasons"]
    assert states["b"]["state"] == "stale" and states["c"]["state"] == "stale"
    assert states["d"]["state"] == "fresh"
    assert chain.run("status", "--check", "d").returncode == 0  # d alone is fresh
    statuses = chain.build()
    statuses.pop("report")  # downstream through `deps`: see test_deps_enter_the_key
    assert statuses == {"a": "built", "b": "built", "c": "built", "d": "fresh"}
    assert chain.read("out/c.txt") == "WORLD\nLR=0.1\n"


def test_early_cutoff_identical_output_spares_downstream(chain):
    chain.build()
    # Another command with byte-identical output.
    chain.edit_flow('cmd = "cat ${inputs} > ${outputs}"', 'cmd = "cp ${inputs} ${outputs}"')
    # A dry run cannot know the output will be the same: it counts downstream in.
    dry = {t["name"]: t["status"] for t in chain.json("build", "-n")["targets"]}
    assert dry["a"] == "would-build" and dry["b"] == "would-build"
    statuses = chain.build()
    assert statuses["a"] == "built"
    assert statuses["b"] == "fresh"
    assert statuses["c"] == "fresh"
    assert statuses["report"] == "fresh"
    assert chain.run("status", "--check").returncode == 0


def test_early_cutoff_midway_stops_the_rebuild(chain):
    chain.build()
    # b now writes the same lines another way; c (upper-casing b) must not run.
    chain.edit_flow("cat ${inputs} > ${outputs} && echo lr=${params.lr} >> ${outputs}",
                    "(cat ${inputs}; echo lr=${params.lr}) > ${outputs}")
    statuses = chain.build()
    assert statuses == {"a": "fresh", "b": "built", "c": "fresh", "d": "fresh",
                        "report": "fresh"}


def test_param_override_rebuilds_only_the_targets_that_use_it(chain):
    chain.build()
    states = chain.states("-p", "lr=0.5")
    assert states["b"]["state"] == "stale"
    assert any("param" in r and "lr" in r for r in states["b"]["reasons"])
    assert states["a"]["state"] == "fresh"
    assert states["d"]["state"] == "fresh"

    statuses = chain.build("-p", "lr=0.5")
    statuses.pop("report")  # downstream through `deps`: see test_deps_enter_the_key
    assert statuses == {"a": "fresh", "b": "built", "c": "built", "d": "fresh"}
    assert chain.read("out/b.txt") == "hello\nlr=0.5\n"
    assert chain.build("-p", "lr=0.5") == dict.fromkeys(ALL, "fresh")

    statuses = chain.build("-p", "seed=7")  # lr back to 0.1 as well
    assert statuses["d"] == "built" and statuses["a"] == "fresh"
    assert chain.read("out/d.txt") == "seed=7\n"


def test_editing_params_in_flow_toml_rebuilds_only_their_users(chain):
    chain.build()
    chain.edit_flow("seed = 1", "seed = 2")
    states = chain.states()
    assert [n for n, e in states.items() if e["state"] != "fresh"] == ["d"]
    reasons = states["d"]["reasons"]
    assert any("param" in r and "seed" in r and "1" in r and "2" in r for r in reasons), reasons
    assert chain.build() == {"a": "fresh", "b": "fresh", "c": "fresh", "d": "built",
                             "report": "fresh"}
    assert chain.read("out/d.txt") == "seed=2\n"


def test_param_override_value_is_a_toml_literal_or_a_bare_word(project):
    project.flow("""
        [params]
        name = "x"

        [targets.t]
        cmd = "echo '${params.name}' > ${outputs}"
        outputs = ["out/t.txt"]
        """, cache=False)
    project.build("-p", "name=hello")
    assert project.read("out/t.txt") == "hello\n"
    project.build("-p", 'name="quoted words"')
    assert project.read("out/t.txt") == "quoted words\n"
    project.build("-p", "name=[1, 2]")
    assert project.read("out/t.txt") == "1 2\n"


def test_deps_order_the_build(project):
    project.flow("""
        [targets.first]
        cmd = "sleep 0.3; date +%s.%N > ${outputs}"
        outputs = ["out/first.txt"]

        [targets.second]
        cmd = "date +%s.%N > ${outputs}"
        outputs = ["out/second.txt"]
        deps = ["first"]
        """, cache=False)
    assert project.build("second", "-j2") == {"first": "built", "second": "built"}
    assert float(project.read("out/second.txt")) >= float(project.read("out/first.txt"))


def test_deps_enter_the_key(chain):
    chain.build()
    chain.write("src/a.txt", "changed\n")
    dry = {t["name"]: t["status"] for t in chain.json("build", "-n")["targets"]}
    assert dry["report"] == "would-build"
    statuses = chain.build()
    assert statuses["c"] == "built"
    assert statuses["report"] == "built"


def test_deps_keep_early_cutoff_and_name_the_dependency(chain):
    chain.build()
    chain.write("src/a.txt", "HELLO\n")  # a and b change, c's upper-cased bytes do not
    statuses = chain.build()
    assert statuses["c"] == "built"
    assert statuses["report"] == "fresh"  # early cutoff through deps
    chain.write("src/a.txt", "other\n")
    chain.build("c")  # c changes; report is not built yet
    states = chain.states()
    assert states["report"]["state"] == "stale"
    assert "dependency changed: c" in states["report"]["reasons"]


def test_a_dep_without_outputs_enters_by_its_key(project):
    project.flow("""
        [params]
        v = 1
        [targets.setup]
        cmd = "echo setting up ${params.v}"
        [targets.use]
        cmd = "echo used > ${outputs}"
        outputs = ["used.txt"]
        deps = ["setup"]
        """, cache=False)
    assert project.build() == {"setup": "built", "use": "built"}
    assert project.build() == {"setup": "fresh", "use": "fresh"}
    statuses = project.build("-p", "v=2")
    assert statuses == {"setup": "built", "use": "built"}


def test_dry_run_changes_nothing_and_names_stale_and_downstream(chain):
    chain.build()
    before = {p: chain.read(p) for p in ("out/a.txt", "out/b.txt", "out/c.txt")}
    chain.write("src/a.txt", "new\n")
    doc = chain.json("build", "-n", check=True)
    statuses = {t["name"]: t["status"] for t in doc["targets"]}
    assert statuses == {"a": "would-build", "b": "would-build", "c": "would-build",
                        "d": "fresh", "report": "would-build"}
    assert {p: chain.read(p) for p in before} == before
    plain = chain.run("build", "-n", check=True)
    assert "would build" in plain.stdout and "src/a.txt" in plain.stdout
    assert {p: chain.read(p) for p in before} == before
    # The records are untouched: the real build still has all the work to do.
    assert chain.build()["c"] == "built"


def test_dry_run_on_a_new_project_creates_no_outputs(chain):
    doc = chain.json("build", "-n", check=True)
    assert {t["status"] for t in doc["targets"]} == {"would-build"}
    assert not chain.path("out").exists()
    assert chain.build() == dict.fromkeys(ALL, "built")


def test_deleted_output_is_missing_and_rebuilt(chain):
    chain.build()
    chain.path("out/b.txt").unlink()
    states = chain.states()
    assert states["b"]["state"] == "stale"
    assert "output missing: out/b.txt" in states["b"]["reasons"]
    assert states["a"]["state"] == "fresh"
    assert chain.run("status", "--check").returncode == 1
    statuses = chain.build()
    assert statuses["b"] == "built"
    assert statuses["a"] == "fresh"
    assert statuses["c"] == "fresh"  # the same bytes came back: early cutoff
    assert chain.read("out/b.txt") == "hello\nlr=0.1\n"


def test_output_edited_by_hand_is_modified_and_rebuilt(chain):
    chain.build()
    chain.write("out/c.txt", "tampered\n")
    states = chain.states()
    assert states["c"]["state"] == "stale"
    assert "output modified: out/c.txt" in states["c"]["reasons"]
    assert chain.build()["c"] == "built"
    assert chain.read("out/c.txt") == "HELLO\nLR=0.1\n"


def test_declared_output_not_produced_fails_the_target(project):
    project.flow("""
        [targets.liar]
        cmd = "echo did nothing"
        outputs = ["out/never.txt"]

        [targets.after]
        cmd = "cat ${inputs} > ${outputs}"
        inputs = ["out/never.txt"]
        outputs = ["out/after.txt"]
        """, cache=False)
    doc = project.json("build", check=1)
    assert doc["result"] == "failed"
    by_name = {t["name"]: t for t in doc["targets"]}
    assert by_name["liar"]["status"] == "failed"
    assert "out/never.txt" in by_name["liar"].get("error", "")
    assert by_name["after"]["status"] == "skipped"
    plain = project.run("build")
    assert plain.returncode == 1
    assert "declared output not produced" in plain.stdout + plain.stderr
    assert project.states()["liar"]["state"] == "stale"


GLOB = """
[targets.all]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["src/*.txt"]
outputs = ["out/all.txt"]
"""


def test_glob_inputs_added_and_removed_files(project):
    project.flow(GLOB, {"src/a.txt": "A\n", "src/b.txt": "B\n"}, cache=False)
    project.build()
    assert project.read("out/all.txt") == "A\nB\n"

    project.write("src/notes.md", "not matched\n")
    assert project.states()["all"]["state"] == "fresh"

    project.write("src/c.txt", "C\n")
    states = project.states()
    assert states["all"]["state"] == "stale"
    assert any("input added" in r and "src/c.txt" in r for r in states["all"]["reasons"])
    assert project.build() == {"all": "built"}
    assert project.read("out/all.txt") == "A\nB\nC\n"

    project.path("src/a.txt").unlink()
    states = project.states()
    assert any("input removed" in r and "src/a.txt" in r for r in states["all"]["reasons"])
    assert project.build() == {"all": "built"}
    assert project.read("out/all.txt") == "B\nC\n"


def test_env_values_enter_the_key(project):
    project.flow("""
        [targets.greet]
        cmd = "echo \\"$$MYVAR\\" > ${outputs}"
        outputs = ["out/greet.txt"]
        env = ["MYVAR"]

        [targets.other]
        cmd = "echo other > ${outputs}"
        outputs = ["out/other.txt"]
        """, cache=False)
    one = {"MYVAR": "one"}
    assert project.build(env=one) == {"greet": "built", "other": "built"}
    assert project.read("out/greet.txt") == "one\n"
    assert project.build(env=one) == {"greet": "fresh", "other": "fresh"}

    states = project.states(env={"MYVAR": "two"})
    assert states["greet"]["state"] == "stale"
    assert any("env" in r and "MYVAR" in r for r in states["greet"]["reasons"])
    assert states["other"]["state"] == "fresh"
    assert project.build(env={"MYVAR": "two"}) == {"greet": "built", "other": "fresh"}
    assert project.read("out/greet.txt") == "two\n"

    assert project.states()["greet"]["state"] == "stale"  # unset is a value too


def test_deleting_the_state_folder_makes_everything_stale(chain):
    """...unless flow.lock still says what was built (SPEC §7): with both gone, stale."""
    import shutil

    chain.build()
    shutil.rmtree(chain.path(".flowmake"))
    assert {e["state"] for e in chain.states().values()} == {"fresh"}  # from flow.lock
    shutil.rmtree(chain.path(".flowmake"))
    chain.path("flow.lock").unlink()
    assert {e["state"] for e in chain.states().values()} == {"stale"}
    assert chain.build() == dict.fromkeys(ALL, "built")


def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen_when_racy(project):
    project.flow("""
        [targets.a]
        cmd = "cat ${inputs} > ${outputs}"
        inputs = ["in.txt"]
        outputs = ["out.txt"]
        """, {"in.txt": "aaaa\n"}, cache=False)
    src = project.path("in.txt")
    soon = time.time_ns() + 60 * 10**9  # an mtime too recent to trust, whatever the load
    os.utime(src, ns=(soon, soon))
    inode = src.stat().st_ino
    project.build()
    src.write_text("bbbb\n")  # same size, same inode ...
    os.utime(src, ns=(soon, soon))  # ... same mtime: only the content tells
    assert src.stat().st_ino == inode
    assert "input changed: in.txt" in project.states()["a"]["reasons"]
    assert project.build() == {"a": "built"}
    assert project.read("out.txt") == "bbbb\n"


def test_directory_inputs_and_outputs(project):
    project.flow("""
        [targets.dir]
        cmd = "mkdir -p ${outputs} && cp src/* ${outputs}/"
        inputs = ["src"]
        outputs = ["out/d"]

        [targets.use]
        cmd = "cat ${inputs}/* > ${outputs}"
        inputs = ["out/d"]
        outputs = ["out/use.txt"]
        """, {"src/a": "1\n", "src/b": "2\n"}, cache=False)
    assert project.build() == {"dir": "built", "use": "built"}
    assert project.read("out/use.txt") == "1\n2\n"

    project.write("out/d/a", "hand-edited\n")
    states = project.states()
    assert "output modified: out/d" in states["dir"]["reasons"]
    assert project.build() == {"dir": "built", "use": "fresh"}  # put back as it was
    assert project.read("out/d/a") == "1\n"

    project.write("src/c", "3\n")
    assert "input changed: src" in project.states()["dir"]["reasons"]
    assert project.build() == {"dir": "built", "use": "built"}
    assert project.read("out/use.txt") == "1\n2\n3\n"
