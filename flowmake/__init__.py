"""flowmake: a make-style build tool for data and code pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowmake.errors import (
    BuildFailed,
    ConfigError,
    CycleError,
    FlowmakeError,
    PluginError,
    StaleError,
    UnknownTargetError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports it on demand
    from flowmake.api import BuildResult as BuildResult
    from flowmake.api import StatusResult as StatusResult
    from flowmake.api import TargetResult as TargetResult
    from flowmake.api import TargetState as TargetState
    from flowmake.api import build as build
    from flowmake.api import load as load
    from flowmake.api import status as status
    from flowmake.hookspecs import hookimpl as hookimpl



_API = ("build", "status", "load", "BuildResult", "StatusResult", "TargetResult",
        "TargetState")


def __getattr__(name: str) -> object:
    # ``flowmake.hookimpl`` imports pluggy only when a plugin asks for it, so that the
    # no-op fast path of `flowmake build` never pays for it.
    if name == "hookimpl":
        from flowmake.hookspecs import hookimpl

        return hookimpl
    if name in _API:  # the Python API (api.py), imported on first use
        from flowmake import api

        return getattr(api, name)
    raise AttributeError(f"module 'flowmake' has no attribute {name!r}")


__all__ = [
    "BuildFailed",
    "BuildResult",
    "ConfigError",
    "CycleError",
    "FlowmakeError",
    "PluginError",
    "StaleError",
    "StatusResult",
    "TargetResult",
    "TargetState",
    "UnknownTargetError",
    "__version__",
    "build",
    "hookimpl",
    "load",
    "status",
]
