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

__all__ = [
    "BuildFailed",
    "ConfigError",
    "CycleError",
    "FlowmakeError",
    "PluginError",
    "UnknownTargetError",
    "__version__",
]
