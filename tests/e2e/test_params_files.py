"""`[flow] params_files` and `track_params` (SPEC §10): project params from YAML, JSON or
TOML files, nested by dots; only the params a target uses or tracks rebuild it."""

from __future__ import annotations

import json
from typing import Any

import pytest

FLOW = """
[flow]
cache        = false
params_files = ["params.yaml"]

[targets.prepare]
cmd          = "python3 -c 'print(1)' > ${outputs}"
track_params = ["prepare.*"]
outputs      = ["out/prepare.txt"]

[targets.train]
cmd     = "echo lr=${params.train.lr} epochs=${params.train.epochs} > ${outputs}"
inputs  = ["out/prepare.txt"]
outputs = ["out/train.txt"]
"""

YAML = """\
prepare:
  seed: 1
  split: 0.2
train:
  lr: 0.1
  epochs: 3
"""


def reasons(project: Any) -> dict[str, list[str]]:
    return {n: t["reasons"] for n, t in project.states().items()}


def test_nested_params_by_dots_and_only_their_users_rebuild(project: Any) -> None:
    project.flow(FLOW, {"params.yaml": YAML})
    assert project.build() == {"prepare": "built", "train": "built"}
    assert project.read("out/train.txt") == "lr=0.1 epochs=3\n"
    project.write("params.yaml", YAML.replace("lr: 0.1", "lr: 0.01"))
    assert reasons(project) == {"prepare": [], "train": [
        "command changed", "param params.train.lr: 0.1 → 0.01"]}
    why = project.run("why", "train", check=True).stdout
    assert "param params.train.lr: 0.1 → 0.01" in why
    assert project.build() == {"prepare": "fresh", "train": "built"}
    project.write("params.yaml", YAML.replace("lr: 0.1", "lr: 0.01").replace("seed: 1",
                                                                          "seed: 7"))
    assert reasons(project)["prepare"] == ["param params.prepare.seed: 1 → 7"]
    assert project.build() == {"prepare": "built", "train": "fresh"}  # early cutoff


def test_dash_p_overrides_a_nested_param(project: Any) -> None:
    project.flow(FLOW, {"params.yaml": YAML})
    project.build("-p", "train.epochs=5")
    assert project.read("out/train.txt") == "lr=0.1 epochs=5\n"
    result = project.run("build", "-p", "train.epoch=5")
    assert result.returncode == 2
    assert "unknown param 'train.epoch' (did you mean 'train.epochs'?)" in result.stderr


@pytest.mark.parametrize(("name", "text"), [
    ("params.json", json.dumps({"prepare": {"seed": 1}, "train": {"lr": 0.1, "epochs": 3}})),
    ("params.toml", "[prepare]\nseed = 1\n[train]\nlr = 0.1\nepochs = 3\n"),
])
def test_json_and_toml_params_files(project: Any, name: str, text: str) -> None:
    project.flow(FLOW.replace("params.yaml", name), {name: text})
    project.build()
    assert project.read("out/train.txt") == "lr=0.1 epochs=3\n"


def test_track_params_names_params_and_tables(project: Any) -> None:
    project.flow(FLOW.replace('track_params = ["prepare.*"]', 'track_params = ["prepare"]'),
                 {"params.yaml": YAML})
    project.build()
    project.write("params.yaml", YAML.replace("split: 0.2", "split: 0.3"))
    [reason] = reasons(project)["prepare"]
    assert reason.startswith("param params.prepare: ")
    project.flow(FLOW.replace('track_params = ["prepare.*"]', 'track_params = ["prepare.sed"]'),
                 {"params.yaml": YAML})
    result = project.run("status")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "flowmake: error: flow.toml:7: targets.prepare.track_params: 'prepare.sed' matches no"
        " project param (did you mean 'prepare.seed'?)")


def test_params_file_errors_name_the_file_and_line(project: Any) -> None:
    project.flow(FLOW, {"params.yaml": "prepare:\n  seed: [1\ntrain: {}\n"})
    result = project.run("status")
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("flowmake: error: params.yaml:3: invalid YAML"), first
    project.write("params.yaml", "- 1\n- 2\n")
    result = project.run("status")
    assert "params.yaml: a params file must hold a table" in result.stderr
    project.path("params.yaml").unlink()
    result = project.run("status")
    assert "flow.toml:3: flow.params_files: 'params.yaml': no such file" in result.stderr
    project.write("params.yaml", "train:\n  lr: 1\n")
    project.flow(FLOW.replace('params_files = ["params.yaml"]',
                              'params_files = ["params.yaml"]\n\n[params]\ntrain = 1'))
    result = project.run("status")
    assert "param 'train' is also declared in flow.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_edited_params_file_is_read_again(project: Any) -> None:
    # The compiled flow and the no-op fast path follow the params file's stat.
    project.flow(FLOW, {"params.yaml": YAML})
    project.build()
    project.build()
    project.write("params.yaml", YAML.replace("epochs: 3", "epochs: 4"))
    assert project.build()["train"] == "built"
    assert project.read("out/train.txt") == "lr=0.1 epochs=4\n"


def test_flow_toml_params_nest_by_dots_too(project: Any) -> None:
    project.flow("""
        [flow]
        cache = false

        [params.train]
        lr = 0.1

        [targets.t]
        cmd     = "echo ${params.train.lr} > ${outputs}"
        outputs = ["out.txt"]
    """)
    project.build()
    assert project.read("out.txt") == "0.1\n"
    result = project.run("status", "-p", "train.lr=0.2", "--json", check=True)
    assert json.loads(result.stdout)["targets"][0]["reasons"][-1] == (
        "param params.train.lr: 0.1 → 0.2")
