"""docs/plugins.md documents every hook, every interface member, and a plugin that works."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

from flowmake import hookspecs
from flowmake.backends import Backend
from flowmake.executor import Executor
from flowmake.formats import Format
from flowmake.kinds import TargetKind
from flowmake.plugin.manager import Plugins

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def hooks() -> dict[str, inspect.Signature]:
    """Every hook spec in flowmake/hookspecs.py, by name (pluggy marks them)."""
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return {name: inspect.signature(func) for name, func in vars(hookspecs).items()
            if callable(func) and hasattr(func, marker)}


def section(text: str, heading: str) -> str:
    """The text of a markdown section, from its heading to the next one of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", text, re.M | re.S)
    assert match, f"docs/plugins.md has no section '{heading}'"
    return match.group(1)


def test_the_hooks_are_found() -> None:
    assert {"flowmake_register_formats", "flowmake_build_start",
            "flowmake_target_finish"} <= set(hooks())


@pytest.mark.parametrize("name", sorted(hooks()))
def test_every_hook_is_documented_with_its_arguments(name: str) -> None:
    body = section(doc_text(), f"`{name}`")
    signature = hooks()[name]
    assert f"def {name}(" in body, f"{name}: no signature in its section"
    for param in signature.parameters:
        assert re.search(rf"\b{param}\b", body), f"{name}: argument '{param}' undocumented"


def test_no_documented_hook_is_missing_from_hookspecs() -> None:
    documented = set(re.findall(r"^### `(flowmake_\w+)`", doc_text(), re.M))
    assert documented == set(hooks())


@pytest.mark.parametrize(("heading", "protocol"), [
    ("Backend", Backend), ("Format", Format), ("Executor", Executor),
    ("TargetKind", TargetKind)])
def test_every_interface_member_is_documented(heading: str, protocol: type) -> None:
    body = section(doc_text(), heading)
    members = [n for n, v in vars(protocol).items()
               if not n.startswith("_") and callable(v)]
    members += list(getattr(protocol, "__annotations__", {}))  # NAME, EXTENSIONS, ...
    assert members
    for member in members:
        assert f"`{member}" in body, f"{heading}.{member} is not documented"


def test_the_minimal_plugin_in_the_docs_loads(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented plugin module, registered as a [flow] plugins module, serves .yaml."""
    text = doc_text()
    code = re.search(r"`flowmake_yaml/__init__.py`:\n\n```python\n(.*?)```", text, re.S)
    assert code
    (tmp_path / "doc_yaml_plugin.py").write_text(code.group(1))
    monkeypatch.setattr(sys, "path", list(sys.path))  # Plugins puts the root on it
    monkeypatch.delitem(sys.modules, "doc_yaml_plugin", raising=False)
    plugins = Plugins(["doc_yaml_plugin"], str(tmp_path))
    fmt = plugins.format_for("out/config.yml")
    assert type(fmt).__name__ == "YamlFormat"
    impls = [i.plugin_name for i in plugins.pm.hook.flowmake_target_finish.get_hookimpls()]
    assert "doc_yaml_plugin" in impls
    entry = re.search(r"\[project.entry-points.flowmake\]\n(\w+) = \"(\w+)\"", text)
    assert entry and entry.groups() == ("yaml", "flowmake_yaml")
