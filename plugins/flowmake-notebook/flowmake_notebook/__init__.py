"""flowmake-notebook: Jupyter notebooks as flowmake targets.

Two ways to use a notebook (see README.md):

- ``run_notebook(path, params, executed=..., cwd=root)``: run it top to bottom in a fresh
  Jupyter kernel (nbclient), with ``params`` injected after the cell tagged
  ``parameters``; keep the executed copy.
- ``call_function(path, "train", kwargs)``: run its code cells as a module in this
  process and call one of its functions, as a python target calls one.

``code_digest(path)`` is its code key: the code cells only, so re-saving the notebook
with new outputs or metadata changes nothing.

Registered through the ``flowmake`` entry point group (``notebook``): it registers the
``notebook`` target kind (kind.py; runner.py is what a python worker runs). This module
imports neither nbformat nor nbclient: they are imported when a notebook runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flowmake.hookspecs import hookimpl
from flowmake_notebook.call import call_function
from flowmake_notebook.digest import code_digest
from flowmake_notebook.errors import KernelUnavailable, NotebookFailed
from flowmake_notebook.run import run_notebook

__all__ = ["KernelUnavailable", "NotebookFailed", "call_function", "code_digest", "run_notebook"]


@hookimpl
def flowmake_register_target_kinds() -> Sequence[type[Any]]:
    from flowmake_notebook.kind import NotebookKind

    return [NotebookKind]
