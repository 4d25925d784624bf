"""examples/dvc-get-started: DVC's get-started pipeline shape, params.yaml read by the
scripts themselves and tracked with track_params (SPEC §10). Run on a copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("numpy")
pytest.importorskip("yaml")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dvc-get-started"
STAGES = ["generate", "prepare", "featurize", "train", "evaluate"]


@pytest.fixture
def example(project: Any) -> Any:
    shutil.copytree(EXAMPLE, project.root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".flowmake", "data", "eval", "model.pkl",
                                                  "flow.lock", "__pycache__"))
    return project


def edit_params(project: Any, old: str, new: str) -> None:
    text = project.read("params.yaml")
    assert old in text, old
    project.write("params.yaml", text.replace(old, new))


def test_the_pipeline_builds_and_only_the_stages_a_param_feeds_rebuild(example: Any) -> None:
    assert example.build() == dict.fromkeys(STAGES, "built")
    metrics = json.loads(example.read("eval/metrics.json"))
    assert metrics["test_rows"] == 100 and metrics["accuracy"] > 0.7
    assert example.build() == dict.fromkeys(STAGES, "fresh")

    edit_params(example, "lr: 0.5", "lr: 0.05")  # read by train.py only
    states = example.states()
    fresh = {n for n, s in states.items() if s["state"] == "fresh"}
    assert fresh == {"generate", "prepare", "featurize"}
    assert "upstream stale: train" in states["evaluate"]["reasons"]
    assert states["train"]["reasons"] == ["param params.train.lr: 0.5 → 0.05"]
    assert "param params.train.lr: 0.5 → 0.05" in example.run("why", "train", check=True).stdout
    assert example.build() == {"generate": "fresh", "prepare": "fresh", "featurize": "fresh",
                               "train": "built", "evaluate": "built"}
    assert json.loads(example.read("eval/metrics.json")) != metrics


def test_featurize_params_rebuild_from_featurize_on(example: Any) -> None:
    example.build()
    edit_params(example, "max_features: 50", "max_features: 10")
    assert example.build() == {"generate": "fresh", "prepare": "fresh", "featurize": "built",
                               "train": "built", "evaluate": "built"}
    # A key no stage tracks (a note for people) rebuilds nothing.
    example.write("params.yaml", example.read("params.yaml") + "notes:\n  owner: me\n")
    assert example.build() == dict.fromkeys(STAGES, "fresh")


def test_the_committed_lock_holds_every_stage_and_its_tracked_params(example: Any) -> None:
    # flow.lock is committed beside flow.toml, as a project's would be: each stage's
    # entry holds the params it tracks, for `status` and `why` in a fresh clone.
    lock = (EXAMPLE / "flow.lock").read_text()
    for stage in STAGES:
        assert f"[targets.{stage}]" in lock
    assert "train.lr" in lock
