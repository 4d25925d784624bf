"""The ``notebook`` target kind: flow.toml's ``notebook = "nb/train.ipynb"``.

    [targets.train]
    notebook = "notebooks/train.ipynb"   # run top to bottom in a fresh kernel
    executed = "reports/train.ipynb"     # keep the executed copy (an output of the target)
    kernel   = "python3"                 # default: the notebook's own, else python3
    params   = { lr = 0.5 }              # injected after the cell tagged `parameters`

    [targets.fit]
    notebook = "notebooks/train.ipynb"
    function = "train_model"             # call one function, as a python target
    inputs   = { rows = "data/rows.json" }
    outputs  = ["out/model.pkl"]

The code key is the notebook's code cells only (``code_digest``).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from flowmake.errors import ConfigError
from flowmake.model import PluginAction

RUN = "flowmake_notebook.runner:run"
CALL = "flowmake_notebook.runner:call"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class NotebookKind:
    """Targets that run a Jupyter notebook, or call one of its functions."""

    KEY = "notebook"
    OPTIONS: Mapping[str, type | tuple[type, ...]] = {"executed": str, "function": str,
                                                      "kernel": str}

    def parse(self, values: Mapping[str, Any], where: str) -> PluginAction:
        spec = _notebook_path(values["notebook"], f"{where}.notebook")
        options: dict[str, Any] = {}
        function = values.get("function")
        if function is not None:
            if not _DOTTED.match(function):
                raise ConfigError(f"expected a function name (train_model, Model.fit), got"
                                  f" {function!r}", key=f"{where}.function")
            for key in ("executed", "kernel"):
                if key in values:
                    raise ConfigError("only for a notebook that runs in a kernel: a"
                                      " function is called in a python worker",
                                      key=f"{where}.{key}", hint="drop it, or `function`")
            options["function"] = function
        if "executed" in values:
            options["executed"] = _notebook_path(values["executed"], f"{where}.executed")
        if values.get("kernel"):
            options["kernel"] = values["kernel"]
        return PluginAction("notebook", spec, CALL if function is not None else RUN,
                            options, values.get("version"), values=function is not None)

    def outputs(self, action: PluginAction) -> list[str]:
        executed = action.options.get("executed")
        return [executed] if executed else []

    def code_files(self, action: PluginAction, root: str) -> list[str]:
        return [os.path.join(root, action.spec)]

    def code_parts(self, action: PluginAction, root: str) -> dict[str, str]:
        from flowmake_notebook.digest import code_digest

        try:
            return {action.spec: code_digest(os.path.join(root, action.spec))}
        except ConfigError:  # missing or damaged: the run says so, as for a python module
            return {action.spec: "unreadable"}


def _notebook_path(value: str, key: str) -> str:
    path = posixpath.normpath(value.replace(os.sep, "/")) if value else ""
    if not path.endswith(".ipynb"):
        raise ConfigError(f"expected a notebook path ending in .ipynb, got {value!r}", key=key)
    if "://" in path or posixpath.isabs(path) or path.startswith("../"):
        raise ConfigError(f"'{value}': a notebook inside the project (a relative path)",
                          key=key)
    return path
