"""Python targets end to end, through the ``flowmake`` command: worker processes, crashes,
tracebacks, kwargs, outputs, atomic writes and the code fingerprint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def run(root: Path, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def build_json(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """``flowmake build --json``: exit code, the document, stderr."""
    result = run(root, "build", "--json", *args, env=env)
    return result.returncode, json.loads(result.stdout), result.stderr


def statuses(doc: dict) -> dict[str, str]:
    return {t["name"]: t["status"] for t in doc["targets"]}


def errors(doc: dict) -> dict[str, str]:
    return {t["name"]: t.get("error", "") for t in doc["targets"]}


def project(root: Path, flow: str, files: dict[str, str]) -> Path:
    """Write flow.toml and the given files (dedented) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "flow.toml").write_text(textwrap.dedent(flow).lstrip())
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# -- failures stay in their target ----------------------------------------------------------

CRASH_FLOW = """
[targets.raises]
python = "steps.failing:raises"
outputs = ["out/raises.json"]

[targets.exits3]
python = "steps.failing:exits3"
outputs = ["out/exits3.json"]

[targets.segfault]
python = "steps.failing:segfault"
outputs = ["out/segfault.json"]

[targets.sysexit]
python = "steps.failing:sysexit"
outputs = ["out/sysexit.json"]

[targets.good]
python = "steps.good:make"
outputs = ["out/good.json"]

[targets.after]
python = "steps.good:after"
inputs = { value = "out/good.json" }
outputs = ["out/after.json"]
"""

CRASH_FILES = {
    "steps/__init__.py": "",
    "steps/helpers.py": """
        def check(value):
            if value < 0:
                raise ValueError(f"negative value: {value}")
            return value
    """,
    "steps/failing.py": """
        import ctypes
        import os
        import sys

        from steps.helpers import check


        def raises():
            print("checking the value")
            return check(-1)


        def exits3():
            print("leaving now")
            os._exit(3)


        def segfault():
            ctypes.string_at(0)


        def sysexit():
            sys.exit(2)
    """,
    "steps/good.py": """
        def make():
            return {"answer": 42}


        def after(value):
            return {"double": value["answer"] * 2}
    """,
}


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, dict, str]:
    """One -k -j1 build in which four python targets fail in four ways (one worker, so
    every later target runs on a replacement of a crashed one)."""
    root = project(tmp_path_factory.mktemp("crash"), CRASH_FLOW, CRASH_FILES)
    code, doc, stderr = build_json(root, "-k", "-j1")
    return root, code, doc, stderr


def test_each_failure_fails_only_its_target(crashed: tuple[Path, int, dict, str]) -> None:
    root, code, doc, _ = crashed
    assert code == 1
    assert doc["result"] == "failed"
    assert statuses(doc) == {"raises": "failed", "exits3": "failed", "segfault": "failed",
                             "sysexit": "failed", "good": "built", "after": "built"}
    assert json.loads((root / "out/after.json").read_text()) == {"double": 84}
    assert not any((root / "out" / f"{n}.json").exists()
                   for n in ("raises", "exits3", "segfault", "sysexit"))


def test_crashes_are_named(crashed: tuple[Path, int, dict, str]) -> None:
    _, _, doc, stderr = crashed
    errs = errors(doc)
    assert errs["raises"] == "ValueError: negative value: -1"
    assert errs["exits3"] == "worker died: exit code 3"
    assert errs["segfault"] == "worker died: killed by signal SIGSEGV"
    assert errs["sysexit"] == "called sys.exit(2)"
    assert "leaving now" in stderr  # printed before os._exit: captured, not lost


def test_traceback_shows_user_frames_only(crashed: tuple[Path, int, dict, str]) -> None:
    root, _, _, stderr = crashed
    failing, helpers = root / "steps/failing.py", root / "steps/helpers.py"
    assert (f'File "{failing}", line {line_of(failing, "return check(-1)")}, in raises'
            in stderr)
    assert (f'File "{helpers}", line {line_of(helpers, "raise ValueError")}, in check'
            in stderr)
    assert "checking the value" in stderr
    assert "ValueError: negative value: -1" in stderr
    assert "flowmake/worker.py" not in stderr
    assert "flowmake/builtin" not in stderr
    assert "importlib" not in stderr
    # The segfault's dump names the user's line, without flowmake's frames.
    assert f'File "{failing}", line {line_of(failing, "string_at(0)")} in segfault' in stderr


def test_crash_output_is_kept_for_log(crashed: tuple[Path, int, dict, str]) -> None:
    root, _, _, _ = crashed
    result = run(root, "log", "raises")
    assert result.returncode == 0, result.stderr
    assert "negative value: -1" in result.stdout


