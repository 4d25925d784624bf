"""Preloaded into the workers of a LocalCluster that flowmake starts (see cluster.py).

A terminal's Ctrl-C reaches every process of the foreground group, worker processes
included. flowmake itself handles it (it cancels the build's tasks and kills their
commands), so the workers must not die of it. A no-op handler rather than SIG_IGN: the
commands a worker starts get the default disposition back when they exec.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def _ignore(signum: int, frame: Any) -> None:
    return None


def dask_setup(worker: Any) -> None:
    """Called by distributed when the worker starts."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _ignore)
