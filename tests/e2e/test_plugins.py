"""Plugins end to end: a real installed distribution (entry point group ``flowmake``),
``[flow] plugins`` modules, FLOWMAKE_DISABLE_PLUGINS, duplicates, ``--version``, and the
configuration errors that name what to install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "flowmake-testplugin"


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """flowmake-testplugin built and installed by pip into a folder of its own.

    The folder goes on PYTHONPATH of the flowmake processes these tests start, so the
    distribution (its dist-info and entry point) is found exactly as in site-packages,
    without touching the interpreter that other tests (and other xdist workers) share.
    """
    work = tmp_path_factory.mktemp("testplugin")
    source = work / "src"
    shutil.copytree(FIXTURE, source)  # pip builds in place: keep the repository clean
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
                   check=True, capture_output=True, timeout=300)
    assert list(site.glob("flowmake_testplugin-*.dist-info"))
    return site


def run(root: Path | None, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("FLOWMAKE_DISABLE_PLUGINS", "FLOWMAKE_TESTPLUGIN_LOG")}
    where = ["-C", str(root)] if root else []
    return subprocess.run([sys.executable, "-m", "flowmake", *where, *args],
                          capture_output=True, text=True, timeout=120,
                          env={**base, "NO_COLOR": "1", **(env or {})})


def project(root: Path, flow: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "flow.toml").write_text(textwrap.dedent(flow).lstrip())
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# -- an installed distribution ------------------------------------------------------------

OBSERVED_FLOW = """
[targets.raw]
cmd     = "echo raw > ${outputs}"
outputs = ["out/raw.txt"]

[targets.upper]
python  = "steps:upper"
inputs  = { text = "out/raw.txt" }
outputs = ["out/upper.txt"]

[targets.broken]
cmd     = "exit 4"
outputs = ["out/broken.txt"]

