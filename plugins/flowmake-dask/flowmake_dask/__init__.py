"""flowmake-dask: the ``dask`` executor, running flowmake targets on a Dask cluster.

Registered through the ``flowmake`` entry point group; choose it with
``flowmake build --executor dask`` (or ``[flow] executor = "dask"``). ``distributed`` is
imported only when a build actually runs a target, so flowmake starts as fast as without
this plugin.
"""

from __future__ import annotations

from flowmake.hookspecs import hookimpl

from .executor import DaskExecutor

__all__ = ["DaskExecutor"]


@hookimpl
def flowmake_register_executors() -> list[type]:
    return [DaskExecutor]