# -- arguments and outputs ------------------------------------------------------------------


def test_params_and_table_inputs_arrive_as_kwargs_with_toml_types(tmp_path: Path) -> None:
    root = project(tmp_path, """
        [params]
        lr = 0.01

        [targets.show]
        python  = "show:show"
        params  = { i = 3, f = 0.5, s = "text", b = true, l = [1, "two"], t = { k = 1 }, lr = "${params.lr}" }
        matrix  = { depth = [2] }
        inputs  = { table = "data/table.json", note = "data/note.txt" }
        outputs = ["out/show-${depth}.json"]
    """, {
        "data/table.json": '{"rows": [1, 2, 3]}',
        "data/note.txt": "hello\n",
        "show.py": """
            import os

            def show(**kwargs):
                kwargs["cwd"] = os.getcwd()
                return {k: [type(v).__name__, v] for k, v in kwargs.items()}
        """,
    })
    code, _, stderr = build_json(root)
    assert code == 0, stderr
    got = json.loads((root / "out/show-2.json").read_text())
    assert got == {
        "i": ["int", 3], "f": ["float", 0.5], "s": ["str", "text"], "b": ["bool", True],
        "l": ["list", [1, "two"]], "t": ["dict", {"k": 1}], "lr": ["float", 0.01],
        "depth": ["int", 2], "table": ["dict", {"rows": [1, 2, 3]}],
        "note": ["str", "hello\n"], "cwd": ["str", str(root)],
    }


OUTPUTS_FLOW = """
[targets.table]
python  = "steps:table"
outputs = { model = "out/model.pkl", metrics = "out/metrics.json" }

[targets.missing]
python  = "steps:missing"
outputs = { model = "out/m2.pkl", metrics = "out/m2.json" }

[targets.itself]
python  = "steps:itself"
outputs = ["out/itself.txt"]

[targets.lazy]
python  = "steps:lazy"
outputs = ["out/lazy.txt"]

[targets.unpicklable]
python  = "steps:unpicklable"
outputs = ["out/bad.pkl"]
"""

OUTPUTS_FILES = {
    "steps.py": """
        def table():
            return {"model": {"w": [1.0, 2.0]}, "metrics": {"r2": 0.9}}

        def missing():
            return {"model": 1, "extra": 2}

        def itself():
            with open("out/itself.txt", "w") as f:
                f.write("written by the function\\n")

        def lazy():
            return None

        def unpicklable():
            return {"fine": 1, "not": lambda: 0}
    """,
}


def test_table_output_and_the_ways_outputs_fail(tmp_path: Path) -> None:
    root = project(tmp_path, OUTPUTS_FLOW, OUTPUTS_FILES)
    code, doc, _ = build_json(root, "-k")
    assert code == 1
    assert statuses(doc) == {"table": "built", "missing": "failed", "itself": "built",
                             "lazy": "failed", "unpicklable": "failed"}
    import pickle

    assert pickle.loads((root / "out/model.pkl").read_bytes()) == {"w": [1.0, 2.0]}
    assert json.loads((root / "out/metrics.json").read_text()) == {"r2": 0.9}
    assert (root / "out/itself.txt").read_text() == "written by the function\n"
    errs = errors(doc)
    assert "missing key(s) 'metrics'" in errs["missing"]
    assert "unexpected key(s) 'extra'" in errs["missing"]
    assert errs["lazy"] == "returned None and did not write out/lazy.txt"
    assert "cannot save output out/bad.pkl as pickle" in errs["unpicklable"]
    assert not (root / "out/m2.pkl").exists()  # nothing saved when the dict is wrong


def test_failed_save_leaves_the_previous_output_whole(tmp_path: Path) -> None:
    """Outputs are written to a temporary file and renamed: a failure midway leaves the
    old file as it was, and no partial or temporary file behind."""
    root = project(tmp_path, """
        [targets.model]
        python  = "steps:model"
        params  = { good = true }
        outputs = ["out/model.pkl"]
    """, {"steps.py": """
        def model(good):
            big = list(range(100_000))
            return {"big": big} if good else {"big": big, "bad": lambda: 0}
    """})
    code, _, stderr = build_json(root)
    assert code == 0, stderr
    before = (root / "out/model.pkl").read_bytes()
    flow = (root / "flow.toml").read_text().replace("good = true", "good = false")
    (root / "flow.toml").write_text(flow)
    code, doc, _ = build_json(root)
    assert code == 1 and statuses(doc) == {"model": "failed"}
    assert (root / "out/model.pkl").read_bytes() == before
    assert sorted(p.name for p in (root / "out").iterdir()) == ["model.pkl"]


