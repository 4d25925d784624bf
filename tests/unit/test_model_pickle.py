"""flowmake.model's values pickle as ``tuple.__new__(cls, fields)``: every field kept,
no Python ``__new__`` run while unpickling (flow.pickle holds 50,000 of them)."""

from __future__ import annotations

import copy
import os
import pickle

import pytest

from flowmake import model
from flowmake.model import Call, Input, Output, PluginAction, Shell, Target


def sample() -> Target:
    return Target(
        "sweep[lr=0.1]", Shell("fit --lr 0.1", "sub"),
        inputs=(Input("data/*.csv"), Input("s3://b/x", "remote"), Input("plain.txt")),
        outputs=(Output("models/m.pkl", "model"), Output("memory://o")),
        deps=("clean",), params={"lr": 0.1}, env=("HOME",), timeout=5.0, line=7)


def test_unpickled_inputs_and_outputs_keep_their_glob_and_url_flags():
    clone = pickle.loads(pickle.dumps(sample(), protocol=5))
    assert [(i.glob, i.url) for i in clone.inputs] == [(True, False), (False, True),
                                                       (False, False)]
    assert [o.url for o in clone.outputs] == [False, True]
    assert clone == sample() and type(clone.inputs[0]) is Input
    assert type(clone.outputs[0]) is Output and type(clone.action) is Shell


def test_unpickling_recomputes_nothing(monkeypatch):
    data = pickle.dumps(sample(), protocol=5)

    def refuse(path: str) -> bool:
        raise AssertionError(f"recomputed for {path}")

    monkeypatch.setattr(model, "is_glob", refuse)
    monkeypatch.setattr(model, "is_url", refuse)
    clone = pickle.loads(data)  # Input.__new__ and Output.__new__ would call them
    assert clone.inputs[0].glob is True and clone.outputs[1].url is True


def test_empty_dicts_unpickle_as_one_shared_dict_and_full_ones_as_they_were():
    targets = [sample(), Target("b", Shell("true")), Target("c", Shell("x"), params={})]
    clones = pickle.loads(pickle.dumps(targets, protocol=5))
    assert clones == targets
    empties = {id(d) for t in clones for d in (t.project_params, t.resources)}
    empties |= {id(clones[1].params), id(clones[2].params)}
    assert len(empties) == 1  # one dict, not one per field
    assert clones[0].params == {"lr": 0.1}


@pytest.mark.parametrize("value", [
    Call("m:f", "v1"), Call("m:f"), Shell("make"),
    PluginAction("notebook", "nb.ipynb", "r:run", {"function": "f"}, "2", True),
])
def test_actions_round_trip_through_pickle_and_copy(value):
    assert pickle.loads(pickle.dumps(value, protocol=5)) == value
    assert type(pickle.loads(pickle.dumps(value))) is type(value)
    assert copy.deepcopy(value) == value and copy.copy(value) == value



def test_flow_pickle_unpickles_the_names_first_as_the_very_keys(tmp_path):
    # A resident fork that walks the names writes their reference counts, copying the
    # pages they are on: unpickled first, one after another, they share few pages. That
    # holds only if the names walked (the targets' keys, each Target's name, the graph's
    # keys) are those very objects.
    from flowmake.cli.workspace import load_compiled
    from flowmake.store import paths

    flow = tmp_path / "flow.toml"
    flow.write_text("".join(f'[targets.t{i}]\ncmd = "true"\n' for i in range(50)))
    load_compiled(flow, {})  # parsed, and flow.pickle written
    saved = pickle.loads((tmp_path / paths.STATE_DIR / paths.COMPILED_FLOW).read_bytes())
    _, _, names, project, graph, _ = saved
    assert names == tuple(f"t{i}" for i in range(50))
    for name, key, graph_key in zip(names, project.targets, graph.targets, strict=True):
        assert name is key is graph_key is project.targets[key].name


@pytest.mark.slow
def test_an_included_file_edited_while_the_flow_is_parsed_is_read_again(tmp_path,
                                                                         monkeypatch):
    """flow.pickle is trusted only for files older than the parse's start (less the racy
    window): an included file edited after the parse read it, in a parse longer than
    the window, must not leave the old targets compiled."""
    import time

    from flowmake.cli.workspace import load_compiled
    from flowmake.config import load as config_load

    (tmp_path / "flows").mkdir()
    (tmp_path / "flow.toml").write_text('[flow]\ninclude = ["flows/more.toml"]\n')
    more = tmp_path / "flows" / "more.toml"
    more.write_text('[targets.old]\ncmd = "true"\n')
    past = time.time() - 10
    for path in (tmp_path / "flow.toml", more):
        os.utime(path, (past, past))
    real = config_load.load

    def slow(*args, **kwargs):
        found = real(*args, **kwargs)
        more.write_text('[targets.new]\ncmd = "true"\n')  # after it was read
        time.sleep(2.5)  # a parse longer than the racy window
        return found

    monkeypatch.setattr(config_load, "load", slow)
    project, _, reparsed, _ = load_compiled(tmp_path / "flow.toml", {})
    assert reparsed and set(project.targets) == {"old"}
    monkeypatch.setattr(config_load, "load", real)
    project, _, reparsed, _ = load_compiled(tmp_path / "flow.toml", {})
    assert reparsed and set(project.targets) == {"new"}
