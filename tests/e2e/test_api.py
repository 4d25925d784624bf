"""The Python API (SPEC §9): flowmake.build / status / load, in-process, in a user's
script (a subprocess) and in a real Jupyter kernel."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import flowmake
from flowmake.errors import BuildFailed
from tests.conftest import base_env

FLOW = """
[params]
n = 3

[targets.data]
cmd = "python -c \\"import json; json.dump(list(range(${params.n})), open('data.json','w'))\\""
outputs = ["data.json"]

[targets.stats]
python = "stats:compute"
inputs = {data = "data.json"}
outputs = {total = "out/total.json", text = "out/text.txt"}

[targets.broken]
cmd = "echo going down >&2; exit 3"
outputs = ["never.txt"]
"""

STATS = """
def compute(data):
    return {"total": {"sum": sum(data)}, "text": f"{len(data)} items"}
"""


@pytest.fixture
def api_project(project):
    return project.flow(FLOW, {"stats.py": STATS})


def test_build_status_load_in_process(api_project, capsys):
    root = str(api_project.root)
    result = flowmake.build(["stats"], project=root)
    assert result.ok and result.result == "success" and result.run_id == 1
    assert result.targets["data"].status == "built"
    assert result.targets["stats"].status == "built"
    assert result.targets["stats"].reasons == ["never built"]
    result.raise_for_failure()  # nothing to raise
    assert capsys.readouterr().out == ""  # quiet unless live=True
    state = flowmake.status("stats", project=root)
    assert state.fresh and state["stats"].upstream == ["data"]
    assert flowmake.load("stats", project=root) == {"total": {"sum": 3}, "text": "3 items"}
    assert flowmake.load("stats", "total", project=root) == {"sum": 3}
    assert flowmake.load("stats", "out/text.txt", project=root) == "3 items"
    assert flowmake.load("data", project=root) == [0, 1, 2]  # a list of one: the value
    again = flowmake.build("stats", project=root)
    assert {t.status for t in again.targets.values()} == {"fresh"}
    # the same records and history as the command
    assert api_project.states("stats")["stats"]["state"] == "fresh"
    log = api_project.json("log")["runs"]
    assert [r["command"] for r in log][-1] == "flowmake.build(['stats'])"


def test_stale_load_names_the_reason_and_build_true_builds(api_project):
    root = str(api_project.root)
    assert flowmake.build("stats", project=root).ok
    api_project.write("stats.py", STATS.replace("items", "things"))
    with pytest.raises(flowmake.StaleError) as caught:
        flowmake.load("stats", project=root)
    assert caught.value.target == "stats"
    assert "target 'stats' is stale" in str(caught.value) and "code" in str(caught.value)
    assert caught.value.exit_code == 2 and isinstance(caught.value, flowmake.FlowmakeError)
    assert flowmake.load("stats", "text", build=True, project=root) == "3 things"


def test_params_override_for_one_call(api_project):
    root = str(api_project.root)
    assert flowmake.build("stats", project=root).ok
    status = flowmake.status("data", params={"n": 5}, project=root)
    assert not status.fresh and "param params.n: 3 → 5" in status["data"].reasons
    assert flowmake.load("stats", "total", build=True, params={"n": 5},
                         project=root) == {"sum": 10}
    assert flowmake.load("stats", "text", params={"n": 5}, project=root) == "5 items"
    with pytest.raises(flowmake.StaleError, match=r"params\.n: 5 → 3"):
        flowmake.load("data", project=root)  # without the override it is stale again


def test_failure_is_ok_false_not_an_exception(api_project):
    root = str(api_project.root)
    result = flowmake.build(["broken", "stats"], keep_going=True, project=root)
    assert not result.ok and result.result == "failed"
    assert result.targets["broken"].status == "failed"
    assert "3" in (result.targets["broken"].error or "")
    assert result.targets["stats"].status == "built"  # -k: the other branch went on
    with pytest.raises(BuildFailed, match="broken"):
        result.raise_for_failure()
    assert api_project.json("log")["runs"][0]["result"] == "failed"


def test_errors_are_raised(api_project):
    root = str(api_project.root)
    with pytest.raises(flowmake.UnknownTargetError, match="did you mean 'stats'"):
        flowmake.load("stat", project=root)
    with pytest.raises(flowmake.UnknownTargetError):
        flowmake.build("nope", project=root)
    api_project.edit_flow('outputs = ["data.json"]', 'outputs = ["data.json"]\ntimeout = "x"')
    with pytest.raises(flowmake.ConfigError, match="timeout"):
        flowmake.build(project=root)
    with pytest.raises(flowmake.ConfigError):
        flowmake.status(project=root)


def test_unknown_param_and_bad_value(api_project):
    root = str(api_project.root)
    with pytest.raises(flowmake.FlowmakeError, match="unknown param 'm'"):
        flowmake.build(params={"m": 1}, project=root)
    with pytest.raises(TypeError, match="expected a TOML value"):
        flowmake.build(params={"n": object()}, project=root)


def test_live_prints_plain_lines_to_stderr(api_project, capfd):
    flowmake.build("data", live=True, project=str(api_project.root))
    out, err = capfd.readouterr()
    assert out == "" and "data" in err and "built" in err
    assert "\x1b[" not in err  # plain lines, no live view


SCRIPT = """
import flowmake
r = flowmake.build(project=".", targets=["stats"])
print("ok", r.ok, r.targets["stats"].status)
print("total", flowmake.load("stats", "total")["sum"])
print("fresh", flowmake.status().fresh)
r = flowmake.build("broken")
print("broken", r.ok, r.result)
"""


def test_a_user_script_in_a_subprocess(api_project):
    (api_project.root / "sub").mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=api_project.root / "sub",
                          env=base_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # project="." finds flow.toml above, as the bare command does
    assert done.stdout.split("\n")[:4] == ["ok True built", "total 3", "fresh False",
                                          "broken False failed"]
    assert done.stderr == ""


def test_in_a_jupyter_kernel(api_project):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = str(api_project.root)
    cells = [
        f"import flowmake\nr = flowmake.build('stats', project={root!r})\nprint(r.ok, r.run_id)",
        f"flowmake.load('stats', project={root!r})['total']",
        f"flowmake.status(project={root!r})['stats'].state",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": root}}).execute()
    outputs = [c.outputs for c in nb.cells]
    assert outputs[0] == [{"output_type": "stream", "name": "stdout", "text": "True 1\n"}]
    assert outputs[1][0]["data"]["text/plain"] == "{'sum': 3}"
    assert outputs[2][0]["data"]["text/plain"] == "'fresh'"
    assert json.loads(api_project.read("out/total.json")) == {"sum": 3}


def test_the_package_import_stays_cheap():
    code = textwrap.dedent("""
        import sys, flowmake
        assert "flowmake.api" not in sys.modules and "flowmake.cli.build" not in sys.modules
        assert callable(flowmake.build) and "flowmake.api" in sys.modules
        import flowmake.cli.build as module  # the submodule does not hide the function
        assert callable(flowmake.build) and flowmake.build is flowmake.api.build
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_example_script(tmp_path):
    import shutil
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "python-api"
    copy = tmp_path / "python-api"
    shutil.copytree(example, copy, ignore=shutil.ignore_patterns(
        ".flowmake", "data", "out", "flow.lock", "__pycache__"))
    done = subprocess.run([sys.executable, "analysis.py", "50"], cwd=copy, env=base_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(50 points)" in done.stdout and "slope within 0.1 of 2: True" in done.stdout
    assert json.loads((copy / "out" / "line.json").read_text())["slope"] > 1.9


def test_type_checkers_see_the_api_functions():
    """mypy sees flowmake.build as the function, not the flowmake/build.py submodule."""
    pytest.importorskip("mypy")
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "python-api" / "analysis.py"
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           str(example)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _age(root, seconds=10.0):
    """Every mtime into the past: nothing is 'racy' (fresh from a write) for the fast path."""
    import os
    import time
    from pathlib import Path

    past = time.time() - seconds
    for path in [Path(root) / "flow.toml", *Path(root).rglob("*")]:
        if ".flowmake" not in path.parts and path.exists():
            os.utime(path, (past, past))


def test_a_no_op_build_takes_the_fast_path_and_a_change_still_builds(api_project):
    root = str(api_project.root)
    assert flowmake.build("stats", project=root).ok
    _age(root)
    assert flowmake.build("stats", project=root).ok  # all fresh: the fast path is armed
    assert (api_project.root / ".flowmake" / "noop.marshal").exists()
    fast = flowmake.build("stats", project=root)
    assert fast.ok and {n: t.status for n, t in fast.targets.items()} == {
        "data": "fresh", "stats": "fresh"}
    runs = api_project.json("log")["runs"]
    assert max(r["run_id"] for r in runs) == fast.run_id == 3
    # answered by the fast path, as `flowmake build` is: its run records no environment
    shown = api_project.run("log", str(fast.run_id), check=True).stdout
    assert "environment: not recorded" in shown, shown
    assert "environment: not recorded" not in api_project.run("log", "2", check=True).stdout
    api_project.write("stats.py", STATS.replace("items", "things"))
    changed = flowmake.build("stats", project=root)
    assert changed.targets["stats"].status == "built"
    assert flowmake.load("stats", "text", project=root) == "3 things"
