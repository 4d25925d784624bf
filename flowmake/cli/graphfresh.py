"""`graph --format json` of every target when nothing changed since the last all-fresh
build or status, written from what is kept, without loading the flow.

At 100,000 targets, unpickling the compiled flow took 0.31 s of such a `graph`'s 1.0 s,
while everything the document holds is kept already: the no-op
fast path's snapshot says every target is fresh and names the compiled flow it was saved
from (``fastpath.compiled``), graph.texts holds each node's part that the flow decides
and the edges for that flow (cli/graphtexts.py), and the rest of each node comes from the
records' rows, kept in graph.states (cli/graphtails.py). While the snapshot holds,
flow.toml and every file it was read from are as they were when the snapshot was saved,
so the flow is still the one those texts were made from; the texts' header names the
targets by a digest of their names in order, which must be the snapshot's.

Anything else (a change, a selection, ``-o``, texts not made yet or made for another
flow) is cli/graph.py's way, handed the fast path's answer so that it does not stat every
path again.
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flowmake import fastpath
from flowmake.cli import graphtails, graphtexts, noop
from flowmake.model import TargetStatus
from flowmake.report import jsonout
from flowmake.store import paths

UNCHECKED: Any = object()  # the no-op fast path not asked yet (cli/graph.py's plan_states)


def write_fresh(flow_file: str, overrides: list[str], write: Callable[[str], Any]
                ) -> tuple[bool, tuple[Any, ...] | None]:
    """Write the document of every target if nothing changed since the last all-fresh
    build or status and the texts kept are this flow's: (True, the fast path's answer);
    else nothing is written: (False, that answer, None when the fast path does not hold)."""
    saved = noop.fresh_saved(flow_file, overrides, [])
    if saved is None:
        return False, None
    answer = fastpath.fresh_answer(saved)
    joined, count = answer[0], answer[1]
    stamp = fastpath.compiled(saved)
    if stamp is None or not count:
        return False, answer
    # the project's root as config.find_file resolves it (the flow file's folder)
    resolved = os.path.realpath(flow_file)
    root, state_dir = os.path.dirname(resolved), paths.state_dir_of(resolved)
    texts = graphtexts.kept(state_dir, stamp, count, graphtexts.names_digest(joined))
    if texts is None:
        return False, answer
    from flowmake.store.db import Store

    flags, statics, edges = texts
    store = Store(Path(state_dir))  # read only: nothing here voids the snapshot
    try:
        names = fastpath.fields(joined)
        tails = graphtails.kept(store, state_dir, stamp, names, flags)
        if tails is None:
            tails = graphtails.tails(store, names, None, flags)
        counts = dict.fromkeys(TargetStatus, 0)
        counts[TargetStatus.FRESH] = count
        jsonout.dump(document(root, counts, statics, tails, edges), write)
        write("\n")
    finally:
        store.close()
    return True, answer


def document(root: str, counts: dict[TargetStatus, int], statics: Iterable[str],
             tails: Iterable[str], edges: Iterable[str]) -> dict[str, Any]:
    """The graph's document: each node's text is its static part and its tail, in the
    same order; both are read as it is written (``jsonout.dump``)."""
    return {"project": os.path.basename(root), "root": root, "counts": counts,
            # strict: the tails are read to their end (graphstates.saving keeps them then)
            "nodes": jsonout.Texts(jsonout.blocks(
                itertools.starmap(operator.add, zip(statics, tails, strict=True)))),
            "edges": jsonout.Texts(edges)}

