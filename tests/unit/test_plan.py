"""flowmake.plan.check: keys, staleness reasons and plans over a real Store and real files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from flowmake.cli.workspace import Workspace
from flowmake.config import load as config
from flowmake.errors import ConfigError
from flowmake.graph import build_graph
from flowmake.plan.check import Checker, State
from flowmake.plan.fingerprint import Hasher
from flowmake.plan.reasons import Reason, ReasonDetail, diff_parts
from flowmake.store.db import Record, Store

from .helpers import checker_for, simulate_build, write

PIPELINE = """
    [params]
    lr = 0.1
    seed = 1

    [targets.raw]
    cmd = "fetch ${inputs} > ${outputs}"
    inputs = ["scripts/fetch.sh"]
    outputs = ["data/raw.csv"]

    [targets.clean]
    cmd = "clean ${inputs} > ${outputs}"
    inputs = ["data/raw.csv"]
    outputs = ["data/clean.csv"]

    [targets.train]
    cmd = "train --lr ${params.lr} ${inputs} > ${outputs}"
    inputs = ["data/clean.csv"]
    outputs = ["models/model.txt"]

    [targets.other]
    cmd = "other ${inputs} > ${outputs}"
    inputs = ["scripts/other.sh"]
    outputs = ["other.txt"]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write(tmp_path, "scripts/fetch.sh", "echo a,b\n")
    write(tmp_path, "scripts/other.sh", "echo other\n")
    return tmp_path


@pytest.fixture
def built(root, load_flow, store):
    """The pipeline, loaded and recorded as built."""
    project = load_flow(PIPELINE)
    simulate_build(project, store)
    return project


def reasons(step) -> list[Reason]:
    return [r.reason for r in step.reasons]


def check(project, store, name, **kwargs):
    return checker_for(project, store, **kwargs).check(project.targets[name])


# -- fresh and new --------------------------------------------------------------------


def test_never_built_is_new(root, load_flow, store):
    project = load_flow(PIPELINE)
    step = check(project, store, "raw")
    assert step.state is State.STALE
    assert reasons(step) == [Reason.NEW]
    assert step.key is not None and step.parts is not None
    assert str(step.reasons[0]) == "never built"


def test_fresh_after_recording(built, store):
    checker = checker_for(built, store)
    for name in built.targets:
        step = checker.check(built.targets[name])
        assert step.state is State.FRESH, (name, step.reasons)
        assert step.reasons == ()
        assert step.key == store.record(name).key


def test_plan_after_build_is_empty(built, store):
    plan = checker_for(built, store).plan(built.targets)
    assert plan.stale() == []
    assert sorted(s.name for s in plan.steps) == sorted(built.targets)
    assert all(s.state is State.FRESH and s.reasons == () for s in plan.steps)


def test_touching_an_input_without_changing_it_is_fresh(built, store, root):
    path = root / "scripts/fetch.sh"
    future = time.time_ns() + 10**9
    os.utime(path, ns=(future, future))
    assert check(built, store, "raw").state is State.FRESH


def test_rewriting_an_input_with_same_content_is_fresh(built, store, root):
    path = root / "scripts/fetch.sh"
    content = path.read_text()
    path.unlink()
    path.write_text(content)  # new inode, new mtime
    assert check(built, store, "raw").state is State.FRESH


# -- each reason ----------------------------------------------------------------------


def test_input_changed(built, store, root):
    old = json.loads(store.record("raw").parts_json)["inputs"]["scripts/fetch.sh"]
    write(root, "scripts/fetch.sh", "echo changed\n")
    step = check(built, store, "raw")
    assert step.state is State.STALE
    assert reasons(step) == [Reason.INPUT]
    detail = step.reasons[0]
    assert detail.subject == "scripts/fetch.sh"
    assert detail.old == old and detail.new != old
    assert str(detail) == "input changed: scripts/fetch.sh"


def test_param_changed_old_to_new(built, store, load_flow):
    changed = load_flow(PIPELINE, overrides={"lr": 0.2})
    step = check(changed, store, "train")
    assert step.state is State.STALE
    # The command text holds the value too, so the command changed as well.
    assert Reason.PARAM in reasons(step)
    param = next(r for r in step.reasons if r.reason is Reason.PARAM)
    assert (param.subject, param.old, param.new) == ("params.lr", 0.1, 0.2)
    assert str(param) == "param params.lr: 0.1 → 0.2"


