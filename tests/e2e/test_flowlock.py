"""flow.lock (SPEC §7) through the command: written, stable, read by fresh clones.

A "clone" here is the project copied to another folder without .flowmake/ (what git
gives a colleague or a CI job: tracked files only); tests/e2e/test_precommit.py does the
same with a real git repository.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from flowmake.config.flowfiles import tomllib

FLOW = """
[params]
n = 3

[targets.raw]
cmd = "echo ran >> runs.log; seq ${params.n} > ${outputs}"
inputs = ["gen.txt"]
outputs = ["data/raw.txt"]

[targets.report]
cmd = "echo ran >> runs.log; wc -l < ${inputs} > ${outputs}"
inputs = ["data/raw.txt"]
outputs = ["out/report.txt"]
env = ["LOCK_TEST_ENV"]

[targets.fit]
matrix = { k = [1, 2] }
cmd = "echo ran >> runs.log; echo ${k} > ${outputs}"
inputs = ["data/raw.txt"]
outputs = ["out/fit-${k}.txt"]

[targets.phony]
cmd = "echo ran >> runs.log"
deps = ["report"]

[targets.after]
cmd = "echo ran >> runs.log; echo done > ${outputs}"
deps = ["phony"]
outputs = ["out/after.txt"]
"""
NAMES = ["after", "fit[k=1]", "fit[k=2]", "phony", "raw", "report"]


@pytest.fixture
def built(project):
    project.flow(FLOW, {"gen.txt": "g\n"}, cache=False)
    assert set(project.build().values()) == {"built"}
    return project


def clone(project, make_project, name: str, *, outputs: bool = True):
    """The project's tracked files in a new folder: no .flowmake/, no runs.log, and
    without the outputs when they are gitignored."""
    other = make_project(name)
    for path in project.root.rglob("*"):
        rel = path.relative_to(project.root)
        if rel.parts[0] in (".flowmake",) or rel.name == "runs.log" or path.is_dir():
            continue
        if not outputs and rel.parts[0] in ("data", "out"):
            continue
        (other.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, other.root / rel)
    return other


def runs(project) -> int:
    return project.read("runs.log").count("ran") if project.exists("runs.log") else 0


def lock(project) -> dict:
    return tomllib.loads(project.read("flow.lock"))


# -- what is written ---------------------------------------------------------------------


def test_build_writes_one_sorted_entry_per_target(built):
    doc = lock(built)
    assert doc["version"] == 1
    assert list(doc["targets"]) == NAMES  # sorted, matrix instances each their own
    raw = doc["targets"]["raw"]
    assert raw["action"] == "echo ran >> runs.log; seq 3 > data/raw.txt"
    assert raw["project_params"] == {"n": 3}
    assert set(raw["inputs"]) == {"gen.txt"}
    assert list(raw["outputs"]) == ["data/raw.txt"]
    assert set(doc["targets"]["report"]["env"]) == {"LOCK_TEST_ENV"}
    assert doc["targets"]["after"]["deps"] == {"phony": doc["targets"]["phony"]["key"]}
    text = built.read("flow.lock")
    assert text.startswith("# flow.lock")
    for word in (str(built.root), socket.gethostname(), os.environ.get("USER") or "root"):
        assert word not in text


def test_the_same_project_in_two_folders_gives_the_same_bytes(make_project):
    first, second = make_project("one/deep/a"), make_project("two")
    for p in (first, second):
        p.flow(FLOW, {"gen.txt": "g\n"}, cache=False)
        assert set(p.build().values()) == {"built"}
    assert first.read("flow.lock") == second.read("flow.lock")


def test_a_build_that_changed_no_record_leaves_the_file_untouched(built):
    before = built.path("flow.lock").stat()
    text = built.read("flow.lock")
    assert set(built.build().values()) == {"fresh"}
    assert set(built.build("-B").values()) == {"built"}  # records rewritten, same content
    after = built.path("flow.lock").stat()
    assert built.read("flow.lock") == text
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)


def test_a_rebuild_rewrites_only_its_entry(built):
    before = lock(built)["targets"]
    built.write("gen.txt", "changed\n")
    built.build("raw")
    after = lock(built)["targets"]
    assert after["raw"]["inputs"] != before["raw"]["inputs"]
    assert {n: e for n, e in after.items() if n != "raw"} == {
        n: e for n, e in before.items() if n != "raw"}


def test_the_replaced_file_is_kept_aside_until_the_command_has_ended(built):
    """A rewrite gives the old flow.lock a second name in .flowmake/ first (its blocks
    are then freed after the command, not by the rename: fsutil.keep_blocks); the name is
    gone once the command has ended, and one a killed command left is never read."""
    aside = built.path(".flowmake/flow.lock.replaced")
    built.write("gen.txt", "edited\n")
    assert built.build()["raw"] == "built"
    built.wait_for(lambda: not aside.exists(), what="the replaced flow.lock to go")
    aside.write_text("junk a killed build left\n")
    built.write("gen.txt", "edited again\n")
    assert built.build()["raw"] == "built"
    assert lock(built)["targets"]["raw"]["inputs"]  # the new file, whole
    built.wait_for(lambda: not aside.exists(), what="the replaced flow.lock to go")
    assert set(built.build().values()) == {"fresh"}


def test_a_few_changed_entries_are_spliced_and_the_file_stays_a_full_render(built):
    # a build that changed a few entries rewrites flow.lock from its own text with the
    # kept layout (store/lockindex.py); after an edit, a removal and an addition the
    # file's bytes are those of a full render of its entries, and a later build reads
    # the kept entries right
    from flowmake.store import flowlock

    def full_render() -> str:
        entries = flowlock.read(built.path("flow.lock"))
        assert entries is not None
        return flowlock.render(entries)

    built.write("gen.txt", "edited\n")
    assert built.build()["raw"] == "built"  # an edit
    assert built.read("flow.lock") == full_render()
    built.write("flow.toml", FLOW.replace('[targets.after]', '[targets.later]')
                .replace('deps = ["phony"]', 'deps = ["phony"]  # renamed'))
    assert built.build()["later"] == "built"  # "after" removed, "later" added
    assert built.read("flow.lock") == full_render()
    assert "later" in lock(built)["targets"] and "after" not in lock(built)["targets"]
    assert set(built.build().values()) == {"fresh"}
    built.write("gen.txt", "g\n")
    assert built.build()["raw"] == "built"  # the kept entries are the ones compared
    assert built.read("flow.lock") == full_render()
    shutil.rmtree(built.path(".flowmake"))  # a fresh clone's view: all fresh from the file
    assert set(built.build().values()) == {"fresh"}


def test_clean_removes_entries_and_a_removed_target_leaves_the_lock(built):
    built.run("clean", "fit", check=True)
    assert "fit[k=1]" not in lock(built)["targets"]
    assert "raw" in lock(built)["targets"]
    built.edit_flow('[targets.phony]\ncmd = "echo ran >> runs.log"\ndeps = ["report"]\n', "")
    built.edit_flow('deps = ["phony"]', 'deps = ["report"]')
    built.build()  # fit is built again; phony is gone from flow.toml and from the lock
    assert sorted(lock(built)["targets"]) == ["after", "fit[k=1]", "fit[k=2]", "raw", "report"]


def test_accept_writes_the_lock(project):
    project.flow(FLOW, {"gen.txt": "g\n", "data/raw.txt": "1\n2\n3\n"}, cache=False)
    project.run("accept", "raw", check=True)
    assert list(lock(project)["targets"]) == ["raw"]


def test_lock_false_writes_and_reads_no_lock(built, make_project):
    text = built.read("flow.lock")
    built.edit_flow("cache = false", "cache = false\nlock = false")
    built.write("gen.txt", "changed\n")
    built.build()
    assert built.read("flow.lock") == text  # neither rewritten nor removed
    other = clone(built, make_project, "other")
    assert all(e["state"] == "stale" for e in other.states().values())
    other.build()
    assert other.read("flow.lock") == text


QUICK_THEN_SLOW = """
[targets.quick]
cmd = "echo q > ${outputs}"
outputs = ["out/quick.txt"]