[targets.after_broken]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/broken.txt"]
outputs = ["out/after.txt"]
"""

STEPS = {"steps.py": "def upper(text):\n    return text.upper()\n"}


@pytest.mark.slow
def test_observer_hooks_fire_for_every_target_and_build(plugin_site: Path,
                                                        tmp_path: Path) -> None:
    root = project(tmp_path / "proj", OBSERVED_FLOW, STEPS)
    log = tmp_path / "events.jsonl"
    env = {"PYTHONPATH": str(plugin_site), "FLOWMAKE_TESTPLUGIN_LOG": str(log)}
    first = run(root, "build", "-k", "--json", env=env)
    assert first.returncode == 1, first.stderr
    seen = events(log)
    kinds = [e["event"] for e in seen]
    assert kinds[0] == "build_start" and kinds[-1] == "build_finish"
    assert kinds.count("build_start") == kinds.count("build_finish") == 1
    everything = {"raw", "upper", "broken", "after_broken"}
    assert set(seen[0]["targets"]) == everything
    assert seen[0]["run_id"] == json.loads(first.stdout)["run_id"] == seen[-1]["run_id"]
    started = {e["name"] for e in seen if e["event"] == "target_start"}
    assert started == {"raw", "upper", "broken"}
    finished = {e["name"]: e["status"] for e in seen if e["event"] == "target_finish"}
    assert finished == {"raw": "built", "upper": "built", "broken": "failed",
                        "after_broken": "skipped"}
    assert len([e for e in seen if e["event"] == "target_finish"]) == 4  # once each
    assert seen[-1]["result"] == "failed"
    assert seen[-1]["counts"] == {"built": 2, "restored": 0, "fresh": 0, "failed": 1,
                                  "skipped": 1}
    assert {e["pid"] for e in seen} == {seen[0]["pid"]}  # in flowmake, not in a worker

    # A second build (fresh ones included) is observed too.
    log.unlink()
    assert run(root, "build", "upper", env=env).returncode == 0
    again = events(log)
    assert [e["event"] for e in again] == ["build_start", "target_finish", "target_finish",
                                           "build_finish"]
    assert {e["name"]: e["status"] for e in again if "status" in e} == {
        "raw": "fresh", "upper": "fresh"}


@pytest.mark.slow
def test_version_lists_installed_plugins(plugin_site: Path) -> None:
    env = {"PYTHONPATH": str(plugin_site)}
    shown = run(None, "--version", env=env)
    assert shown.returncode == 0
    assert "plugin: testplugin flowmake-testplugin 0.3.1" in shown.stdout
    assert "plugin: flowmake.builtin.formats" in shown.stdout
    hidden = run(None, "--version", env={**env, "FLOWMAKE_DISABLE_PLUGINS": "testplugin"})
    assert "testplugin" not in hidden.stdout
    assert "flowmake.builtin.formats" in hidden.stdout


@pytest.mark.slow
def test_the_entry_point_scan_is_cached_until_a_package_comes_or_goes(
        plugin_site: Path, tmp_path: Path) -> None:
    root = project(tmp_path / "proj", '[targets.a]\ncmd = "true"\n')
    site = tmp_path / "site"
    site.mkdir()
    env = {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert "testplugin" not in run(root, "--version", env=env).stdout
    kept = list((tmp_path / "cache" / "flowmake" / "entry-points").glob("*.marshal"))
    assert len(kept) == 1  # the scan, kept in the user's cache folder
    other = project(tmp_path / "other", '[targets.a]\ncmd = "true"\n')
    run(other, "--version", env=env)
    assert list((tmp_path / "cache" / "flowmake" / "entry-points").iterdir()) == kept  # shared
    # `python -m flowmake` puts the working folder on sys.path: run in a project, whose
    # folder changes with every build, it must neither scan again nor keep a file of its own
    for i, folder in enumerate((root, other, root)):
        subprocess.run([sys.executable, "-m", "flowmake", "build"], cwd=folder, check=True,
                       capture_output=True, env={**os.environ, **env})
        if i == 0:  # (pytest's own folder, where the runs above started, may differ)
            mtimes = [p.stat().st_mtime_ns for p in kept]
    assert [p.stat().st_mtime_ns for p in kept] == mtimes
    assert list((tmp_path / "cache" / "flowmake" / "entry-points").iterdir()) == kept
    for item in plugin_site.iterdir():  # "pip install" into that folder
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, site / item.name)
    assert "plugin: testplugin flowmake-testplugin 0.3.1" in run(root, "--version",
                                                                  env=env).stdout
    for item in list(site.iterdir()):  # and uninstalled again
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    assert "testplugin" not in run(root, "--version", env=env).stdout


@pytest.mark.slow
def test_a_disabled_plugin_observes_nothing(plugin_site: Path, tmp_path: Path) -> None:
    root = project(tmp_path / "proj", OBSERVED_FLOW, STEPS)
    log = tmp_path / "events.jsonl"
    env = {"PYTHONPATH": str(plugin_site), "FLOWMAKE_TESTPLUGIN_LOG": str(log),
           "FLOWMAKE_DISABLE_PLUGINS": "unrelated, testplugin"}
    assert run(root, "build", "raw", env=env).returncode == 0
    assert not log.exists()


# -- [flow] plugins modules -------------------------------------------------------------------

SHOUT_PLUGIN = """
import json
import os

import flowmake


class ShoutFormat:
    NAME = "shout"
    EXTENSIONS = (".shout",)

    def load(self, f):
        return f.read().decode().lower()

    def dump(self, value, f):
        f.write(value.upper().encode() + b"!\\n")


@flowmake.hookimpl
def flowmake_register_formats():
    return [ShoutFormat]


@flowmake.hookimpl
def flowmake_target_finish(outcome):
    with open(os.path.join(os.path.dirname(__file__), "finished.jsonl"), "a") as f:
        f.write(json.dumps([outcome.name, outcome.status]) + "\\n")
"""

SHOUT_FLOW = """
[flow]
plugins = ["myplugins"]

[targets.say]
python  = "steps:say"
outputs = ["out/hello.shout"]

[targets.hear]
python  = "steps:hear"
inputs  = { heard = "out/hello.shout" }
outputs = ["out/heard.json"]
"""

SHOUT_STEPS = """
def say():
    return "hello there"

