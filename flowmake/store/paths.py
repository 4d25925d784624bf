"""The layout of a project's state folder, ``.flowmake/``, in one place.

Every file flowmake keeps there is named here, and every module that builds such a path
uses these names. Cheap to import: the no-op fast path uses it (plain strings and
``os.path``; no pathlib). A ``Path`` state folder takes the names with ``/``
(``state_dir / paths.STATE_DB``); the functions here take and give ``str``.

Two layers below the store cannot import it and spell the folder's name themselves: the
model (``Project.state_dir``, ``Settings.cache``) and config (the default ``[flow] cache``
and the folders no output may be in). ``tests/unit/test_store_paths.py`` checks they agree.
"""

from __future__ import annotations

import os

STATE_DIR = ".flowmake"  # beside flow.toml; deleting it is always safe

STATE_DB = "state.db"  # records, runs, the stat cache (store/db.py)
LOCK = "lock"  # the project lock: flock, holder's pid (store/mutex.py)
SNAPSHOT = "noop.marshal"  # the no-op fast path's stat snapshot (fastpath.py)
COMPILED_FLOW = "flow.pickle"  # the compiled flow (cli/workspace.py)
GRAPH_TEXTS = "graph.texts"  # graph --format json's parts from the flow (cli/graphtexts.py)
GRAPH_STATES = "graph.states"  # an all-fresh graph's states and records (cli/graphstates.py)
CODE_CACHE = "code.marshal"  # code fingerprints' analyses (plan/codefp.py)
LOCK_CACHE = "lock.cache"  # flow.lock parsed (store/flowlock.py)
LOCK_SIG = "lock.sig"  # what lock.cache was parsed from (store/flowlock.py)
DISTRIBUTIONS = "distributions.json"  # installed distributions (store/provenance.py)
CACHE = "cache"  # the default artifact cache folder ([flow] cache)
DEFAULT_CACHE = f"{STATE_DIR}/{CACHE}"  # as [flow] cache names it: root-relative
CACHE_INDEX = "index.db"  # in an artifact cache's folder (cache/index.py)


def state_dir(root: str) -> str:
    """The state folder of the project whose root (flow.toml's folder) is ``root``."""
    return os.path.join(root, STATE_DIR)


def state_dir_of(flow_file: str) -> str:
    """The state folder of the project of ``flow_file``."""
    return os.path.join(os.path.dirname(flow_file), STATE_DIR)


def snapshot(state_dir: str) -> str:
    """The fast path's snapshot file in a state folder."""
    return os.path.join(state_dir, SNAPSHOT)