[targets.slow]
cmd = "touch started; sleep 30; echo s > ${outputs}"
inputs = ["out/quick.txt"]
outputs = ["out/slow.txt"]
"""


def signalled_mid_build(project, sig: int):
    """A build stopped by ``sig`` once quick is built and slow is running."""
    project.flow(QUICK_THEN_SLOW, cache=False)
    proc = project.popen("build")
    project.wait_for(lambda: project.exists("started"), timeout=20, what="the slow target")
    proc.send_signal(sig)
    return proc


def test_an_interrupted_build_leaves_a_valid_lock_of_what_finished(project):
    proc = signalled_mid_build(project, signal.SIGINT)
    proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert list(lock(project)["targets"]) == ["quick"]


def test_a_killed_build_s_records_reach_the_lock_at_the_next_build(project):
    proc = signalled_mid_build(project, signal.SIGKILL)
    proc.wait(timeout=10)
    assert not project.exists("flow.lock")  # killed before it could write it
    project.build("quick")  # quick is fresh: no record changes in this build itself
    assert list(lock(project)["targets"]) == ["quick"]


# -- fresh clones ------------------------------------------------------------------------


def test_a_fresh_clone_with_committed_outputs_is_all_fresh(built, make_project):
    other = clone(built, make_project, "elsewhere/clone")
    assert other.run("status", "--check").returncode == 0
    states = other.states()
    assert {e["state"] for e in states.values()} == {"fresh"}
    assert {e["source"] for e in states.values()} == {"lock"}
    assert set(other.build().values()) == {"fresh"}
    assert runs(other) == 0
    # The build adopted the entries: from now on the local records answer.
    assert {e["source"] for e in other.states().values()} == {"record"}
    assert other.read("flow.lock") == built.read("flow.lock")


def test_a_clone_with_an_edited_input_names_what_changed_since_the_lock(built, make_project):
    other = clone(built, make_project, "clone")
    other.write("gen.txt", "edited\n")
    states = other.states()
    assert states["raw"]["state"] == "stale"
    assert states["raw"]["reasons"] == ["input changed: gen.txt"]
    assert states["fit[k=1]"]["reasons"] == ["upstream stale: raw"]
    why = other.json("why", "raw")
    assert why["compared_with"] == "lock"
    [reason] = why["reasons"]
    assert reason["subject"] == "gen.txt"
    assert reason["old"] == lock(built)["targets"]["raw"]["inputs"]["gen.txt"]
    assert reason["new"] != reason["old"]
    text = other.run("why", "raw").stdout
    assert "flow.lock key:" in text and "→" in text
    # A param changed since the lock entry: named old → new too.
    assert "param params.n: 3 → 4" in other.run("why", "raw", "-p", "n=4").stdout
    assert other.run("status", "--check").returncode == 1


def test_an_entry_edited_to_lose_an_output_vouches_for_none_of_them(project, make_project):
    """A merge resolved by hand that dropped an output's line from flow.lock: in a fresh
    clone the entry has the very key but no hash for that output, which was changed
    since. Stale, named, rebuilt, and the whole entry written back."""
    project.flow("""
