"""What a python worker runs for a notebook target (``PluginAction.runner``).

Both are called as ``runner(job, /, **kwargs)`` with the project root as the working
directory; ``job`` holds the action (``spec``: the notebook, ``options``), the target's
name and the root.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import Any

EXECUTED_DIR = ".flowmake/executed"  # the executed copy when `executed` is not given


def default_executed(target: str) -> str:
    """Where a target without ``executed`` keeps its executed notebook (root-relative)."""
    return f"{EXECUTED_DIR}/{re.sub(r'[^A-Za-z0-9_.-]', '_', target)}.ipynb"


def run(job: Mapping[str, Any], /, **params: Any) -> None:
    """Run the notebook in a fresh kernel with ``params`` injected; the executed copy goes
    to ``executed`` (else under .flowmake/executed/), also when a cell fails; returns
    None: the target's outputs are the notebook's to write, as a command's are."""
    from flowmake_notebook.run import run_notebook

    options = job["options"]
    executed = options.get("executed") or default_executed(job["target"])
    try:
        run_notebook(job["spec"], params, executed=executed, cwd=job["root"],
                     kernel_name=options.get("kernel"), on_output=_echo)
    finally:
        if os.path.exists(executed):
            print(f"[executed notebook: {executed}]", flush=True)


def call(job: Mapping[str, Any], /, **kwargs: Any) -> Any:
    """Call the notebook's function with the target's params and loaded inputs; its value
    is saved by format, as a python target's."""
    from flowmake_notebook.call import call_function

    return call_function(job["spec"], job["options"]["function"], kwargs)


def _echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
