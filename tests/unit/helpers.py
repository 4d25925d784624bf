"""Plain helpers shared by the unit tests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from flowmake.graph import build_graph
from flowmake.model import Project
from flowmake.plan.check import Checker
from flowmake.plan.fingerprint import Hasher
from flowmake.plugin.urls import Urls
from flowmake.store.db import Record, Store


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line of ``path`` that contains ``needle``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def write(root: Path, rel: str, content: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def simulate_build(project: Project, store: Store, names: Iterable[str] | None = None, *,
                   run_id: int = 1, environ: Mapping[str, str] | None = None) -> None:
    """Record targets as the scheduler does after running them, without running them.

    Each target's outputs are written (content: the target name) in build order, then
    its key is computed from the files on disk and a Record is stored with the outputs'
    digests, through ``Store.finish_target`` as after a successful run.
    """
    graph = build_graph(project)
    for name in graph.order(names):
        target = graph.targets[name]
        for output in target.outputs:
            write(project.root, output.path, f"built by {name}\n")
        hasher = Hasher(str(project.root), urls=Urls.default(str(project.root)))
        checker = Checker(graph, {}, hasher, environ=environ if environ is not None else {})
        parts, missing = checker.parts(target)
        assert parts is not None, f"{name}: missing inputs {missing}"
        digests = {o.path: hasher.digest(o.path) for o in target.outputs}
        record = Record(name, checker.key(parts), json.dumps(parts), json.dumps(digests),
                        run_id, time.time(), 0.0)
        store.finish_target(run_id, name, "built", 0.0, [], "", record)


def checker_for(project: Project, store: Store, **kwargs) -> Checker:
    """A Checker over the store's records and a fresh Hasher, as a new command builds it."""
    kwargs.setdefault("environ", {})
    hasher = Hasher(str(project.root), urls=Urls.default(str(project.root)))  # as a command's
    return Checker(build_graph(project), store.records(), hasher, **kwargs)
