"""The notebook kind as flow.toml reads it, in process: the kind finder config is handed
(asked only for a key that is neither cmd nor python), the action the kind builds, and
its code key kept with the notebook's digest (no plugin asked while it is unchanged)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowmake.config.load import load
from flowmake.errors import ConfigError
from flowmake.model import PluginAction, Target
from flowmake.plan.codefp import CodeFingerprint
from flowmake.plan.fingerprint import Hasher


class Finder:
    """A kind finder serving the notebook kind, counting the keys it is asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, key: str, modules: tuple[str, ...], root: str) -> Any:
        from flowmake_notebook.kind import NotebookKind

        self.asked.append(key)
        return NotebookKind() if key == "notebook" else None


def flow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.toml"
    path.write_text(text)
    return path


def test_a_flow_without_kinds_never_asks(tmp_path: Path) -> None:
    finder = Finder()
    project = load(flow(tmp_path, '[targets.a]\ncmd = "true"\n[targets.b]\npython = "m:f"\n'),
                   kinds=finder)
    assert finder.asked == [] and set(project.targets) == {"a", "b"}


def test_matrix_instances_ask_once_and_get_the_action(tmp_path: Path) -> None:
    finder = Finder()
    project = load(flow(tmp_path, """
[targets.nb]
notebook = "nb/./train.ipynb"
executed = "reports/${lr}.ipynb"
matrix = { lr = [1, 2] }
params = { lr = "${lr}" }
"""), kinds=finder)
    assert finder.asked == ["notebook"]
    target = project.targets["nb[lr=1]"]
    assert target.action == PluginAction("notebook", "nb/train.ipynb",
                                         "flowmake_notebook.runner:run",
                                         {"executed": "reports/1.ipynb"})
    assert target.kind == "notebook"
    assert [o.path for o in target.outputs] == ["reports/1.ipynb"]  # executed is an output
    assert target.action.text == "notebook nb/train.ipynb (executed reports/1.ipynb)"


def test_function_mode_is_a_values_job(tmp_path: Path) -> None:
    project = load(flow(tmp_path, '[targets.f]\nnotebook = "a.ipynb"\nfunction = "M.fit"\n'
                                  'version = 2\n'), kinds=Finder())
    action = project.targets["f"].action
    assert isinstance(action, PluginAction)
    assert action.values and action.runner == "flowmake_notebook.runner:call"
    assert action.version == "2" and action.text == "notebook a.ipynb (function M.fit, version 2)"


def test_without_a_finder_the_key_is_unknown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(flow(tmp_path, '[targets.t]\nnotebook = "a.ipynb"\n'))
    assert str(caught.value) == "flow.toml:2: targets.t.notebook: unknown key"


@pytest.mark.parametrize(("value", "message"), [
    ('"/abs/a.ipynb"', "a notebook inside the project"),
    ('"../a.ipynb"', "a notebook inside the project"),
    ('"a.py"', "expected a notebook path ending in .ipynb"),
])
def test_bad_notebook_paths(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(flow(tmp_path, f"[targets.t]\nnotebook = {value}\n"), kinds=Finder())
    assert caught.value.line == 2 and caught.value.key == "targets.t.notebook"
    assert message in caught.value.detail


def notebook(path: Path, *sources: str, outputs: list[Any] | None = None) -> None:
    cells = [{"cell_type": "code", "metadata": {}, "source": s, "execution_count": None,
              "outputs": outputs or []} for s in sources]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {},
                                "cells": cells}))


def test_code_key_is_kept_with_the_notebooks_digest(tmp_path: Path) -> None:
    from flowmake_notebook.kind import NotebookKind

    notebook(tmp_path / "a.ipynb", "x = 1")
    action = PluginAction("notebook", "a.ipynb", "flowmake_notebook.runner:run")
    target = Target("t", action)
    asked: list[str] = []

    def kinds(key: str) -> Any:
        asked.append(key)
        return NotebookKind()

    first = CodeFingerprint(str(tmp_path), Hasher(str(tmp_path)), str(tmp_path), kinds=kinds)
    parts = first.parts(target)
    assert list(parts) == ["a.ipynb"] and asked == ["notebook"]
    assert first.files(target) == [str(tmp_path / "a.ipynb")]
    first.save()
    again = CodeFingerprint(str(tmp_path), Hasher(str(tmp_path)), str(tmp_path), kinds=kinds)
    assert again.parts(target) == parts and asked == ["notebook"]  # from code.marshal
    notebook(tmp_path / "a.ipynb", "x = 1", outputs=[])  # same code, another file
    (tmp_path / "a.ipynb").write_text((tmp_path / "a.ipynb").read_text() + "\n")
    third = CodeFingerprint(str(tmp_path), Hasher(str(tmp_path)), str(tmp_path), kinds=kinds)
    assert third.parts(target) == parts and asked == ["notebook"] * 2  # asked, same key
    notebook(tmp_path / "a.ipynb", "x = 2")
    fourth = CodeFingerprint(str(tmp_path), Hasher(str(tmp_path)), str(tmp_path), kinds=kinds)
    assert fourth.parts(target) != parts
    versioned = Target("t", action._replace(version="1"))
    assert fourth.parts(versioned) == {} and fourth.files(versioned) == []
