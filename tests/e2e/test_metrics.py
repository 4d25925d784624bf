"""`metrics = [...]` on targets and `flowmake metrics [TARGET...] [--json] [--history]`."""

from __future__ import annotations

FLOW = """
[params]
acc = 0.8

[targets.eval]
cmd = "mkdir -p eval && echo '{\\"accuracy\\": ${params.acc}, \\"roc\\": {\\"auc\\": 0.9}, \\"model\\": \\"m\\"}' > eval/metrics.json && echo 'loss = 1.5' > eval/loss.toml && echo 'f1: {macro: 0.7}' > eval/f1.yaml"
outputs = ["eval/metrics.json", "eval/loss.toml", "eval/f1.yaml", "eval/other.txt"]
metrics = ["eval/metrics.json", "eval/loss.toml", "eval/f1.yaml"]

[targets.plain]
cmd = "echo hi > ${outputs}"
outputs = ["plain.txt"]
"""


def values(doc):
    return {(m["path"], m["name"]): m for m in doc["metrics"]}


def test_current_values_flattened_from_json_toml_and_yaml(project):
    project.flow(FLOW.replace(', "eval/other.txt"', ""))
    project.build()
    doc = project.json("metrics", check=True)
    found = values(doc)
    assert set(found) == {("eval/metrics.json", "accuracy"), ("eval/metrics.json", "roc.auc"),
                          ("eval/loss.toml", "loss"), ("eval/f1.yaml", "f1.macro")}
    assert found[("eval/metrics.json", "roc.auc")]["value"] == 0.9  # "model" is text: left out
    assert all(m["target"] == "eval" and m["change"] is None for m in doc["metrics"])
    text = project.run("metrics", check=True).stdout
    assert "eval (eval/metrics.json)\n" in text and "eval (eval/loss.toml)\n" in text
    assert "  roc.auc   0.9\n" in text and "  loss      1.5\n" in text


def test_change_since_the_build_that_changed_them_and_history(project):
    project.flow(FLOW.replace(', "eval/other.txt"', ""))
    project.build()                       # run 1: 0.8
    project.build("-p", "acc=0.85")       # run 2: 0.85
    project.build("-B", "-p", "acc=0.85")  # run 3: 0.85 again: not a change
    doc = project.json("metrics", "eval", check=True)
    acc = values(doc)[("eval/metrics.json", "accuracy")]
    assert acc["value"] == 0.85 and acc["previous"] == 0.8 and acc["previous_run"] == 1
    assert acc["change"] == 0.05
    auc = values(doc)[("eval/metrics.json", "roc.auc")]
    assert auc["previous"] is None and auc["change"] is None  # never changed
    text = project.run("metrics", check=True).stdout
    assert "  accuracy  0.85  +0.05 (was 0.8 in run 1)" in text
    history = project.json("metrics", "--history", check=True)["history"]
    accs = [(h["run_id"], h["value"]) for h in history if h["name"] == "accuracy"]
    assert accs == [(1, 0.8), (2, 0.85), (3, 0.85)]
    table = project.run("metrics", "--history", check=True).stdout.splitlines()
    assert table[0] == "eval:"
    assert table[1].split() == ["run", "accuracy", "roc.auc", "loss", "f1.macro"]
    assert table[2].split() == ["1", "0.8", "0.9", "1.5", "0.7"]
    assert table[3].split()[:2] == ["2", "0.85"]


def test_restored_targets_record_their_metrics(project):
    project.flow(FLOW.replace(', "eval/other.txt"', ""))
    project.build()
    project.build("-p", "acc=0.9")
    assert project.build()["eval"] == "restored"  # 0.8 again, from the cache
    history = project.json("metrics", "--history", check=True)["history"]
    assert [(h["run_id"], h["value"]) for h in history if h["name"] == "accuracy"] == [
        (1, 0.8), (2, 0.9), (3, 0.8)]
    acc = values(project.json("metrics", check=True))[("eval/metrics.json", "accuracy")]
    assert acc["previous"] == 0.9 and acc["previous_run"] == 2


def test_a_metrics_path_must_be_an_output(project):
    project.flow(FLOW.replace('"eval/f1.yaml"]\n', '"eval/f1.yaml", "nope.json"]\n'))
    result = project.run("build", check=2)
    assert "flowmake: error: flow.toml:7: targets.eval.metrics: 'nope.json' is not among" \
        " the target's outputs" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_metrics_file_must_be_json_toml_or_yaml(project):
    project.flow(FLOW.replace('"eval/f1.yaml"]\n', '"eval/f1.yaml", "eval/other.txt"]\n'))
    result = project.run("status", check=2)
    assert "targets.eval.metrics: 'eval/other.txt': a metrics file is JSON, TOML or YAML" \
        in result.stderr


def test_no_metrics_and_unknown_target(project):
    project.flow(FLOW.replace(', "eval/other.txt"', "").replace("metrics = [", "# metrics = ["))
    project.build()
    assert "no metrics" in project.run("metrics", check=True).stdout
    assert project.json("metrics", check=True) == {"metrics": []}
    result = project.run("metrics", "evl", check=2)
    assert "unknown target 'evl'" in result.stderr


def test_an_unreadable_metrics_file_warns_and_builds(project):
    project.flow("""
        [targets.eval]
        cmd = "echo 'not json' > ${outputs}"
        outputs = ["m.json"]
        metrics = ["m.json"]
        """)
    result = project.run("build", check=True)
    assert "warning: metrics of eval not recorded: m.json: not valid JSON" in result.stderr
    assert project.json("metrics", check=True)["metrics"] == []


def test_list_json_shows_each_targets_metrics_and_last_recorded_values(project):
    project.flow(FLOW.replace(', "eval/other.txt"', ""))
    listed = {t["name"]: t for t in project.json("list", check=True)["targets"]}
    assert listed["plain"]["metrics"] == []
    assert [m["path"] for m in listed["eval"]["metrics"]] == [
        "eval/metrics.json", "eval/loss.toml", "eval/f1.yaml"]
    assert all(m["values"] is None and m["run_id"] is None for m in listed["eval"]["metrics"])
    project.build()                       # run 1: 0.8
    project.build("-p", "acc=0.85")       # run 2: the latest values
    listed = {t["name"]: t for t in project.json("list", check=True)["targets"]}
    first = listed["eval"]["metrics"][0]
    assert first == {"path": "eval/metrics.json", "run_id": 2,
                     "values": {"accuracy": 0.85, "roc.auc": 0.9}}
    assert listed["eval"]["metrics"][1]["values"] == {"loss": 1.5}
