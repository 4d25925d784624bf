"""``notebook = "..."`` targets end to end: the real ``flowmake`` command, real kernels.

The notebook plugin is installed (an entry point); each test writes a project with
notebooks in it and drives ``python -m flowmake`` as a user would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CODE = """\
import json, os
os.makedirs("out", exist_ok=True)
with open("out/result.json", "w") as f:
    json.dump({"n": n, "label": label}, f)
print("ran with", n)
"""


def notebook(*cells: dict[str, Any], minor: int = 5) -> str:
    return json.dumps({"cells": list(cells), "nbformat": 4, "nbformat_minor": minor,
                       "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                   "display_name": "Python 3"}}}, indent=1)


def code(source: str, *tags: str, outputs: list[Any] | None = None,
         count: int | None = None, ident: str = "") -> dict[str, Any]:
    return {"cell_type": "code", "id": ident or f"c{abs(hash(source)) % 10**8}",
            "metadata": {"tags": list(tags)} if tags else {},
            "source": source.splitlines(keepends=True), "execution_count": count,
            "outputs": outputs or []}


def md(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": source}


def run_nb(body: str = CODE) -> str:
    return notebook(code("n = 1\nlabel = 'default'", "parameters", ident="p"),
                    md("# The run"), code(body, ident="b"))


RUN_FLOW = """
[targets.report]
notebook = "nb/report.ipynb"
executed = "reports/report.ipynb"
params = { n = 42 }
outputs = ["out/result.json"]
"""


def test_run_injects_params_keeps_executed_resave_is_fresh_and_code_edit_rebuilds(
        project: Any) -> None:
    project.flow(RUN_FLOW, {"nb/report.ipynb": run_nb()}, cache=False)
    assert project.build() == {"report": "built"}
    # the param replaced the default of the `parameters` cell; the other one stayed
    assert json.loads(project.read("out/result.json")) == {"n": 42, "label": "default"}
    executed = json.loads(project.read("reports/report.ipynb"))
    injected = [c for c in executed["cells"] if "injected-parameters"
                in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and "n = 42" in "".join(injected[0]["source"])
    assert any("ran with 42" in "".join(o.get("text", "")) for c in executed["cells"]
               for o in c.get("outputs", []))
    # re-saved by Jupyter: new outputs, execution counts, metadata; the same code
    resaved = json.loads(run_nb())
    resaved["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout",
                                       "text": ["ran with 1\n"]}]
    resaved["cells"][2]["execution_count"] = 7
    resaved["metadata"]["language_info"] = {"name": "python", "version": "3.11"}
    project.write("nb/report.ipynb", json.dumps(resaved, indent=2))
    assert project.states()["report"]["state"] == "fresh"
    assert project.build() == {"report": "fresh"}
    # a code edit rebuilds, and status names the notebook
    project.write("nb/report.ipynb", run_nb(CODE.replace("ran with", "now ran with")))
    state = project.states()["report"]
    assert state["state"] == "stale"
    assert "code changed: nb/report.ipynb" in json.dumps(state["reasons"]) or any(
        "nb/report.ipynb" in str(r) for r in state["reasons"]), state
    assert project.build() == {"report": "built"}
    assert "now ran with 42" in project.run("log", "report", check=True).stdout


def test_status_why_and_list_show_the_kind(project: Any) -> None:
    project.flow(RUN_FLOW, {"nb/report.ipynb": run_nb()}, cache=False)
    listed = project.json("list", check=True)
    entry = next(t for t in listed["targets"] if t["name"] == "report")
    assert entry["kind"] == "notebook"
    assert "report  notebook" in project.run("list", check=True).stdout
    why = project.run("why", "report", check=True).stdout
    assert "action: notebook nb/report.ipynb (executed reports/report.ipynb)" in why
    assert "(never built)" in project.run("status", check=True).stdout or \
        project.states()["report"]["state"] == "stale"
    project.build()
    project.write("nb/report.ipynb", run_nb(CODE + "\nprint('more')\n"))
    why = project.run("why", "report", check=True).stdout
    assert "code changed: nb/report.ipynb" in why, why


def test_a_failing_cell_fails_the_target_naming_the_cell(project: Any) -> None:
    failing = notebook(code("n = 1", "parameters", ident="p"), md("# Steps"),
                       code("x = n + 1", ident="a"),
                       code("def check(v):\n    raise ValueError(f'bad value {v}')\n"
                            "check(x)", ident="b"))
    project.flow("""
        [targets.bad]
        notebook = "nb/bad.ipynb"
        params = { n = 2 }
        outputs = ["never.txt"]
    """, {"nb/bad.ipynb": failing}, cache=False)
    result = project.run("build", check=1)
    assert "nb/bad.ipynb: cell 4 failed: ValueError: bad value 3" in result.stderr + \
        result.stdout, result
    log = project.run("log", "bad", check=True).stdout
    assert "Traceback" in log and "check(x)" in log and "bad value 3" in log, log
    # without `executed`, the executed copy is kept under .flowmake/executed/ for the log
    assert "[executed notebook: .flowmake/executed/bad.ipynb]" in log
    assert project.exists(".flowmake/executed/bad.ipynb")


def test_function_target_value_saved_by_format_and_loadable(project: Any) -> None:
    nb = notebook(code("scale = 10", "parameters", ident="p"),
                  code("def fit(rows, k):\n    return {'total': sum(rows) * k,"
                       " 'rows': len(rows)}", ident="f"))
    project.flow("""
        [targets.rows]
        python = "make:rows"
        outputs = ["data/rows.json"]

        [targets.fit]
        notebook = "nb/model.ipynb"
        function = "fit"
        inputs = { rows = "data/rows.json" }
        params = { k = 3 }
        outputs = ["out/fit.pkl"]
    """, {"nb/model.ipynb": nb, "make.py": "def rows():\n    return [1, 2, 3]\n"},
        cache=False)
    assert project.build() == {"rows": "built", "fit": "built"}
    value = subprocess.run(
        [sys.executable, "-c", "import flowmake; print(flowmake.load('fit'))"],
        cwd=project.root, capture_output=True, text=True, check=True).stdout
    assert value.strip() == "{'total': 18, 'rows': 3}"
    listed = project.json("list", check=True)
    assert {t["name"]: t["kind"] for t in listed["targets"]} == {"rows": "python",
                                                                 "fit": "notebook"}


def test_function_target_exception_fails_it(project: Any) -> None:
    nb = notebook(code("def fit(k):\n    return 1 / k", ident="f"))
    project.flow("""
        [targets.fit]
        notebook = "nb/model.ipynb"
        function = "fit"
        params = { k = 0 }
        outputs = ["out/fit.json"]
    """, {"nb/model.ipynb": nb}, cache=False)
    result = project.run("build", check=1)
    assert "ZeroDivisionError: division by zero" in result.stderr + result.stdout
    assert 'nb/model.ipynb, cell 1", line 2, in fit' in project.run("log", "fit").stdout


def test_missing_plugin_is_exit_2_with_line_and_hint(project: Any) -> None:
    project.flow("""
        [targets.cmd]
        cmd = "true"

        [targets.report]
        notebook = "nb/report.ipynb"
    """, {"nb/report.ipynb": run_nb()})
    result = project.run("build", env={"FLOWMAKE_DISABLE_PLUGINS": "notebook"}, check=2)
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("flowmake: error: flow.toml:5: targets.report.notebook: no installed"
                        " plugin serves target kind 'notebook'"), result.stderr
    assert "pip install flowmake-notebook" in lines[1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("extra", "line", "message"), [
    ('exected = "r.ipynb"', 3, "targets.t.exected: unknown key (did you mean 'executed'?)"),
    ('function = "f"\nkernel = "python3"', 4, "targets.t.kernel: only for a notebook"),
    ('executed = "r.txt"', 3, "targets.t.executed: expected a notebook path ending in"),
    ('function = 3', 3, "targets.t.function: expected a str, got an integer"),
])
def test_bad_option_is_exit_2_with_its_line(project: Any, extra: str, line: int,
                                             message: str) -> None:
    project.flow(f'[targets.t]\nnotebook = "nb/a.ipynb"\n{extra}\n',
                 {"nb/a.ipynb": run_nb()})
    result = project.run("status", check=2)
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"flowmake: error: flow.toml:{line}: {message}"), result.stderr


def test_unknown_key_without_a_kind_is_the_usual_error(project: Any) -> None:
    project.flow('[targets.t]\nnotbook = "nb/a.ipynb"\n')
    result = project.run("status", check=2)
    assert "flow.toml:2: targets.t.notbook: unknown key" in result.stderr, result.stderr


def test_version_replaces_the_code_key(project: Any) -> None:
    project.flow(RUN_FLOW + 'version = "1"\n', {"nb/report.ipynb": run_nb()}, cache=False)
    project.build()
    project.write("nb/report.ipynb", run_nb(CODE + "\n# edited\n"))
    assert project.states()["report"]["state"] == "fresh"
    project.edit_flow('version = "1"', 'version = "2"')
    assert project.states()["report"]["state"] == "stale"


# -- on the Dask executor -------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
        dashboard_address=":0", memory_limit=0, silence_logs=logging.ERROR)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_runs_on_the_dask_executor(project: Any, dask_address: str) -> None:
    fn = notebook(code("def twice(x):\n    return x * 2", ident="f"))
    project.flow(RUN_FLOW + """
        [targets.twice]
        notebook = "nb/fn.ipynb"
        function = "twice"
        params = { x = 21 }
        outputs = ["out/twice.json"]
    """, {"nb/report.ipynb": run_nb(), "nb/fn.ipynb": fn}, cache=False)
    env = {"FLOWMAKE_DASK_SCHEDULER": dask_address}
    statuses = project.build("--executor", "dask", env=env)
    assert statuses == {"report": "built", "twice": "built"}
    assert json.loads(project.read("out/result.json"))["n"] == 42
    assert json.loads(project.read("out/twice.json")) == 42
    assert Path(project.root / "reports/report.ipynb").is_file()
    assert os.environ.get("FLOWMAKE_DASK_SCHEDULER") is None  # the env was the child's


def test_timeout_fails_the_target_and_the_kernel_goes_with_its_worker(project: Any) -> None:
    slow = notebook(code("import os, time\nopen('kernel.pid', 'w').write(str(os.getpid()))\n"
                         "time.sleep(120)", ident="s"))
    project.flow("""
        [targets.slow]
        notebook = "nb/slow.ipynb"
        timeout = 8
        outputs = ["never.txt"]
    """, {"nb/slow.ipynb": slow}, cache=False)
    result = project.run("build", check=1)
    assert "timed out after 8s" in result.stdout + result.stderr, result
    pid = int(project.read("kernel.pid"))
    # the kernel (its own session) polls its parent, the worker, which the timeout killed
    assert project.wait_for(lambda: not project.pid_alive(pid), timeout=15), \
        f"kernel {pid} outlived its worker"
