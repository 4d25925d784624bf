"""Matrix targets end to end: expansion, selection, interpolation, aggregates, overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# prep: 3 instances; fit: a 2×3 matrix, each instance reading the prep output of its depth;
# plot: 2 instances using another param; report aggregates fit by a glob, summary by deps.
FLOW = """
[params]
scale = 2
style = "light"

[targets.prep]
matrix  = { depth = [1, 2, 3] }
cmd     = "seq 1 ${depth} > ${outputs}"
outputs = ["data/part-${depth}.txt"]

[targets.fit]
matrix  = { lr = [0.1, 0.2], depth = [1, 2, 3] }
params  = { label = "lr${lr}-d${depth}" }
cmd     = "echo lr=${lr} depth=${depth} label=${label} scale=${params.scale} rows=$$(wc -l < ${inputs}) > ${outputs}"
inputs  = ["data/part-${depth}.txt"]
outputs = ["models/fit-${lr}-${depth}.txt"]

[targets.plot]
matrix  = { lr = [0.1, 0.2] }
cmd     = "echo plot ${lr} ${params.style} > ${outputs}"
outputs = ["plots/plot-${lr}.txt"]

[targets.report]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["models/fit-*.txt"]
outputs = ["report.txt"]

[targets.summary]
cmd     = "ls models | wc -l > ${outputs}"
deps    = ["fit"]
outputs = ["summary.txt"]
"""

FIT = [f"fit[depth={d},lr={lr}]" for d in (1, 2, 3) for lr in (0.1, 0.2)]
PREP = [f"prep[depth={d}]" for d in (1, 2, 3)]
PLOT = ["plot[lr=0.1]", "plot[lr=0.2]"]


def flowmake(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def build(root: Path, *args: str) -> dict[str, str]:
    """Build with --json; the status of every target the build selected."""
    result = flowmake(root, "build", "--json", *args)
    assert result.returncode == 0, result.stderr
    return {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW))
    return tmp_path


def test_list_json_lists_each_instance_with_its_matrix(root):
    result = flowmake(root, "list", "--json")
    assert result.returncode == 0, result.stderr
    targets = {t["name"]: t for t in json.loads(result.stdout)["targets"]}
    assert list(targets) == [*PREP, *FIT, *PLOT, "report", "summary"]
    for name in FIT:
        assert targets[name]["matrix"] == "fit"
        assert targets[name]["kind"] == "cmd"
    assert [targets[n]["matrix"] for n in PREP] == ["prep"] * 3
    assert "matrix" not in targets["report"] and "matrix" not in targets["summary"]
    # Matrix values are interpolated into inputs and outputs, and instances link up.
    fit = targets["fit[depth=2,lr=0.2]"]
    assert fit["inputs"] == ["data/part-2.txt"]
    assert fit["outputs"] == ["models/fit-0.2-2.txt"]
    assert fit["deps"] == ["prep[depth=2]"]
    # The aggregates depend on every instance: by a glob over outputs, and by deps.
    assert sorted(targets["report"]["deps"]) == sorted(FIT)
    assert sorted(targets["summary"]["deps"]) == sorted(FIT)


def test_matrix_values_reach_command_and_params(root):
    build(root, "fit[depth=3,lr=0.2]")
    text = (root / "models" / "fit-0.2-3.txt").read_text().split()
    assert text == ["lr=0.2", "depth=3", "label=lr0.2-d3", "scale=2", "rows=3"]
    assert (root / "data" / "part-3.txt").read_text().split() == ["1", "2", "3"]


def test_select_one_instance_builds_only_it_and_its_upstream(root):
    statuses = build(root, "fit[depth=1,lr=0.1]")
    assert statuses == {"prep[depth=1]": "built", "fit[depth=1,lr=0.1]": "built"}
    assert not (root / "models" / "fit-0.2-1.txt").exists()


def test_instance_keys_in_any_order(root):
    statuses = build(root, "fit[lr=0.2,depth=1]")
    assert set(statuses) == {"prep[depth=1]", "fit[depth=1,lr=0.2]"}


def test_select_whole_matrix(root):
    statuses = build(root, "fit")
    assert statuses == {**dict.fromkeys(PREP, "built"), **dict.fromkeys(FIT, "built")}


@pytest.mark.parametrize(("pattern", "expected"), [
    ("fit[*lr=0.2]", [n for n in FIT if n.endswith("lr=0.2]")]),
    ("fit[depth=2,*]", ["fit[depth=2,lr=0.1]", "fit[depth=2,lr=0.2]"]),
    ("pl*", PLOT),
    ("*[lr=0.1]", ["plot[lr=0.1]"]),
])
def test_select_by_glob(root, pattern, expected):
    statuses = build(root, pattern)
    assert sorted(n for n in statuses if not n.startswith("prep")) == sorted(expected)
    assert set(statuses.values()) == {"built"}


def test_unknown_instance_is_a_usage_error(root):
    result = flowmake(root, "build", "fit[depth=4,lr=0.1]")
    assert result.returncode == 2
    assert "unknown target 'fit[depth=4,lr=0.1]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_aggregates_wait_for_every_instance(root):
    statuses = build(root, "report", "summary")
    assert statuses == {**dict.fromkeys([*PREP, *FIT], "built"), "report": "built",
                        "summary": "built"}
    report = (root / "report.txt").read_text().splitlines()
    assert len(report) == 6 and {line.split()[0] for line in report} == {"lr=0.1", "lr=0.2"}
    assert (root / "summary.txt").read_text().strip() == "6"
    assert set(build(root, "report", "summary").values()) == {"fresh"}


def test_override_rebuilds_only_the_instances_that_use_the_param(root):
    build(root)
    statuses = build(root, "-p", "style=dark")
    built = sorted(n for n, s in statuses.items() if s == "built")
    assert built == PLOT
    assert (root / "plots" / "plot-0.2.txt").read_text().split() == ["plot", "0.2", "dark"]

    statuses = build(root, "-p", "style=dark", "-p", "scale=3")
    # summary follows fit by `deps`, which enter its key: fit's new outputs rebuild it too.
    assert sorted(n for n, s in statuses.items() if s == "built") == sorted(
        [*FIT, "report", "summary"])
    assert all(statuses[n] == "fresh" for n in PREP)
    # Back to the project values: plot (style) and fit (scale) are not fresh, with the reason.
    result = flowmake(root, "status", "--json")
    states = {t["name"]: t for t in json.loads(result.stdout)["targets"]}
    assert states["fit[depth=1,lr=0.1]"]["reasons"][-1] == "param params.scale: 3 → 2"
    assert all(states[n]["state"] == "fresh" for n in PREP)
    assert all(states[n]["state"] != "fresh" for n in [*FIT, *PLOT])  # stale or restorable


def test_adding_a_matrix_value_builds_only_the_new_instances(root):
    build(root, "report")
    flow = root / "flow.toml"
    flow.write_text(flow.read_text().replace("lr = [0.1, 0.2], depth", "lr = [0.1, 0.2, 0.3], depth"))
    statuses = build(root, "report")
    built = sorted(n for n, s in statuses.items() if s == "built")
    assert built == sorted([f"fit[depth={d},lr=0.3]" for d in (1, 2, 3)] + ["report"])
    assert len((root / "report.txt").read_text().splitlines()) == 9