def hear(heard):
    return {"heard": heard}
"""


def test_a_project_plugin_module_serves_formats_in_workers_and_observes(tmp_path: Path) -> None:
    root = project(tmp_path, SHOUT_FLOW, {"myplugins.py": SHOUT_PLUGIN, "steps.py": SHOUT_STEPS})
    result = run(root, "build")
    assert result.returncode == 0, result.stderr
    assert (root / "out/hello.shout").read_text() == "HELLO THERE!\n"
    assert json.loads((root / "out/heard.json").read_text()) == {"heard": "hello there!\n"}
    finished = [json.loads(x) for x in (root / "finished.jsonl").read_text().splitlines()]
    assert finished == [["say", "built"], ["hear", "built"]]


def test_version_lists_the_project_plugin_modules(tmp_path: Path) -> None:
    root = project(tmp_path, SHOUT_FLOW, {"myplugins.py": SHOUT_PLUGIN, "steps.py": SHOUT_STEPS})
    shown = run(root, "--version")
    assert shown.returncode == 0, shown.stderr
    assert "plugin: myplugins" in shown.stdout
    assert "plugin: flowmake.builtin.formats" in shown.stdout
    (root / "myplugins.py").unlink()  # a broken project plugin: named, --version still works
    broken = run(root, "--version")
    assert broken.returncode == 0, broken.stderr
    assert "cannot import 'myplugins'" in broken.stdout
    assert "plugin: flowmake.builtin.formats" in broken.stdout


def test_a_disabled_project_plugin_is_a_config_error(tmp_path: Path) -> None:
    root = project(tmp_path, SHOUT_FLOW, {"myplugins.py": SHOUT_PLUGIN, "steps.py": SHOUT_STEPS})
    result = run(root, "build", env={"FLOWMAKE_DISABLE_PLUGINS": "myplugins"})
    assert result.returncode == 2
    assert "'.shout'" in result.stderr
    assert "targets.say.outputs" in result.stderr  # the writer of the file, named first
    assert "Traceback" not in result.stderr
    assert not (root / "out").exists()


def test_duplicate_names_are_an_error_naming_both_plugins(tmp_path: Path) -> None:
    plugin = SHOUT_PLUGIN.replace("ShoutFormat", "{cls}")
    root = project(tmp_path, SHOUT_FLOW.replace('["myplugins"]', '["loud_a", "loud_b"]'), {
        "loud_a.py": plugin.format(cls="LoudA"), "loud_b.py": plugin.format(cls="LoudB"),
        "steps.py": SHOUT_STEPS})
    result = run(root, "build")
    assert result.returncode == 2
    assert "'.shout' is registered twice" in result.stderr
    assert "'loud_a' (LoudA)" in result.stderr and "'loud_b' (LoudB)" in result.stderr
    assert "FLOWMAKE_DISABLE_PLUGINS" in result.stderr
    # Blocking one of them resolves it.
    ok = run(root, "build", env={"FLOWMAKE_DISABLE_PLUGINS": "loud_b"})
    assert ok.returncode == 0, ok.stderr


def test_a_plugin_clashing_with_a_builtin_names_the_builtin(tmp_path: Path) -> None:
    clash = SHOUT_PLUGIN.replace('(".shout",)', '(".json",)')
    root = project(tmp_path, SHOUT_FLOW, {"myplugins.py": clash, "steps.py": SHOUT_STEPS})
    result = run(root, "build")
    assert result.returncode == 2
    assert "'.json' is registered twice" in result.stderr
    assert "'flowmake.builtin.formats'" in result.stderr and "'myplugins'" in result.stderr


# -- what to install --------------------------------------------------------------------------


def test_an_unknown_format_for_a_loaded_input_names_what_to_install(tmp_path: Path) -> None:
    root = project(tmp_path, """
        [targets.read]
        python  = "steps:read"
        inputs  = { table = "data/table.weird" }
        outputs = ["out/read.json"]

        [targets.tracked]
        python  = "steps:tracked"
        inputs  = ["data/table.weird"]
        outputs = ["out/tracked.json"]
    """, {"data/table.weird": "x", "steps.py": "def read(table):\n    return 1\n"
                                               "def tracked():\n    return 2\n"})
    result = run(root, "build")
    assert result.returncode == 2
    assert "no installed plugin saves or loads '.weird' files" in result.stderr
    assert "flow.toml:3: targets.read.inputs" in result.stderr
    assert "hint: install a flowmake plugin that provides it" in result.stderr
    # A list-form input is only tracked: no format needed.
    (root / "flow.toml").write_text((root / "flow.toml").read_text().replace(
        'inputs  = { table = "data/table.weird" }', 'inputs  = ["data/table.weird"]'))
    (root / "steps.py").write_text("def read():\n    return 1\ndef tracked():\n    return 2\n")
    assert run(root, "build").returncode == 0


def test_parquet_without_its_plugin_names_the_plugin(tmp_path: Path) -> None:
    root = project(tmp_path, """
        [targets.frame]
        python  = "steps:frame"
        outputs = ["data/frame.parquet"]
    """, {"steps.py": "def frame():\n    return None\n"})
    result = run(root, "build", env={"FLOWMAKE_DISABLE_PLUGINS": "parquet"})
    assert result.returncode == 2
    assert "'.parquet'" in result.stderr and "targets.frame.outputs" in result.stderr
    assert "pip install flowmake-parquet" in result.stderr


def test_a_url_protocol_no_plugin_serves_is_a_config_error(tmp_path: Path) -> None:
    root = project(tmp_path, """
        [targets.fetch]
        cmd     = "echo ${inputs} > ${outputs}"
        inputs  = ["nosuch://bucket/table.csv"]
        outputs = ["out/fetched.txt"]
    """)
    result = run(root, "build")
    assert result.returncode == 2
    assert "no installed plugin serves 'nosuch://' URLs" in result.stderr
    assert "flow.toml:3: targets.fetch.inputs" in result.stderr
    assert "hint: install a flowmake plugin that provides it" in result.stderr
    assert "Traceback" not in result.stderr and not (root / "out").exists()
    # A known name gets its package named.
    (root / "flow.toml").write_text((root / "flow.toml").read_text().replace("nosuch://",
                                                                              "gs://"))
    result = run(root, "build")
    assert result.returncode == 2 and "pip install gcsfs" in result.stderr


EXIT_PLUGIN = """
import atexit
import os
import threading
import time