def test_own_param_changed(root, load_flow, store):
    text = """
        [targets.t]
        python = "m:f"
        params = { threshold = 0.5, name = "a" }
        outputs = ["t.out"]
    """
    simulate_build(load_flow(text), store)
    step = check(load_flow(text.replace("0.5", "0.7")), store, "t")
    assert reasons(step) == [Reason.PARAM]
    assert (step.reasons[0].subject, step.reasons[0].old, step.reasons[0].new) == \
        ("threshold", 0.5, 0.7)


def test_param_added_shows_unset(root, load_flow, store):
    simulate_build(load_flow("""
        [targets.t]
        python = "m:f"
        params = { a = 1 }
    """), store)
    step = check(load_flow("""
        [targets.t]
        python = "m:f"
        params = { a = 1, b = "x" }
    """), store, "t")
    assert reasons(step) == [Reason.PARAM]
    assert str(step.reasons[0]) == 'param b: (unset) → "x"'


def test_unused_project_param_change_keeps_target_fresh(built, store, load_flow):
    changed = load_flow(PIPELINE, overrides={"lr": 0.5, "seed": 9})
    checker = checker_for(changed, store)
    assert checker.check(changed.targets["raw"]).state is State.FRESH
    assert checker.check(changed.targets["clean"]).state is State.FRESH
    assert checker.check(changed.targets["train"]).state is State.STALE


def test_command_changed(built, store, load_flow):
    changed = load_flow(PIPELINE.replace('"other ${inputs}', '"other --verbose ${inputs}'))
    step = check(changed, store, "other")
    assert reasons(step) == [Reason.COMMAND]
    assert step.reasons[0].old == "other scripts/other.sh > other.txt"
    assert step.reasons[0].new == "other --verbose scripts/other.sh > other.txt"


def test_env_changed(root, load_flow, store):
    text = """
        [targets.t]
        cmd = "echo $$FOO > ${outputs}"
        env = ["FOO"]
        outputs = ["t.txt"]
    """
    project = load_flow(text)
    simulate_build(project, store, environ={"FOO": "1"})
    assert check(project, store, "t", environ={"FOO": "1"}).state is State.FRESH
    for environ in ({"FOO": "2"}, {}, {"FOO": ""}):
        step = check(project, store, "t", environ=environ)
        assert reasons(step) == [Reason.ENV], environ
        assert step.reasons[0].subject == "FOO"
    # Variables that are not listed never matter.
    assert check(project, store, "t", environ={"FOO": "1", "BAR": "x"}).state is State.FRESH


def test_output_missing(built, store, root):
    (root / "data/clean.csv").unlink()
    step = check(built, store, "clean")
    assert reasons(step) == [Reason.OUTPUT_MISSING]
    assert step.reasons[0].subject == "data/clean.csv"


def test_output_modified(built, store, root):
    recorded = store.record("other").outputs["other.txt"]
    write(root, "other.txt", "tampered\n")
    step = check(built, store, "other")
    assert reasons(step) == [Reason.OUTPUT_MODIFIED]
    detail = step.reasons[0]
    assert (detail.subject, detail.old) == ("other.txt", recorded)
    assert detail.new != recorded


def test_a_record_without_a_declared_outputs_hash_vouches_for_none(root, load_flow, store):
    """SPEC: fresh when every output exists with the hash recorded. An entry that lacks
    one (a flow.lock cut short, or edited by hand at a merge) leaves that output unchecked:
    the target is stale, even with the very key and the other outputs intact."""
    project = load_flow(PIPELINE.replace('outputs = ["other.txt"]',
                                         'outputs = ["other.txt", "other.log"]'))
    write(root, "other.log", "log\n")
    simulate_build(project, store)
    assert check(project, store, "other").state is State.FRESH
    whole = store.record("other")
    partial = whole._replace(outputs_json=json.dumps(
        {k: v for k, v in whole.outputs.items() if k != "other.log"}))
    store.put_record(partial)
    write(root, "other.log", "changed since\n")
    step = check(project, store, "other")
    assert step.state is State.STALE
    assert step.reasons == (ReasonDetail(Reason.OUTPUT_UNRECORDED, "other.log"),)
    assert str(step.reasons[0]) == "output not recorded: other.log"


