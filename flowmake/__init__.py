"""flowmake: a make-style build tool for data and code pipelines."""

from __future__ import annotations

__version__ = "0.1.0"

# Nothing is imported here at run time: every `flowmake` command imports this package
# first (the resident client needs only the version), and typing alone costs ~10 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports them on demand
    from flowmake.api import BuildResult as BuildResult
    from flowmake.api import StatusResult as StatusResult
    from flowmake.api import TargetResult as TargetResult
    from flowmake.api import TargetState as TargetState
    from flowmake.api import build as build
    from flowmake.api import load as load
    from flowmake.api import status as status
    from flowmake.errors import BuildFailed as BuildFailed
    from flowmake.errors import ConfigError as ConfigError
    from flowmake.errors import CycleError as CycleError
    from flowmake.errors import FlowmakeError as FlowmakeError
    from flowmake.errors import PluginError as PluginError
    from flowmake.errors import StaleError as StaleError
    from flowmake.errors import UnknownTargetError as UnknownTargetError
    from flowmake.hookspecs import hookimpl as hookimpl

_API = ("build", "status", "load", "BuildResult", "StatusResult", "TargetResult",
        "TargetState")
_ERRORS = ("BuildFailed", "ConfigError", "CycleError", "FlowmakeError", "PluginError",
           "StaleError", "UnknownTargetError")


def __getattr__(name: str) -> object:
    # ``flowmake.hookimpl`` imports pluggy only when a plugin asks for it, so that the
    # no-op fast path of `flowmake build` never pays for it.
    if name == "hookimpl":
        from flowmake.hookspecs import hookimpl

        return hookimpl
    if name in _API:  # the Python API (api.py), imported on first use
        from flowmake import api

        return getattr(api, name)
    if name in _ERRORS:
        from flowmake import errors

        return getattr(errors, name)
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