import flowmake

HERE = os.path.dirname(os.path.abspath(__file__))


def _write(name):
    with open(os.path.join(HERE, name), "w") as f:
        f.write("done\\n")


@flowmake.hookimpl
def flowmake_build_finish(summary):
    atexit.register(_write, "atexit.txt")
    if os.environ.get("FM_TEST_THREAD"):
        # a non-daemon thread still working when the command is done: it is waited for
        threading.Thread(target=lambda: (time.sleep(0.5), _write("thread.txt"))).start()
"""


def test_the_quick_exit_still_runs_atexit_handlers_and_waits_for_threads(tmp_path: Path) -> None:
    # flowmake exits without tearing the interpreter down (cli.exit_now); what plugins
    # leave for the end of the process must happen all the same.
    root = project(tmp_path, '[flow]\nplugins = ["exitplugin"]\n\n[targets.a]\ncmd = "true"\n',
                   {"exitplugin.py": EXIT_PLUGIN})
    result = run(root, "build")
    assert result.returncode == 0, result.stderr
    assert (root / "atexit.txt").read_text() == "done\n"
    assert not (root / "thread.txt").exists()
    result = run(root, "build", env={"FM_TEST_THREAD": "1"})
    assert result.returncode == 0, result.stderr
    assert (root / "thread.txt").read_text() == "done\n"
    failed = run(root, "build", "nosuchtarget")
    assert failed.returncode == 2 and "nosuchtarget" in failed.stderr  # codes kept


UNSERVED_OUTPUT = """
[targets.raw]
cmd = "echo 1 > ${outputs}"
outputs = ["out/raw.txt"]

