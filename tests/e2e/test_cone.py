"""Cone planning (cli/cone.py, issue 17): after an edit, only the changed paths' targets
and their downstream are checked; the rest of what the no-op snapshot vouched for is
fresh without a check. Never at the cost of a missed change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# a -> c -> d <- b; e on its own; p (python) reads src/e.txt through its code
FLOW = """
[flow]
cache = false

[params]
n = 1

[targets.a]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["src/b.txt"]
outputs = ["out/b.txt"]

[targets.c]
cmd = "if grep -q bad ${inputs}; then exit 1; fi; if grep -q slow ${inputs}; then sleep 30; fi; cat ${inputs} > ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/c.txt"]

[targets.d]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/b.txt", "out/c.txt"]
outputs = ["out/d.txt"]

[targets.e]
cmd = "cat ${inputs} > ${outputs} && echo ${params.n} >> ${outputs}"
inputs = ["src/e.txt"]
outputs = ["out/e.txt"]
env = ["FM_CONE_ENV"]

[targets.p]
python = "steps:write"
outputs = {text = "out/p.txt"}
"""

STEPS = "def write():\n    return {'text': 'one'}\n"
ALL = {"a", "b", "c", "d", "e", "p"}


def run(root: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "FM_CONE_ENV"}
    full = {**base, "NO_COLOR": "1", "FLOWMAKE_TRACE": "cone", **(env or {})}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=full, timeout=60)


def build(root: Path, *args: str, code: int = 0, env: dict[str, str] | None = None
          ) -> tuple[dict[str, str], str]:
    """The build's statuses by target, and its stderr."""
    done = run(root, "build", "--json", *args, env=env)
    assert done.returncode == code, done.stderr
    doc = json.loads(done.stdout)
    return {t["name"]: t["status"] for t in doc["targets"]}, done.stderr


def age(root: Path, seconds: float = 10.0) -> None:
    """Every mtime into the past: nothing is racy (modified just now)."""
    past = time.time() - seconds
    for path in [root / "flow.toml", *root.rglob("*")]:
        if ".flowmake" not in path.parts and path.exists():
            os.utime(path, (past, past))


def write(root: Path, rel: str, text: str, ago: float = 5.0) -> None:
    """Write ``rel`` with an mtime ``ago`` seconds back (new, and not racy)."""
    path = root / rel
    path.write_text(text)
    past = time.time() - ago
    os.utime(path, (past, past))


def armed(root: Path) -> None:
    """Built, aged, and built again all fresh: the snapshot is saved."""
    build(root)
    age(root)
    statuses, _ = build(root)
    assert set(statuses.values()) == {"fresh"}
    assert (root / ".flowmake" / "noop.marshal").exists()


def fast(root: Path) -> bool:
    done = run(root, "build", "-v")
    assert done.returncode == 0, done.stderr
    return "no-op fast path" in done.stderr