# -- the code fingerprint -------------------------------------------------------------------

CODE_FLOW = """
[targets.score]
python  = "pipeline.steps:score"
outputs = ["out/score.json"]

[targets.fixed]
python  = "pipeline.other:fixed"
version = "1"
outputs = ["out/fixed.json"]
"""


def code_project(root: Path, extlib: Path) -> Path:
    extlib.mkdir(parents=True, exist_ok=True)
    (extlib / "extlib.py").write_text("FACTOR = 2\n")
    return project(root, CODE_FLOW, {
        "pipeline/__init__.py": "",
        "pipeline/helpers.py": '''
            """Helpers."""


            def base():
                """The base value."""
                return 10
        ''',
        "pipeline/steps.py": """
            import extlib

            from . import helpers


            def score():
                return {"score": helpers.base() * extlib.FACTOR}
        """,
        "pipeline/other.py": """
            def fixed():
                return {"fixed": 1}
        """,
    })


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_code_changes_rebuild_and_cosmetic_ones_do_not(tmp_path: Path) -> None:
    extlib = tmp_path / "site-packages"
    root = code_project(tmp_path / "proj", extlib)
    env = {"PYTHONPATH": str(extlib)}
    code, doc, stderr = build_json(root, env=env)
    assert code == 0, stderr
    helpers = root / "pipeline/helpers.py"

    edit(helpers, "return 10", "return 10  # a comment")
    edit(helpers, '"""The base value."""', '"""The base value, documented better."""')
    code, doc, _ = build_json(root, env=env)
    assert statuses(doc) == {"score": "fresh", "fixed": "fresh"}

    # A module outside the project (site-packages) never enters the key.
    (extlib / "extlib.py").write_text("FACTOR = 3\n")
    assert statuses(build_json(root, env=env)[1]) == {"score": "fresh", "fixed": "fresh"}

    edit(helpers, "return 10", "return 11")
    status = run(root, "status", "--json", env=env)
    reasons = {t["name"]: t["reasons"] for t in json.loads(status.stdout)["targets"]}
    assert reasons == {"score": ["code changed: pipeline.helpers.base"], "fixed": []}
    why = run(root, "why", "score", env=env)
    assert "code changed: pipeline.helpers.base" in why.stdout
    code, doc, _ = build_json(root, env=env)
    assert statuses(doc) == {"score": "built", "fixed": "fresh"}
    assert json.loads((root / "out/score.json").read_text()) == {"score": 33}


def test_version_replaces_the_code_fingerprint(tmp_path: Path) -> None:
    root = code_project(tmp_path / "proj", tmp_path / "site-packages")
    env = {"PYTHONPATH": str(tmp_path / "site-packages")}
    assert build_json(root, env=env)[0] == 0
    edit(root / "pipeline/other.py", '{"fixed": 1}', '{"fixed": 2}')
    assert statuses(build_json(root, env=env)[1])["fixed"] == "fresh"
    edit(root / "flow.toml", 'version = "1"', 'version = "2"')
    status = run(root, "status", "--json", "fixed", env=env)
    assert json.loads(status.stdout)["targets"][0]["reasons"] == ["code changed"]
    why = run(root, "why", "fixed", env=env).stdout
    assert "(version 1)" in why and "(version 2)" in why
    assert statuses(build_json(root, env=env)[1])["fixed"] == "built"
    assert json.loads((root / "out/fixed.json").read_text()) == {"fixed": 2}


@pytest.mark.slow
def test_no_op_fast_path_notices_a_helper_edit(tmp_path: Path) -> None:
    root = code_project(tmp_path / "proj", tmp_path / "site-packages")
    env = {"PYTHONPATH": str(tmp_path / "site-packages")}
    assert build_json(root, env=env)[0] == 0
    past = time.time() - 10
    for path in [root / "flow.toml", *root.rglob("*")]:
        if ".flowmake" not in path.parts:
            os.utime(path, (past, past))
    assert statuses(build_json(root, env=env)[1]) == {"score": "fresh", "fixed": "fresh"}
    assert (root / ".flowmake/noop.marshal").exists()
    edit(root / "pipeline/helpers.py", "return 10", "return 12")
    assert statuses(build_json(root, env=env)[1]) == {"score": "built", "fixed": "fresh"}


# -- time limits, retries, streaming, interruption ------------------------------------------


