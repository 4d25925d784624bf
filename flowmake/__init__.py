"""flowmake: a make-style build tool for data and code pipelines."""

from __future__ import annotations

from .errors import (
    BuildFailed,
    ConfigError,
    CycleError,
    FlowmakeError,
    PluginError,
    UnknownTargetError,
)

__version__ = "0.1.0"



def __getattr__(name: str) -> object:
    # ``flowmake.hookimpl`` imports pluggy only when a plugin asks for it, so that the
    # no-op fast path of `flowmake build` never pays for it.
    if name == "hookimpl":
        from .hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'flowmake' has no attribute {name!r}")


__all__ = [
    "BuildFailed",
    "ConfigError",
    "CycleError",
    "FlowmakeError",
    "PluginError",
    "UnknownTargetError",
    "__version__",
    "hookimpl",
]