def built(statuses: dict[str, str]) -> set[str]:
    return {n for n, s in statuses.items() if s == "built"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    for name in ("a", "b", "e"):
        write(tmp_path, f"src/{name}.txt", f"{name}\n")
    (tmp_path / "steps.py").write_text(STEPS)
    (tmp_path / "flow.toml").write_text(FLOW)
    armed(tmp_path)
    return tmp_path


def test_an_edited_leaf_rebuilds_exactly_its_downstream_cone(root: Path) -> None:
    write(root, "src/a.txt", "a2\n")
    statuses, err = build(root)
    assert built(statuses) == {"a", "c", "d"}
    assert set(statuses) == ALL and {statuses[n] for n in ("b", "e", "p")} == {"fresh"}
    assert "cone: 1 changed paths, 3 of 6 targets checked" in err
    assert (root / "out" / "d.txt").read_text() == "b\na2\n"
    # the snapshot was updated with the cone's stats: the next build is the no-op
    age(root)
    statuses, err = build(root)
    assert set(statuses.values()) == {"fresh"}
    assert fast(root)


def test_a_touched_leaf_with_the_same_content_runs_nothing(root: Path) -> None:
    write(root, "src/a.txt", "a\n", ago=3.0)  # same bytes, another mtime
    statuses, err = build(root)
    assert set(statuses.values()) == {"fresh"}
    assert "3 of 6 targets checked" in err
    assert "cone: snapshot saved" in err
    assert fast(root)  # the touched leaf's new stat is in the snapshot


def test_two_edits_in_separate_branches(root: Path) -> None:
    write(root, "src/b.txt", "b2\n")
    write(root, "src/e.txt", "e2\n")
    statuses, err = build(root)
    assert built(statuses) == {"b", "d", "e"}
    assert "3 of 6 targets checked" in err


@pytest.mark.parametrize("change", ["cmd", "params", "env", "flow"])
def test_a_changed_setting_still_rebuilds(root: Path, change: str) -> None:
    """The snapshot's signature (flow.toml, overrides, env values) is not this build's:
    a full check, and what changed is rebuilt."""
    write(root, "src/a.txt", "a2\n")  # a change in the graph too: no cone is planned
    env = None
    args: tuple[str, ...] = ()
    flow = root / "flow.toml"
    if change == "cmd":
        flow.write_text(FLOW.replace('>> ${outputs}"', '>> ${outputs} && echo x >> ${outputs}"'))
    elif change == "flow":
        flow.write_text(FLOW + "\n# a comment\n")
    elif change == "params":
        args = ("--param", "n=2")
    else:
        env = {"FM_CONE_ENV": "set"}
    statuses, err = build(root, *args, env=env)
    assert "cone:" not in err
    expected = {"a", "c", "d"} | ({"e"} if change != "flow" else set())
    assert built(statuses) == expected


def test_a_code_change_rebuilds_the_python_target(root: Path) -> None:
    write(root, "steps.py", STEPS.replace("'one'", "'two'"))
    statuses, err = build(root)
    assert built(statuses) == {"p"}
    assert "1 of 6 targets checked" in err
    assert (root / "out" / "p.txt").read_text().strip() == "two"


@pytest.mark.parametrize("how", ["deleted", "modified"])
def test_an_output_in_the_middle_is_rebuilt(root: Path, how: str) -> None:
    out = root / "out" / "c.txt"
    if how == "deleted":
        out.unlink()
    else:
        write(root, "out/c.txt", "tampered\n")
    statuses, err = build(root)
    assert built(statuses) == {"c"}  # d is checked: c's output is as it was (early cutoff)
    assert "2 of 6 targets checked" in err
    assert out.read_text() == "a\n"
    assert (root / "out" / "d.txt").read_text() == "b\na\n"


def test_clean_voids_the_snapshot(root: Path) -> None:
    done = run(root, "clean", "e")
    assert done.returncode == 0, done.stderr
    assert not (root / ".flowmake" / "noop.marshal").exists()
    write(root, "src/a.txt", "a2\n")
    statuses, err = build(root)
    assert "cone:" not in err
    assert built(statuses) == {"a", "c", "d", "e"}  # e: its record was removed


def test_force_rebuilds_everything(root: Path) -> None:
    write(root, "src/a.txt", "a2\n")
    statuses, err = build(root, "-B")
    assert "cone:" not in err
    assert built(statuses) == ALL


def test_a_failure_in_the_cone_is_not_saved_as_fresh(root: Path) -> None:
    write(root, "src/a.txt", "bad\n")
    statuses, err = build(root, "-k", code=1)
    assert statuses["c"] == "failed" and statuses["d"] == "skipped"
    assert statuses["a"] == "built" and statuses["e"] == "fresh"
    assert "cone: snapshot saved" not in err
    statuses, _ = build(root, "-k", code=1)  # c is tried again, not taken as fresh
    assert statuses["c"] == "failed"
    write(root, "src/a.txt", "a3\n")
    statuses, _ = build(root)
    assert built(statuses) == {"a", "c", "d"}
    assert (root / "out" / "d.txt").read_text() == "b\na3\n"


def test_an_interrupted_cone_build_is_finished_by_the_next(root: Path) -> None:
    write(root, "src/a.txt", "slow\n")
    env = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_TRACE": "cone"}
    proc = subprocess.Popen([sys.executable, "-m", "flowmake", "-C", str(root), "build",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 30
    while (root / "out" / "a.txt").read_text() != "slow\n":  # a is built, c is running
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    write(root, "src/a.txt", "quick\n")
    statuses, _ = build(root)
    assert built(statuses) == {"a", "c", "d"}
    assert (root / "out" / "d.txt").read_text() == "b\nquick\n"


def test_a_build_between_the_check_and_the_lock_voids_the_cone(root: Path) -> None:
    """The cone planned from the snapshot is dropped if another build wrote a record
    before this one took the lock (the snapshot file is not the one read)."""
    from flowmake.cli import cone
    from flowmake.cli.workspace import Workspace
    from flowmake.options import BuildOptions

    write(root, "src/a.txt", "a2\n")
    ws = Workspace(root, None, {})
    try:
        names = ws.graph.closure(ws.select([]))
        options = BuildOptions(directory=str(root))
        found = cone.plan(ws, options, names)
        assert found is not None and found.checked == {"a", "c", "d"}
        assert cone.still_valid(ws, options, found) is found
        write(root, "src/e.txt", "e2\n")
        statuses, _ = build(root, "e")  # another build: e's record is written
        assert built(statuses) == {"e"}
        assert cone.still_valid(ws, options, found) is None
    finally:
        ws.close()


def test_the_distributions_list_is_cached_with_the_project_on_sys_path(root: Path) -> None:
    """Run from the project's folder, ``python -m`` puts it on sys.path, and each build
    changes its mtime (flow.lock is written there): the distributions' cache
    (store/provenance.py) still holds."""
    def build_here() -> None:
        done = subprocess.run([sys.executable, "-m", "flowmake", "build"], cwd=root,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    cache = root / ".flowmake" / "distributions.json"
    write(root, "src/a.txt", "a2\n")
    build_here()
    before, folder = cache.stat().st_mtime_ns, root.stat().st_mtime_ns
    write(root, "src/a.txt", "a3\n")
    build_here()
    assert root.stat().st_mtime_ns != folder  # flow.lock was written again
    assert cache.stat().st_mtime_ns == before


def test_flow_toml_edited_after_the_check_voids_the_cone(root: Path) -> None:
    """An edit of flow.toml between the no-op check and the lock: a full check."""
    from flowmake.cli import cone
    from flowmake.cli.workspace import Workspace
    from flowmake.options import BuildOptions

    write(root, "src/a.txt", "a2\n")
    ws = Workspace(root, None, {})
    try:
        options = BuildOptions(directory=str(root))
        found = cone.plan(ws, options, ws.graph.closure(ws.select([])))
        assert found is not None
        write(root, "flow.toml", FLOW.replace("echo ${params.n}", "echo n=${params.n}"))
        assert cone.still_valid(ws, options, found) is None
    finally:
        ws.close()


def stale_in(status: str) -> set[str]:
    """The targets a status tree shows stale."""
    return {line.split(":")[0].lstrip(" │├└─") for line in status.splitlines()
            if "stale" in line}


def _without_snapshot(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command the full way: the snapshot moved aside, then put back."""
    snapshot = root / ".flowmake" / "noop.marshal"
    aside = snapshot.with_suffix(".aside")
    snapshot.rename(aside)
    try:
        return run(root, *args)
    finally:
        snapshot.unlink(missing_ok=True)
        aside.rename(snapshot)


@pytest.mark.parametrize("form", [(), ("--json",)])
def test_status_after_an_edit_checks_only_the_cone(root: Path, form: tuple[str, ...]) -> None:
    """`status` after an edit: the cone is checked, the rest trusted; the same answer as
    the full check, the changed targets stale."""
    write(root, "src/a.txt", "a2\n")
    coned = run(root, "status", "-v", *form)
    full = _without_snapshot(root, "status", *form)
    assert coned.returncode == full.returncode == 0, coned.stderr
    assert coned.stdout == full.stdout
    if not form:
        assert stale_in(coned.stdout) == {"a", "c", "d"}
    assert "not fresh" in coned.stderr or form
    # the cone's stale targets are not saved as fresh: the build still rebuilds them
    statuses, _ = build(root)
    assert built(statuses) == {"a", "c", "d"}


def test_status_and_graph_after_a_cone_build_answer_from_the_cone(root: Path) -> None:
    """Just after a cone build its outputs are too new to be trusted (the racy window):
    `status` checks only their cone, finds it fresh, answers as the fast path does, and
    saves the snapshot again; `graph --format json` likewise, with the same document."""
    write(root, "src/a.txt", "a2\n")
    assert built(build(root)[0]) == {"a", "c", "d"}
    graph_full = _without_snapshot(root, "graph", "--format", "json")
    status_full = _without_snapshot(root, "status")
    coned = run(root, "status", "-v")
    assert coned.returncode == 0, coned.stderr
    assert "cone check" in coned.stderr and "6 fresh, 0 not fresh" in coned.stderr
    assert coned.stdout == status_full.stdout
    graphed = run(root, "graph", "--format", "json")
    assert graphed.returncode == 0, graphed.stderr
    assert graphed.stdout == graph_full.stdout
    assert {n["state"] for n in json.loads(graphed.stdout)["nodes"]} == {"fresh"}
    # once the outputs are past the racy window, the snapshot the status saved holds them
    time.sleep(2.1)
    run(root, "status")  # the cone again, now saved trusted
    assert "no-op fast path" in run(root, "status", "-v").stderr
    assert fast(root)


def test_status_after_a_cone_build_still_sees_an_edit(root: Path) -> None:
    write(root, "src/a.txt", "a2\n")
    build(root)
    write(root, "src/b.txt", "b2\n", ago=3.0)
    coned = run(root, "status")
    assert stale_in(coned.stdout) == {"b", "d"}


# `flowmake status` in this process, counting the snapshot's stat checks on stderr.
COUNTED = """
import sys
from flowmake import fastpath
calls = []
changed = fastpath.changed
fastpath.changed = lambda *a, **k: calls.append(1) or changed(*a, **k)
from flowmake.cli.main import main
code = main(sys.argv[1:])
print(f"stat checks: {len(calls)}", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("command", [("status",), ("graph", "--format", "json")])
def test_an_edits_cone_is_found_by_one_stat_check(root: Path, command: tuple[str, ...]
                                                  ) -> None:
    """The check that finds the fast path does not hold is the one the cone is planned
    from: every saved path is stat'ed once (~0.3 s at 100,000 targets)."""
    write(root, "src/a.txt", "a2\n")
    env = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_RESIDENT": "0"}
    done = subprocess.run([sys.executable, "-c", COUNTED, "-C", str(root), *command],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "stat checks: 1", done.stderr


@pytest.mark.parametrize("form", [(), ("--json",)])
def test_a_dry_run_after_an_edit_checks_only_the_cone(root: Path, form: tuple[str, ...]
                                                      ) -> None:
    write(root, "src/a.txt", "a2\n")
    coned = run(root, "build", "-n", *form)
    full = _without_snapshot(root, "build", "-n", *form)
    assert coned.returncode == full.returncode == 0, coned.stderr
    assert "cone: 1 changed paths, 3 of 6 targets checked" in coned.stderr
    assert coned.stdout == full.stdout
    if not form:
        assert "3 would run, 3 fresh (dry run)" in coned.stdout
    statuses, _ = build(root)  # nothing was built or recorded by the dry run
    assert built(statuses) == {"a", "c", "d"}
