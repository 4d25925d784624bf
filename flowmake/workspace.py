"""One project opened for a command: its Project and Graph, and lazily its Store and Hasher.

The commands in ``cli.py`` share this instead of each wiring config → graph → store.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from .config import find_file, load
from .fingerprint import Hasher
from .graph import Graph, build_graph
from .model import Project
from .plan import Checker
from .store import Store


class Workspace:
    def __init__(self, directory: Path, file: str | None, overrides: dict[str, Any]) -> None:
        self.path = find_file(directory, file)
        self.project: Project = load(self.path, overrides)
        self.graph: Graph = build_graph(self.project)

    @property
    def root(self) -> Path:
        return self.project.root

    @cached_property
    def store(self) -> Store:
        return Store(self.project.state_dir)

    @cached_property
    def hasher(self) -> Hasher:
        return Hasher(str(self.root), self.store.stat_cache())

    def checker(self, *, force: bool = False) -> Checker:
        """A Checker over the records as they are now (call it again after taking the lock)."""
        return Checker(self.graph, self.store.records(), self.hasher, force=force)

    def select(self, patterns: list[str]) -> list[str]:
        """The named targets; with none, ``[flow] default`` or every target."""
        if not patterns:
            patterns = list(self.project.settings.default) or list(self.graph.targets)
        return self.graph.select(patterns)

    def save_stats(self) -> None:
        """Write back what the stat cache learned (cheap when nothing changed)."""
        if self.hasher.dirty:
            self.store.put_stats(self.hasher.dirty)
            self.hasher.dirty.clear()

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
