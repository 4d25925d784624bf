"""Output and input formats through the command (SPEC §9): text kinds built in, the pandas
formats from the flowmake-parquet plugin; each round-trips and writes the same bytes for
the same value (early cutoff)."""

from __future__ import annotations

import json

import pytest

STEPS = '''
import pandas as pd

def page():
    return "<h1>flowmake</h1>\\n"

def notes():
    return "# Notes\\n\\n- one\\n"

def picture():
    return '<svg xmlns="http://www.w3.org/2000/svg"/>\\n'

def log():
    return "line 1\\nline 2\\n"

def frame():
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})

def indexed():
    return pd.DataFrame({"v": [1.5, 2.5]}, index=pd.Index(["p", "q"], name="key"))

def total(csv, tsv, feather, parquet, keyed):
    return {"csv": int(csv["a"].sum()), "tsv": int(tsv["a"].sum()),
            "feather": int(feather["a"].sum()), "parquet": int(parquet["a"].sum()),
            "keyed": keyed.to_dict(orient="list")}

def wrong():
    return 42
'''

FLOW = """
[targets.text]
python = "steps:page"
outputs = ["out/page.html"]

[targets.md]
python = "steps:notes"
outputs = ["out/notes.md"]

[targets.svg]
python = "steps:picture"
outputs = ["out/pic.svg"]

[targets.log]
python = "steps:log"
outputs = ["out/run.log"]

[targets.tables]
python = "steps:frame"
outputs = { csv = "out/t.csv", tsv = "out/t.tsv", feather = "out/t.feather", parquet = "out/t.parquet" }

[targets.keyed]
python = "steps:indexed"
outputs = ["out/keyed.csv"]

[targets.total]
python = "steps:total"
inputs = { csv = "out/t.csv", tsv = "out/t.tsv", feather = "out/t.feather", parquet = "out/t.parquet", keyed = "out/keyed.csv" }
outputs = ["out/total.json"]
"""


@pytest.fixture
def built(project):
    # One python function returns a dict for the table of outputs: split it per key.
    flow = FLOW.replace('python = "steps:frame"', 'python = "steps:frames"')
    steps = STEPS + "\ndef frames():\n    f = frame()\n    return {k: f for k in ('csv', 'tsv', 'feather', 'parquet')}\n"
    project.flow(flow, {"steps.py": steps}, cache=False)
    result = project.run("build", "--json")
    assert result.returncode == 0, result.stderr
    return project


def test_text_kinds_are_built_in(built):
    assert built.read("out/page.html") == "<h1>flowmake</h1>\n"
    assert built.read("out/notes.md") == "# Notes\n\n- one\n"
    assert built.read("out/pic.svg").startswith("<svg")
    assert built.read("out/run.log") == "line 1\nline 2\n"


def test_pandas_formats_round_trip(built):
    assert built.read("out/t.csv") == "a,b\n1,x\n2,y\n3,z\n"
    assert built.read("out/t.tsv") == "a\tb\n1\tx\n2\ty\n3\tz\n"
    assert built.read("out/keyed.csv") == "key,v\np,1.5\nq,2.5\n"  # a named index kept
    total = json.loads(built.read("out/total.json"))
    assert total == {"csv": 6, "tsv": 6, "feather": 6, "parquet": 6,
                     "keyed": {"key": ["p", "q"], "v": [1.5, 2.5]}}


def test_the_same_frame_gives_the_same_bytes(built):
    before = {p: built.path(p).read_bytes() for p in
              ("out/t.csv", "out/t.tsv", "out/t.feather", "out/t.parquet")}
    doc = built.json("build", "-B", "tables", check=True)
    assert {t["name"]: t["status"] for t in doc["targets"]}["tables"] == "built"
    assert {p: built.path(p).read_bytes() for p in before} == before
    # ...so its dependent is not rebuilt (early cutoff)
    assert {t["name"]: t["status"] for t in built.json("build", check=True)["targets"]}[
        "total"] == "fresh"


def test_a_wrong_value_for_a_text_output_fails_the_target(project):
    project.flow('[targets.w]\npython = "steps:wrong"\noutputs = ["out/w.md"]\n',
                 {"steps.py": STEPS}, cache=False)
    result = project.run("build", "--json")
    assert result.returncode == 1
    [target] = json.loads(result.stdout)["targets"]
    assert "takes a str, got int" in target["error"]


def test_a_tracked_only_csv_input_needs_no_plugin(project):
    project.flow("""
        [targets.count]
        python = "steps:count"
        inputs = ["data.csv"]
        outputs = ["out/n.json"]
        """, {"data.csv": "a\n1\n", "steps.py": "def count():\n    return 1\n"}, cache=False)
    result = project.run("build", env={"FLOWMAKE_DISABLE_PLUGINS": "parquet"})
    assert result.returncode == 0, result.stderr


def test_a_loaded_csv_input_without_the_plugin_is_exit_2(project):
    project.flow("""
        [targets.count]
        python = "steps:count"
        inputs = { table = "data.csv" }
        outputs = ["out/n.json"]
        """, {"data.csv": "a\n1\n", "steps.py": "def count(table):\n    return 1\n"},
        cache=False)
    result = project.run("build", env={"FLOWMAKE_DISABLE_PLUGINS": "parquet"})
    assert result.returncode == 2
    assert "'.csv'" in result.stderr and "flowmake-parquet" in result.stderr
    assert "Traceback" not in result.stderr
