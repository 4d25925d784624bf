"""Notebooks for the flowmake-notebook tests, run in real Jupyter kernels (ipykernel's
``python3``).

Without nbclient these tests skip, unless ``FLOWMAKE_NOTEBOOK_TESTS=required`` (CI)
makes that a failure. Anything else missing (the plugin, ipykernel, the kernel) fails.
Test modules import the plugin through the ``nb`` fixture, never at their top, so that a
missing nbclient skips them rather than breaking their collection.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture(autouse=True, scope="session")
def _nbclient_present() -> None:
    try:
        import nbclient  # noqa: F401
    except ImportError:
        reason = "nbclient is not installed (pip install -e plugins/flowmake-notebook)"
        if os.environ.get("FLOWMAKE_NOTEBOOK_TESTS") == "required":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def nb() -> ModuleType:
    """The plugin package, ``flowmake_notebook``."""
    import flowmake_notebook

    return flowmake_notebook


class Notebooks:
    """Writes nbformat-4 notebooks as Jupyter saves them (one JSON file, 1-space indent)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._ids = 0

    def code(self, source: str, *tags: str, outputs: list[Any] | None = None,
             count: int | None = None) -> dict[str, Any]:
        return {**self._cell("code", source, tags), "execution_count": count,
                "outputs": outputs or []}

    def md(self, source: str) -> dict[str, Any]:
        return self._cell("markdown", source, ())

    def _cell(self, kind: str, source: str, tags: tuple[str, ...]) -> dict[str, Any]:
        self._ids += 1
        lines = source.splitlines(keepends=True)  # as Jupyter stores it: a list of lines
        return {"cell_type": kind, "id": f"c{self._ids}",
                "metadata": {"tags": list(tags)} if tags else {}, "source": lines}

    def write(self, rel: str, *cells: dict[str, Any], metadata: dict[str, Any] | None = None,
              ) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = metadata if metadata is not None else {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
        path.write_text(json.dumps({"cells": list(cells), "metadata": meta, "nbformat": 4,
                                    "nbformat_minor": 5}, indent=1) + "\n")
        return path


@pytest.fixture
def notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Notebooks:
    """A folder (also the working folder) to write notebooks in."""
    monkeypatch.chdir(tmp_path)
    return Notebooks(tmp_path)
