"""`graph --format json` of an all-fresh project answers from the no-op fast path's
stats (as `status` does), with the very document the Checker's plan gives; any change,
a target the snapshot does not cover, or another selection takes the full check. When
the texts the compiled flow decides are kept for the snapshot's flow, the document is
written without loading the flow at all (cli/graphfresh.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_fastpath import settle  # build, age every file, build: armed

FLOW = """
[flow]
cache = false

[targets.a]
help = "first"
cmd = "cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.fit]
matrix = { k = [1, 2] }
cmd = "cat ${inputs} > ${outputs} && echo ${k} >> ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/fit-${k}.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/fit-1.txt", "out/fit-2.txt"]
outputs = ["out/b.txt"]
"""

# Runs `flowmake graph` in this process with Checker.plan counted (not replaced), and
# prints the count on stderr's last line.
COUNTED = textwrap.dedent("""
    import sys
    from flowmake.plan import check
    calls = []
    plan = check.Checker.plan
    check.Checker.plan = lambda self, *a, **k: calls.append(1) or plan(self, *a, **k)
    from flowmake import fastpath
    checks = []
    check_stats = fastpath.check
    fastpath.check = lambda *a, **k: checks.append(1) or check_stats(*a, **k)
    from flowmake.cli.main import main
    code = main(sys.argv[1:])
    sys.stdout.flush()
    loaded = "flowmake.cli.workspace" in sys.modules
    print(f"flow loaded: {loaded}, stat checks: {len(checks)}", file=sys.stderr)
    print(f"plans: {len(calls)}", file=sys.stderr)
    sys.exit(code)