def test_declared_outputs_changed(built, store, load_flow):
    changed = load_flow(PIPELINE.replace('outputs = ["other.txt"]',
                                         'outputs = ["other.txt", "other.log"]'))
    step = check(changed, store, "other")
    assert Reason.OUTPUTS in reasons(step)


def test_always(root, load_flow, store):
    project = load_flow("""
        [targets.phony]
        cmd = "date"
        always = true
    """)
    simulate_build(project, store)
    step = check(project, store, "phony")
    assert step.state is State.STALE
    assert reasons(step) == [Reason.ALWAYS]


def test_forced(built, store):
    step = check(built, store, "raw", force=True)
    assert step.state is State.STALE
    assert reasons(step) == [Reason.FORCED]
    assert str(step.reasons[0]) == "forced (-B)"


def test_glob_input_added_and_removed(root, load_flow, store):
    write(root, "src/a.py", "a")
    write(root, "src/b.py", "b")
    project = load_flow("""
        [targets.lint]
        cmd = "ruff check src"
        inputs = ["src/**/*.py"]
    """)
    simulate_build(project, store)
    assert check(project, store, "lint").state is State.FRESH

    write(root, "src/pkg/c.py", "c")
    step = check(project, store, "lint")
    assert reasons(step) == [Reason.INPUT_ADDED]
    assert step.reasons[0].subject == "src/pkg/c.py"
    assert step.parts["globs"]["src/**/*.py"] == ["src/a.py", "src/b.py", "src/pkg/c.py"]

    (root / "src/pkg/c.py").unlink()
    (root / "src/a.py").unlink()
    step = check(project, store, "lint")
    assert reasons(step) == [Reason.INPUT_REMOVED]
    assert step.reasons[0].subject == "src/a.py"


def test_folder_input_content_change(root, load_flow, store):
    write(root, "conf/a.yml", "a: 1")
    project = load_flow("""
        [targets.t]
        cmd = "true"
        inputs = ["conf"]
    """)
    simulate_build(project, store)
    write(root, "conf/nested/b.yml", "b: 2")
    step = check(project, store, "t")
    assert reasons(step) == [Reason.INPUT]
    assert step.reasons[0].subject == "conf"


def test_code_changed_through_code_parts(root, load_flow, store):
    project = load_flow("""
        [targets.t]
        python = "pipeline.steps:clean"
    """)
    graph = build_graph(project)
    checker = Checker(graph, {}, Hasher(str(root)), code_parts=lambda t: {"pipeline.steps": "h1"})
    parts, _ = checker.parts(project.targets["t"])
    assert parts["code"] == {"pipeline.steps": "h1"}
    store.put_record(Record("t", checker.key(parts), json.dumps(parts), "{}", 1, 0.0, 0.0))
    later = Checker(graph, store.records(), Hasher(str(root)),
                    code_parts=lambda t: {"pipeline.steps": "h2", "pipeline.util": "u"})
    step = later.check(project.targets["t"])
    assert reasons(step) == [Reason.CODE, Reason.CODE]
    assert [r.subject for r in step.reasons] == ["pipeline.steps", "pipeline.util"]
    assert str(step.reasons[0]) == "code changed: pipeline.steps"


def test_version_change_makes_python_target_stale(root, load_flow, store):
    text = """
        [targets.t]
        python = "pipeline.steps:make"
        outputs = ["out.txt"]
        version = "1"
    """
    simulate_build(load_flow(text), store)
    load_flow(text.replace('"1"', '"2"'))
    workspace = Workspace(root, None, {})
    try:
        step = workspace.checker().check(workspace.project.targets["t"])
    finally:
        workspace.close()
    assert step.state is State.STALE


