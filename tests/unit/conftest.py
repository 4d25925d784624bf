"""Fixtures for the unit tests: real flow.toml files in tmp_path, real stores, real hashing."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from flowmake.config import load as config
from flowmake.model import Project
from flowmake.store.db import Store


@pytest.fixture
def write_flow(tmp_path: Path) -> Callable[[str], Path]:
    """Write a (dedented) flow.toml into tmp_path and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "flow.toml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load_flow(write_flow: Callable[[str], Path]) -> Callable[..., Project]:
    """Write a flow.toml and load it with ``flowmake.config.load``."""

    def load(text: str, overrides: dict[str, object] | None = None) -> Project:
        return config.load(write_flow(text), overrides)

    return load


@pytest.fixture
def store(tmp_path: Path):
    """A real SQLite store under tmp_path/.flowmake, closed after the test."""
    s = Store(tmp_path / ".flowmake")
    yield s
    s.close()