""")


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_RESIDENT": "0"}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def counted(root: Path, *args: str) -> tuple[str, int, str]:
    """The document's text, how many plans the Checker made for it, and the line saying
    whether the flow was loaded and how many times the fast path's stats were checked."""
    env = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_RESIDENT": "0"}
    result = subprocess.run(
        [sys.executable, "-c", COUNTED, "-C", str(root), "graph", "--format", "json", *args],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    *_, how, plans = result.stderr.strip().splitlines()
    return result.stdout, int(plans.removeprefix("plans: ")), how


def graph_json(root: Path, *args: str) -> tuple[dict[str, Any], int]:
    """The document, and how many plans the Checker made for it."""
    text, plans, _ = counted(root, *args)
    return json.loads(text), plans


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("hello\n")
    (tmp_path / "flow.toml").write_text(FLOW)
    return tmp_path


def test_all_fresh_json_comes_from_the_fast_path_and_is_the_checked_one(root: Path) -> None:
    settle(root)
    fast, plans = graph_json(root)
    assert plans == 0  # no fingerprint computed (was 1 before)
    assert fast["counts"] == {"fresh": 4, "stale": 0, "restorable": 0}
    assert {n["name"]: (n["state"], n["reasons"], n["display"]) for n in fast["nodes"]} == {
        n: ("fresh", [], "fresh") for n in ("a", "fit[k=1]", "fit[k=2]", "b")}
    (root / ".flowmake" / "noop.marshal").unlink()  # no snapshot: the full check
    checked, plans = graph_json(root)
    assert plans == 1
    assert fast == checked  # every key, state, record and last run alike
    page = run(root, "graph", "--format", "html", "-o", "g.html")
    assert page.returncode == 0 and '"name": "fit[k=2]"' in (root / "g.html").read_text()


def test_with_the_texts_kept_the_flow_is_not_even_loaded(root: Path) -> None:
    settle(root)
    first, plans, how = counted(root)  # the texts are made for this flow, and kept
    assert plans == 0 and how == "flow loaded: True, stat checks: 1"  # asked once, not twice
    fast, plans, how = counted(root)
    assert plans == 0 and how == "flow loaded: False, stat checks: 1"
    assert fast == first
    (root / ".flowmake" / "noop.marshal").unlink()
    assert json.loads(fast) == graph_json(root)[0]  # the full check's document
    # A build changes one target's record: its node is made again, the flow still unloaded
    # (flow.toml is left as it is: aged, it would be compiled again, with new texts).
    (root / "src" / "a.txt").write_text("changed\n")
    assert run(root, "build").returncode == 0
    for path in [*(root / "src").iterdir(), *(root / "out").iterdir()]:
        os.utime(path, (time.time() - 10,) * 2)
    assert run(root, "build").returncode == 0  # the snapshot saved again
    after, plans, how = counted(root)
    assert plans == 0 and how == "flow loaded: False, stat checks: 1"
    (root / ".flowmake" / "noop.marshal").unlink()
    assert json.loads(after) == graph_json(root)[0]
    a_before, a_after = (next(n for n in json.loads(doc)["nodes"] if n["name"] == "a")
                         for doc in (fast, after))
    assert a_after["last_built"]["run_id"] > a_before["last_built"]["run_id"]
    # A snapshot saved by `status` names the targets in the same order as a build's.
    assert run(root, "status").returncode == 0
    assert (root / ".flowmake" / "noop.marshal").exists()
    assert counted(root)[::2] == (after, "flow loaded: False, stat checks: 1")


def test_texts_of_another_compiled_flow_are_not_used(root: Path) -> None:
    settle(root)
    doc = counted(root)[0]  # texts kept for the snapshot's compiled flow
    # The compiled flow removed: flow.toml is the one the snapshot and the texts are of.
    (root / ".flowmake" / "flow.pickle").unlink()
    assert counted(root)[::2] == (doc, "flow loaded: False, stat checks: 1")
    # An edit's cone build compiles it again: the snapshot it saves names the new one,
    # whose texts the next `graph` makes, and the one after uses.
    (root / "src" / "a.txt").write_text("changed\n")
    assert run(root, "build").returncode == 0
    for path in [*(root / "src").iterdir(), *(root / "out").iterdir()]:
        os.utime(path, (time.time() - 10,) * 2)
    assert run(root, "build").returncode == 0
    assert [counted(root)[2] for _ in range(2)] == [
        "flow loaded: True, stat checks: 1", "flow loaded: False, stat checks: 1"]
    # An edited flow: its own texts, never the old ones, though the fast path holds.
    (root / "flow.toml").write_text(FLOW.replace('help = "first"', 'help = "edited"'))
    settle(root)
    hows = []
    for _ in range(2):
        text, plans, how = counted(root)
        assert plans == 0 and json.loads(text)["nodes"][0]["help"] == "edited"
        hows.append(how)
    assert hows == ["flow loaded: True, stat checks: 1", "flow loaded: False, stat checks: 1"]


def test_a_changed_input_is_seen(root: Path) -> None:
    settle(root)
    (root / "src" / "a.txt").write_text("changed\n")
    doc, plans = graph_json(root)
    assert plans == 2  # the change's cone, then every target with the others trusted
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert nodes["a"]["state"] == "stale" and nodes["a"]["reasons"] == [
        "input changed: src/a.txt"]
    assert doc["counts"]["fresh"] < 4
    (root / ".flowmake" / "noop.marshal").unlink()  # no snapshot: the full check
    checked, plans = graph_json(root)
    assert plans == 1 and checked == doc


def test_targets_the_snapshot_does_not_cover_are_checked(root: Path) -> None:
    # [flow] default = a: the builds (and their snapshot) cover a only; graph shows all.
    (root / "flow.toml").write_text(FLOW.replace("cache = false", 'cache = false\ndefault = ["a"]',
                                                 1))
    settle(root)
    doc, plans = graph_json(root)
    assert plans == 1
    states = {n["name"]: (n["state"], n["reasons"]) for n in doc["nodes"]}
    assert states["a"] == ("fresh", [])
    assert states["fit[k=1]"] == ("stale", ["never built"])  # "fresh" if the snapshot answered
    assert states["b"][0] == "stale"


def test_a_selection_answers_with_its_own_closure(root: Path) -> None:
    settle(root)
    doc, _ = graph_json(root, "fit[k=1]")
    assert [n["name"] for n in doc["nodes"]] == ["a", "fit[k=1]"]
    assert doc["nodes"][0]["downstream"] == ["fit[k=1]"]  # only the chosen ones
    assert doc["edges"] == [{"from": "a", "to": "fit[k=1]"}]
    assert {n["state"] for n in doc["nodes"]} == {"fresh"}


ODD = r'''
[params]
rate = 0.5
tags = ["x", "ü"]

[targets.src]
help = "naïve \"quoted\" \\ back\tslash </script> ✓"
cmd = "printf 'ok' > ${outputs} && echo ${params.rate} ${params.tags} > /dev/null"
outputs = ["out/ünïcode \"q\".txt"]

[targets.sweep]
matrix = { lr = [0.1, 1e-5], on = [true], n = [3] }
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/ünïcode \"q\".txt"]
outputs = ["out/sweep-${lr}-${on}-${n}.txt"]

[targets.bad]
help = ""
cmd = "echo 'it broke: ü' && exit 3"
inputs = ["out/sweep-0.1-true-3.txt"]
outputs = ["out/bad.txt"]
'''


def test_each_node_is_the_text_json_dumps_writes(tmp_path: Path) -> None:
    (tmp_path / "flow.toml").write_text(ODD)
    assert run(tmp_path, "build", "-k").returncode == 1  # bad fails, the rest is built
    for args in ((), ("bad",)):
        result = run(tmp_path, "graph", "--format", "json", *args)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        nodes = lines[lines.index('  "nodes": [') + 1:lines.index('  ],')]
        assert nodes
        for line in nodes:
            text = line.strip().removesuffix(",")
            assert text == json.dumps(json.loads(text))  # keys, spacing, escapes, floats
        doc = json.loads(result.stdout)
        by_name = {n["name"]: n for n in doc["nodes"]}
        assert by_name["src"]["help"] == 'naïve "quoted" \\ back\tslash </script> ✓'
        assert by_name["src"]["params"] == {"params.rate": 0.5, "params.tags": ["x", "ü"]}
        assert by_name["sweep[lr=0.1,n=3,on=true]"]["params"] == {"lr": 0.1, "on": True, "n": 3}
        assert by_name["bad"]["display"] == "failed"
        assert "it broke: ü" in by_name["bad"]["last_failure"]["output"]
        assert by_name["bad"]["last_built"] is None and by_name["src"]["last_built"]["at"] > 0
        assert {(e["from"], e["to"]) for e in doc["edges"]} >= {
            ("src", "sweep[lr=0.1,n=3,on=true]"), ("sweep[lr=0.1,n=3,on=true]", "bad")}
    written = run(tmp_path, "graph", "--format", "json", "-o", "g.json")  # whole, not streamed
    assert written.returncode == 0 and (tmp_path / "g.json").read_text() == run(
        tmp_path, "graph", "--format", "json").stdout
    page = run(tmp_path, "graph", "--format", "html", "-o", "g.html")
    assert page.returncode == 0, page.stderr
    m = re.search(r'<script id="flowmake-data" type="application/json">(.*?)</script>',
                  (tmp_path / "g.html").read_text(), re.S)
    assert m and json.loads(m.group(1))["nodes"] == json.loads(
        run(tmp_path, "graph", "--format", "json").stdout)["nodes"]


PARAMS = """
[params]
n = 1

[targets.a]
cmd = "echo ${params.n} > ${outputs}"
outputs = ["out/a.txt"]
"""


def test_params_given_get_their_own_document(tmp_path: Path) -> None:
    (tmp_path / "flow.toml").write_text(PARAMS)
    settle(tmp_path, "-p", "n=2")  # the snapshot is of these params

    def action(*args: str) -> tuple[str, str]:
        text, _, how = counted(tmp_path, *args)
        return json.loads(text)["nodes"][0]["action"], how

    assert action("-p", "n=2") == ("echo 2 > out/a.txt", "flow loaded: True, stat checks: 1")
    assert action("-p", "n=2") == ("echo 2 > out/a.txt", "flow loaded: False, stat checks: 1")
    # Without them: not the snapshot's signature (no path is stat'ed for it), so the full
    # way, with the flow's own n.
    text, how = action()
    assert text == "echo 1 > out/a.txt" and how.startswith("flow loaded: True")
    assert action("-p", "n=2")[0] == "echo 2 > out/a.txt"