[targets.table]
python = "steps:table"
inputs = { raw = "out/raw.txt" }
outputs = ["out/table.xlsx"]
"""


@pytest.mark.parametrize("command", [["build"], ["build", "-n"], ["status"]])
def test_an_output_no_plugin_serves_is_exit_2_before_anything_runs(tmp_path: Path,
                                                                     command: list[str]) -> None:
    root = project(tmp_path, UNSERVED_OUTPUT, {"steps.py": "def table(raw):\n    return raw\n"})
    result = run(root, *command)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "targets.table.outputs" in result.stderr
    assert "'.xlsx'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / "out").exists()  # its upstream did not run either


def test_a_python_target_may_write_a_folder_output_itself(tmp_path: Path) -> None:
    flow = """
[targets.pages]
python = "steps:pages"
outputs = ["out/pages"]
"""
    steps = ("import os\n\ndef pages():\n    os.makedirs('out/pages', exist_ok=True)\n"
             "    open('out/pages/a.html', 'w').write('<p>a</p>')\n")
    root = project(tmp_path, flow, {"steps.py": steps})
    result = run(root, "build")
    assert result.returncode == 0, result.stderr
    assert (root / "out/pages/a.html").read_text() == "<p>a</p>"


def test_status_loads_the_project_plugins_as_build_does(tmp_path: Path) -> None:
    flow = '[flow]\nplugins = ["not_installed_anywhere"]\n\n[targets.a]\ncmd = "true"\n'
    root = project(tmp_path, flow, {})
    for command in (["build", "-n"], ["status"]):
        result = run(root, *command)
        assert result.returncode == 2, result.stderr
        assert "not_installed_anywhere" in result.stderr
        assert "Traceback" not in result.stderr


PROBE = """
import json, sys
from flowmake.plugin.manager import Plugins
plugins = Plugins()
before = sorted(m for m in ("flowmake_parquet", "flowmake_dask", "flowmake_testplugin")
                if m in sys.modules)
fmt = type(plugins.format_for("x.parquet")).__name__
print(json.dumps({"before": before, "format": fmt, "parquet": "flowmake_parquet" in sys.modules,
                  "observers": plugins.has_observers()}))
"""


def test_a_registering_plugin_is_imported_only_when_a_build_needs_it(
        plugin_site: Path, tmp_path: Path) -> None:
    """Once its profile is remembered, an entry-point plugin that only registers names
    (parquet's formats, dask's executor) is imported when one of its names is looked up;
    an observer plugin (testplugin) is imported every time; installing it is seen."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def probe(extra: dict[str, str]) -> dict[str, object]:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                              env={**env, **extra}, check=True, cwd=tmp_path)
        found: dict[str, object] = json.loads(done.stdout)
        return found

    first = probe({})  # nothing remembered: every plugin imported
    assert "flowmake_parquet" in first["before"] and "flowmake_dask" in first["before"]
    again = probe({})
    assert again["before"] == [] and again["format"] == "ParquetFormat" and again["parquet"]
    assert again["observers"] is False
    with_observer = {"PYTHONPATH": str(plugin_site)}  # "pip install" of an observer plugin
    for _ in range(2):
        seen = probe(with_observer)
        assert seen["before"] == ["flowmake_testplugin"] and seen["observers"] is True
    assert probe({})["before"] == []  # and uninstalled again


def test_a_clash_with_a_deferred_entry_point_plugin_is_still_an_error(tmp_path: Path) -> None:
    """parquet (an entry point that only registers formats) is not imported once its
    profile is remembered: a project plugin registering `.csv` is still refused, naming
    both, on the first build and on the later ones."""
    clash = SHOUT_PLUGIN.replace('(".shout",)', '(".csv",)')
    root = project(tmp_path / "proj", SHOUT_FLOW, {"myplugins.py": clash,
                                                    "steps.py": SHOUT_STEPS})
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for _ in range(2):
        result = run(root, "build", env=env)
        assert result.returncode == 2
        assert "'.csv' is registered twice" in result.stderr
        assert "'parquet' (CsvFormat)" in result.stderr and "'myplugins'" in result.stderr
    assert list((tmp_path / "cache" / "flowmake" / "plugin-profiles").iterdir())