[targets.two]
cmd = "echo a > out/a.txt && echo b > out/b.txt"
outputs = ["out/a.txt", "out/b.txt"]
""", cache=False)
    project.build()
    whole = project.read("flow.lock")
    other = clone(project, make_project, "clone")
    other.write("flow.lock", "".join(
        line for line in whole.splitlines(keepends=True) if '"out/b.txt" =' not in line))
    other.write("out/b.txt", "changed in the clone\n")
    states = other.states()
    assert states["two"]["state"] == "stale"
    assert states["two"]["reasons"] == ["output not recorded: out/b.txt"]
    assert other.run("status", "--check").returncode == 1
    assert other.build() == {"two": "built"}
    assert other.read("out/b.txt") == "b\n"
    assert other.read("flow.lock") == whole


def test_a_clone_without_outputs_restores_from_a_shared_folder_remote(make_project):
    first = make_project("first")
    remote = first.root.parent / "shared-cache"
    first.flow(FLOW, {"gen.txt": "g\n"})
    first.edit_flow("[params]", f'[flow]\nremote = "{remote}"\n\n[params]')
    first.build()
    assert runs(first) == 6
    other = clone(first, make_project, "second", outputs=False)
    states = other.states()
    # Each downstream target is judged on the outputs its upstream's restore brings back.
    assert {n: e["state"] for n, e in states.items()} == {
        **dict.fromkeys(NAMES, "restorable"), "phony": "fresh"}
    result = other.build()
    assert runs(other) == 0, "nothing may run"
    assert set(result.values()) <= {"restored", "fresh"}
    assert other.read("out/report.txt") == first.read("out/report.txt")
    assert other.run("status", "--check").returncode == 0


# -- a lock that cannot be read ----------------------------------------------------------


CONFLICT = """\
version = 1

