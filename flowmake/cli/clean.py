"""`flowmake clean`: remove declared outputs and forget records, never outside the project."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

from flowmake.cli.workspace import Workspace
from flowmake.store.db import Record
from flowmake.store.leftovers import writing_lock


def _inside(root: str, path: str) -> bool:
    """True when ``path``'s folder, with symlinks resolved, lies inside ``root``."""
    parent = os.path.realpath(os.path.dirname(path))
    return parent == root or parent.startswith(root + os.sep)


def clean(ws: Workspace, names: list[str], *, dry_run: bool) -> Iterator[str]:
    """Remove each target's outputs; yield a line per path removed (or that would be).

    A running build holds the project lock: clean waits for it (as a second build does),
    so it never deletes an output that a build is writing and is about to record."""
    if dry_run:
        yield from _clean(ws, names, dry_run=True)
        return
    with writing_lock(ws.store, ws.project.state_dir) as dead_runs:
        changed: dict[str, Record | None] = dict(ws.store.records_of_runs(dead_runs))
        yield from _clean(ws, names, dry_run=False)
        ws.sync_lock({**changed, **dict.fromkeys(names)})  # their entries leave flow.lock


def _clean(ws: Workspace, names: list[str], *, dry_run: bool) -> Iterator[str]:
    root = os.path.realpath(ws.root)
    verb = "would remove" if dry_run else "removed"
    for name in names:
        for output in ws.graph.targets[name].outputs:
            if output.url:  # declared URL outputs go through their backend (SPEC §3)
                urls = ws.hasher.url_backends()
                if urls.exists(output.path):
                    if not dry_run:
                        urls.remove(output.path)
                    yield f"{verb} {output.path}"
                continue
            path = os.path.join(root, output.path)
            if not os.path.lexists(path):
                continue
            if not _inside(root, path):
                yield f"skipped {output.path}: it lies outside the project through a symlink"
                continue
            if not dry_run:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)  # a symlink itself, never what it points to
            yield f"{verb} {output.path}"
    if not dry_run:
        ws.store.forget(names)
