"""flowmake.model: frozen values, computed fields and compact pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from flowmake.model import Call, Input, Output, Project, Settings, Shell, Target, is_glob, is_url


@pytest.mark.parametrize(("path", "url"), [
    ("s3://bucket/key", True), ("memory://x", True), ("gs://b/o", True),
    ("data/raw.csv", False), ("/abs/path", False), ("C:relative", False),
])
def test_is_url(path, url):
    assert is_url(path) is url


@pytest.mark.parametrize(("path", "glob"), [
    ("src/*.py", True), ("src/**/x", True), ("a?.txt", True), ("[ab].csv", True),
    ("data/raw.csv", False), ("dir/", False),
])
def test_is_glob(path, glob):
    assert is_glob(path) is glob


def test_input_and_output_compute_flags():
    assert (Input("src/*.py").glob, Input("src/*.py").url) == (True, False)
    assert (Input("s3://b/k", "df").url, Input("s3://b/k", "df").name) == (True, "df")
    assert Output("models/m.pkl", "model").url is False
    assert Output("memory://out").url is True


def test_shell_text_includes_cwd():
    assert Shell("make").text == "make"
    assert Shell("make", "sub/dir").text == "cd sub/dir && make"


def test_call_module_and_text():
    call = Call("pipeline.steps:clean", "2")
    assert call.module == "pipeline.steps"
    assert call.text == "python pipeline.steps:clean (version 2)"
    assert Call("pipeline.steps:clean").text == "python pipeline.steps:clean"


def test_target_kind_and_defaults():
    shell = Target("a", Shell("true"))
    python = Target("b", Call("m:f"))
    assert (shell.kind, python.kind) == ("cmd", "python")
    assert shell.inputs == () and shell.params == {} and shell.cache is True
    assert shell.retries == 0 and shell.timeout is None and shell.matrix is None


def test_values_are_frozen():
    target = Target("a", Shell("true"))
    with pytest.raises(AttributeError):
        target.name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Input("x").path = "y"  # type: ignore[misc]


def test_pickle_round_trip_keeps_everything():
    target = Target(
        "sweep[lr=0.1]", Shell("fit --lr 0.1", "sub"),
        inputs=(Input("data/*.csv"), Input("s3://b/x", "remote")),
        outputs=(Output("models/m.pkl", "model"),),
        deps=("clean",), params={"lr": 0.1}, project_params={"seed": 1}, env=("HOME",),
        always=True, cache=False, timeout=5.0, retries=2, help="h",
        resources={"cpu": 1.0}, matrix="sweep", line=7,
    )
    clone = pickle.loads(pickle.dumps(target, protocol=5))
    assert clone == target
    assert clone.inputs[0].glob is True and clone.inputs[1].url is True
    assert pickle.loads(pickle.dumps(Call("m:f", "v1"))) == Call("m:f", "v1")


def test_project_state_dir():
    project = Project(Path("/p"), Path("/p/flow.toml"), Settings(), {}, {})
    assert project.state_dir == Path("/p/.flowmake")
    assert Settings().cache == ".flowmake/cache" and Settings().history == 100