@pytest.mark.parametrize("new", ["true", "1.0"])
def test_param_type_change_is_stale(root, load_flow, store, new):
    text = """
        [targets.t]
        python = "m:f"
        params = { x = 1 }
        outputs = ["o.txt"]
    """
    simulate_build(load_flow(text), store)
    changed = load_flow(text.replace("x = 1", f"x = {new}"))
    step = check(changed, store, "t")
    assert step.key != store.record("t").key  # the key did change ...
    assert step.state is State.STALE          # ... so the target must not be fresh


def test_parts_with_a_toml_date_param_can_be_recorded(root, load_flow, store):
    project = load_flow("""
        [params]
        day = 2024-01-01

        [targets.t]
        cmd = "echo ${params.day} > ${outputs}"
        outputs = ["out.txt"]
    """)
    assert project.targets["t"].action.command == "echo 2024-01-01 > out.txt"
    step = check(project, store, "t")
    # A record stores the parts as JSON; they must survive the trip with the same key.
    parts = json.loads(json.dumps(step.parts))
    assert Checker.key(parts) == step.key


def test_upstream_reason_in_plan(built, store, root):
    write(root, "scripts/fetch.sh", "echo new\n")
    plan = checker_for(built, store).plan(built.targets)
    by_name = {s.name: s for s in plan.steps}
    assert reasons(by_name["raw"]) == [Reason.INPUT]
    assert reasons(by_name["clean"]) == [Reason.UPSTREAM]
    assert by_name["clean"].reasons[0].subject == "raw"
    assert reasons(by_name["train"]) == [Reason.UPSTREAM]
    assert by_name["train"].reasons[0].subject == "clean"
    assert by_name["other"].state is State.FRESH
    assert {s.name for s in plan.stale()} == {"raw", "clean", "train"}
    # Steps come in build order.
    names = [s.name for s in plan.steps]
    assert names.index("raw") < names.index("clean") < names.index("train")


def test_missing_upstream_output_without_stale_upstream(built, store, root):
    # clean's input is gone but raw is not rebuilt (e.g. plan of clean alone): stale, no key.
    (root / "data/raw.csv").unlink()
    step = checker_for(built, store).plan(["clean"]).steps[0]
    assert step.key is None and step.parts is None
    assert reasons(step) == [Reason.INPUT_REMOVED]
    assert step.reasons[0].subject == "data/raw.csv"


def test_missing_upstream_output_with_stale_upstream(built, store, root):
    (root / "data/raw.csv").unlink()
    plan = checker_for(built, store).plan(["raw", "clean"])
    raw, clean = plan.steps
    assert reasons(raw) == [Reason.OUTPUT_MISSING]
    assert reasons(clean) == [Reason.UPSTREAM]
    assert clean.key is None


def test_restorable(built, store, root):
    write(root, "scripts/other.sh", "echo v2\n")
    seen = []

    def cached(target, key):
        seen.append((target.name, key))
        return True

    step = check(built, store, "other", cached=cached)
    assert step.state is State.RESTORABLE
    assert seen == [("other", step.key)]
    assert check(built, store, "other", cached=cached, force=True).state is State.STALE
    assert check(built, store, "other", cached=lambda t, k: False).state is State.STALE


def test_check_sources(root, load_flow, store):
    import fsspec

    fsspec.filesystem("memory").pipe("memory://plan-test/x", b"1")  # a URL input that exists
    project = load_flow("""
        [targets.a]
        cmd = "true"
        inputs = ["scripts/fetch.sh", "memory://plan-test/x", "src/*.py"]
        outputs = ["gen/a.txt"]
        [targets.b]
        cmd = "true"
        inputs = ["gen/a.txt", "gen"]
        [targets.c]
        cmd = "true"
        inputs = ["does/not/exist.csv"]
    """)
    checker = checker_for(project, store)
    checker.check_sources(["a", "b"])  # globs and produced paths are not checked
    with pytest.raises(ConfigError) as info:
        checker.check_sources(["a", "c"])
    assert info.value.key == "targets.c.inputs"
    assert "does/not/exist.csv" in info.value.detail
    assert "'c'" in info.value.detail
    fsspec.filesystem("memory").rm("memory://plan-test/x")
    checker = checker_for(project, store)
    with pytest.raises(ConfigError, match="memory://plan-test/x"):  # URLs are, by backend
        checker.check_sources(["a"])


# -- the key --------------------------------------------------------------------------


