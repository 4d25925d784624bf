"""Function-level code keys of python targets (SPEC §10), through the ``flowmake`` command.

A target's code key covers its function and what it uses; editing another function of
the same module rebuilds nothing, and ``status``/``why`` name the function that changed.
"""

from __future__ import annotations

import json
from typing import Any

FLOW = """
[flow]
cache = false

[targets.fit]
python  = "pipeline.model:fit"
outputs = ["out/fit.json"]

[targets.predict]
python  = "pipeline.model:predict"
outputs = ["out/predict.json"]

[targets.report]
python  = "pipeline.report:report"
outputs = ["out/report.json"]
"""

FILES = {
    "pipeline/__init__.py": "",
    "pipeline/helpers.py": '''"""Shared helpers."""

SCALE = 2
OFFSET = 1


def scaled(x):
    """Scale x."""
    return x * SCALE


def shifted(x):
    return x + OFFSET
''',
    "pipeline/model.py": '''import json

from pipeline.helpers import scaled
from pipeline import helpers


def fit():
    # the model
    return {"fit": scaled(10)}


def predict():
    return {"predict": helpers.shifted(1)}
''',
    "pipeline/report.py": '''from pipeline import model


def report():
    return {"report": model.fit()["fit"] + 1}
''',
}


def setup(project: Any) -> None:
    project.flow(FLOW, FILES)
    assert project.build() == {"fit": "built", "predict": "built", "report": "built"}


def edit(project: Any, rel: str, old: str, new: str) -> None:
    text = project.read(rel)
    assert old in text, old
    project.write(rel, text.replace(old, new))


def reasons(project: Any) -> dict[str, list[str]]:
    return {n: t["reasons"] for n, t in project.states().items()}


def test_editing_one_function_rebuilds_only_its_targets(project: Any) -> None:
    setup(project)
    edit(project, "pipeline/model.py", '{"predict": helpers.shifted(1)}',
         '{"predict": helpers.shifted(2)}')
    assert reasons(project) == {"fit": [], "predict": ["code changed: pipeline.model.predict"],
                                "report": []}
    why = project.run("why", "predict", check=True).stdout
    assert "code changed: pipeline.model.predict" in why
    assert "pipeline.model.fit" not in why
    doc = json.loads(project.run("why", "predict", "--json", check=True).stdout)
    [code] = [r for r in doc["reasons"] if r["reason"] == "code"]
    assert code["subject"] == "pipeline.model.predict" and code["old"] != code["new"]
    assert project.build() == {"fit": "fresh", "predict": "built", "report": "fresh"}
    assert json.loads(project.read("out/predict.json")) == {"predict": 3}


def test_a_helper_reaches_the_targets_that_use_it_across_modules(project: Any) -> None:
    setup(project)
    edit(project, "pipeline/helpers.py", "SCALE = 2", "SCALE = 3")  # fit uses it; so report
    assert reasons(project) == {
        "fit": ["code changed: pipeline.helpers.SCALE"], "predict": [],
        "report": ["code changed: pipeline.helpers.SCALE"]}
    assert project.build() == {"fit": "built", "predict": "fresh", "report": "built"}
    assert json.loads(project.read("out/report.json")) == {"report": 31}
    edit(project, "pipeline/helpers.py", "OFFSET = 1", "OFFSET = 5")  # predict only
    assert project.build() == {"fit": "fresh", "predict": "built", "report": "fresh"}


def test_comments_docstrings_and_unused_code_rebuild_nothing(project: Any) -> None:
    setup(project)
    edit(project, "pipeline/model.py", "# the model", "# the model, documented")
    edit(project, "pipeline/helpers.py", '"""Scale x."""', '"""Scale x by SCALE."""')
    project.write("pipeline/helpers.py", project.read("pipeline/helpers.py")
                  + "\n\ndef unused():\n    return 42\n")
    assert project.build() == {"fit": "fresh", "predict": "fresh", "report": "fresh"}


def test_module_level_code_rebuilds_every_target_of_the_module(project: Any) -> None:
    # A statement that runs on import (not a definition) may change anything: every
    # target whose code imports the module is keyed on it (docs/python.md, "Code keys").
    setup(project)
    edit(project, "pipeline/model.py", "import json\n", "import json\n\njson.loads('1')\n")
    assert reasons(project) == {n: ["code changed: pipeline.model"]
                                for n in ("fit", "predict", "report")}
    assert set(project.build().values()) == {"built"}


def test_the_analysis_cache_is_kept_and_a_damaged_one_is_ignored(project: Any) -> None:
    setup(project)
    cache = project.path(".flowmake/code.marshal")
    assert cache.stat().st_size > 0
    cache.write_bytes(b"\x00garbage")
    edit(project, "pipeline/model.py", "scaled(10)", "scaled(20)")
    assert reasons(project)["fit"] == ["code changed: pipeline.model.fit"]
    assert project.build()["fit"] == "built"
    assert json.loads(project.read("out/fit.json")) == {"fit": 40}
    assert cache.read_bytes() != b"\x00garbage"  # rewritten whole


def test_version_still_replaces_the_code_key(project: Any) -> None:
    project.flow(FLOW.replace('outputs = ["out/fit.json"]',
                              'outputs = ["out/fit.json"]\nversion = "1"'), FILES)
    project.build()
    edit(project, "pipeline/model.py", "scaled(10)", "scaled(20)")
    states = reasons(project)
    assert states["fit"] == [] and states["report"] == ["code changed: pipeline.model.fit"]