[targets.raw]
<<<<<<< HEAD
key = "aaaa"
=======
key = "bbbb"
>>>>>>> theirs
"""


@pytest.mark.parametrize("text,line,words", [
    (CONFLICT, 4, "merge conflict"),
    ("version = 1\n[targets.raw\nkey = 1\n", 2, "invalid TOML"),
    ("version = 99\n", 1, "unknown format version 99"),
    ('version = 1\n\n[targets.raw]\nkey = 3\n', 3, "needs a string 'key'"),
])
def test_an_unreadable_lock_is_exit_2_naming_its_line(built, text, line, words):
    built.write("flow.lock", text)
    for command in (["build"], ["status"], ["build", "-n"], ["why", "raw"]):
        result = built.run(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert f"flow.lock:{line}:" in result.stderr, result.stderr
        assert words in result.stderr
        assert "delete" in result.stderr and "Traceback" not in result.stderr
    assert runs(built) == 6  # nothing ran


def test_deleting_a_conflicted_lock_as_the_hint_says_recovers(built):
    good = built.read("flow.lock")
    built.write("flow.lock", CONFLICT)
    assert built.run("build").returncode == 2
    built.path("flow.lock").unlink()
    assert set(built.build().values()) == {"fresh"}  # the local records still hold
    built.build("-B")  # records rewritten: the lock with them
    assert built.read("flow.lock") == good


def test_a_lock_of_another_project_only_matches_nothing(built):
    built.write("flow.lock", 'version = 1\n\n[targets.elsewhere]\nkey = "x"\n\n'
                             '[targets.elsewhere.outputs]\n"a" = "b"\n')
    shutil.rmtree(built.path(".flowmake"))
    assert {e["state"] for e in built.states().values()} == {"stale"}
    built.build()
    assert "elsewhere" not in lock(built)["targets"]


def test_the_no_op_fast_path_never_reads_the_lock(built):
    past = built.path("flow.toml").stat().st_mtime - 30
    for path in built.root.rglob("*"):
        os.utime(path, (past, past))  # nothing racy: the fast path may be armed
    built.build()  # arms the no-op fast path
    built.write("flow.lock", CONFLICT)  # would be exit 2 if it were read
    result = built.run("build", "-v")
    assert result.returncode == 0, result.stderr
    assert "no-op fast path" in result.stderr


def test_lock_entries_hold_relative_paths_only(built):
    for entry in lock(built)["targets"].values():
        for path in [*entry.get("inputs", {}), *entry["outputs"]]:
            assert not Path(path).is_absolute()
            assert ".." not in Path(path).parts
    assert json.dumps(lock(built)).count(str(built.root)) == 0