def base_parts() -> dict:
    return {
        "action": "run",
        "params": {"b": 2, "a": {"y": [1, 2], "x": "s"}},
        "project_params": {"lr": 0.1, "seed": 1},
        "env": {"HOME": "h"},
        "inputs": {"z.txt": "1", "a.txt": "2"},
        "globs": {"src/*.py": ["src/a.py"]},
        "outputs": ["o1", "o2"],
    }


def test_key_ignores_dict_order():
    parts = base_parts()
    reordered = {
        "outputs": ["o1", "o2"],
        "inputs": {"a.txt": "2", "z.txt": "1"},
        "globs": {"src/*.py": ["src/a.py"]},
        "env": {"HOME": "h"},
        "project_params": {"seed": 1, "lr": 0.1},
        "params": {"a": {"x": "s", "y": [1, 2]}, "b": 2},
        "action": "run",
    }
    assert Checker.key(parts) == Checker.key(reordered)
    assert len(Checker.key(parts)) == 32


@pytest.mark.parametrize("change", [
    lambda p: p.update(action="run2"),
    lambda p: p["params"].update(b=3),
    lambda p: p["params"]["a"]["y"].reverse(),
    lambda p: p["project_params"].update(lr=0.2),
    lambda p: p["env"].update(HOME="other"),
    lambda p: p["inputs"].update({"a.txt": "3"}),
    lambda p: p["inputs"].update({"new.txt": "3"}),
    lambda p: p["globs"]["src/*.py"].append("src/b.py"),
    lambda p: p.update(outputs=["o2", "o1"]),
    lambda p: p.update(code={"m": "h"}),
    lambda p: p.pop("env"),
])
def test_key_changes_with_every_part(change):
    parts = base_parts()
    change(parts)
    assert Checker.key(parts) != Checker.key(base_parts())


def test_key_is_stable_through_a_json_round_trip():
    parts = base_parts()
    assert Checker.key(json.loads(json.dumps(parts))) == Checker.key(parts)


# -- reasons as data ------------------------------------------------------------------


def test_diff_parts_lists_every_difference():
    old = base_parts()
    new = base_parts()
    new["action"] = "run2"
    new["params"]["b"] = 5
    new["env"]["HOME"] = "x"
    new["inputs"] = {"a.txt": "9", "added.txt": "1"}
    found = [(r.reason, r.subject) for r in diff_parts(old, new)]
    assert found == [
        (Reason.COMMAND, ""), (Reason.PARAM, "b"), (Reason.ENV, "HOME"),
        (Reason.INPUT, "a.txt"), (Reason.INPUT_ADDED, "added.txt"),
        (Reason.INPUT_REMOVED, "z.txt"),
    ]
    assert diff_parts(old, base_parts()) == []


def test_diff_parts_python_action_is_code():
    found = diff_parts({"action": "python m:f"}, {"action": "python m:g"})
    assert [r.reason for r in found] == [Reason.CODE]


def test_reason_detail_json():
    detail = ReasonDetail(Reason.PARAM, "lr", 0.1, 0.2)
    assert detail.to_json() == {"reason": "param", "text": "param lr: 0.1 → 0.2",
                                "subject": "lr", "old": 0.1, "new": 0.2}
    assert ReasonDetail(Reason.NEW).to_json() == {"reason": "new", "text": "never built"}
    assert str(ReasonDetail(Reason.OUTPUT_MISSING, "a.txt")) == "output missing: a.txt"


def test_plan_records_come_from_the_store_file(built, root):
    # A second Store on the same folder sees the same records (it is the same database).
    other = Store(root / ".flowmake")
    try:
        plan = Checker(build_graph(built), other.records(), Hasher(str(root)),
                       environ={}).plan(built.targets)
    finally:
        other.close()
    assert plan.stale() == []


def test_loaded_config_round_trip(built, root):
    # Loading the same file again gives the same keys: nothing time- or order-dependent.
    again = config.load(root / "flow.toml")
    first = Checker(build_graph(built), {}, Hasher(str(root)), environ={})
    second = Checker(build_graph(again), {}, Hasher(str(root)), environ={})
    for name in built.targets:
        assert first.check(built.targets[name]).key == second.check(again.targets[name]).key