@pytest.mark.slow
def test_timeout_kills_the_worker_and_retries_retry(tmp_path: Path) -> None:
    root = project(tmp_path, """
        [targets.sleepy]
        python  = "steps:sleepy"
        timeout = 1
        outputs = ["out/sleepy.txt"]

        [targets.flaky]
        python  = "steps:flaky"
        retries = 2
        outputs = ["out/flaky.txt"]
    """, {"steps.py": """
        import os
        import time

        def sleepy():
            time.sleep(60)
            return "never\\n"

        def flaky():
            tries = len(os.listdir("out")) if os.path.isdir("out") else 0
            open(f"out/try-{tries}", "w").close()
            if tries < 2:
                raise RuntimeError(f"try {tries} fails")
            return "third time lucky\\n"
    """})
    started = time.monotonic()
    code, doc, _ = build_json(root, "-k", "-j2")
    assert time.monotonic() - started < 30
    assert code == 1
    assert statuses(doc) == {"sleepy": "failed", "flaky": "built"}
    assert errors(doc)["sleepy"] == "timed out after 1s"
    assert (root / "out/flaky.txt").read_text() == "third time lucky\n"
    assert "--- attempt 3 of 3 (RuntimeError: try 1 fails) ---" in run(root, "log", "flaky").stdout


def test_verbose_streams_python_output(tmp_path: Path) -> None:
    root = project(tmp_path, """
        [targets.talk]
        python  = "steps:talk"
        outputs = ["out/talk.txt"]
    """, {"steps.py": """
        def talk():
            print("first line")
            print("second line")
            return "done\\n"
    """})
    result = run(root, "-v", "build")
    assert result.returncode == 0, result.stderr
    assert "[talk] first line\n[talk] second line\n" in result.stdout


def start_forever(root: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start a build whose python target runs until killed; (flowmake, worker pid)."""
    project(root, """
        [targets.forever]
        python  = "steps:forever"
        outputs = ["out/forever.txt"]
    """, {"steps.py": """
        import os
        import time

        def forever():
            with open("pid", "w") as f:
                f.write(str(os.getpid()))
            time.sleep(600)
    """})
    proc = subprocess.Popen([sys.executable, "-m", "flowmake", "-C", str(root), "build"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = root / "pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc, int(pid_file.read_text())


def gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_interrupt_kills_the_workers(tmp_path: Path) -> None:
    proc, worker = start_forever(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 130
    assert gone(worker)
    assert not (tmp_path / "out/forever.txt").exists()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_flowmake_takes_its_workers_along(tmp_path: Path) -> None:
    proc, worker = start_forever(tmp_path)
    proc.kill()  # SIGKILL: flowmake cannot clean up; the worker must die with it
    proc.wait(30)
    assert gone(worker)


# -- formats ----------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    root = project(tmp_path, """
        [targets.frame]
        python  = "steps:frame"
        outputs = ["data/frame.parquet"]

        [targets.table]
        python  = "steps:table"
        outputs = ["data/table.parquet"]

        [targets.summary]
        python  = "steps:summary"
        inputs  = { df = "data/frame.parquet", tb = "data/table.parquet" }
        outputs = ["out/summary.json"]
    """, {"steps.py": """
        import pandas as pd
        import pyarrow as pa

        def frame():
            return pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]},
                                index=pd.Index([10, 20, 30], name="id"))

        def table():
            return pa.table({"z": [0.5, 1.5]})

        def summary(df, tb):
            return {"types": [type(df).__name__, type(tb).__name__],
                    "index": df.index.tolist(), "index_name": df.index.name,
                    "x": int(df["x"].sum()), "y": "".join(df["y"]), "z": float(tb["z"].sum())}
    """})
    code, doc, stderr = build_json(root)
    assert code == 0, stderr
    assert json.loads((root / "out/summary.json").read_text()) == {
        "types": ["DataFrame", "DataFrame"], "index": [10, 20, 30], "index_name": "id",
        "x": 6, "y": "abc", "z": 2.0}
    # The same frame gives the same bytes: a rebuild is cut off before `summary`.
    code, doc, _ = build_json(root, "-B", "frame")
    assert statuses(doc) == {"frame": "built"}
    assert statuses(build_json(root)[1])["summary"] == "fresh"


def test_import_error_fails_the_target_clearly(tmp_path: Path) -> None:
    root = project(tmp_path, """
        [targets.nothere]
        python  = "nowhere.steps:run"
        outputs = ["out/x.json"]

        [targets.noattr]
        python  = "steps:absent"
        outputs = ["out/y.json"]
    """, {"steps.py": "def present():\n    return 1\n"})
    code, doc, _ = build_json(root, "-k")
    assert code == 1
    errs = errors(doc)
    assert errs["nothere"] == ("cannot import 'nowhere.steps': ModuleNotFoundError:"
                               " No module named 'nowhere'")
    assert errs["noattr"] == "module 'steps' has no attribute 'absent'"
