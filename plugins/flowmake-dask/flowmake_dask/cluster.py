"""Finding the Dask cluster a build runs on, or starting one on this machine.

The address comes from ``--scheduler``, then ``FLOWMAKE_DASK_SCHEDULER``, then
``[flow] dask_scheduler``. Without one, a :class:`distributed.LocalCluster` of
single-threaded worker processes is started for the build and closed at its end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowmake.errors import PluginError

ENV_VAR = "FLOWMAKE_DASK_SCHEDULER"


def scheduler_address(options: Mapping[str, Any]) -> str | None:
    """The scheduler to use: command line, then environment, then flow.toml; None: start one."""
    # build.py passes --scheduler as "scheduler" (and "dask_scheduler"); [flow] dask_scheduler
    # arrives as "dask_scheduler" alone, so the environment can outrank the file.
    return (options.get("scheduler") or os.environ.get(ENV_VAR)
            or options.get("dask_scheduler") or None)


@dataclass
class Connection:
    """A client, and the cluster it owns when flowmake started one."""

    client: Any  # distributed.Client
    cluster: Any = None  # distributed.LocalCluster, or None for a given scheduler

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def connect(options: Mapping[str, Any], jobs: int) -> Connection:
    """Connect to the configured scheduler, or start a local cluster sized to the machine.

    Raises:
        PluginError: the given scheduler cannot be reached.
    """
    from distributed import Client

    address = scheduler_address(options)
    if address is None:
        cluster = start_local_cluster(jobs)
        return Connection(Client(cluster, set_as_default=False), cluster)
    try:  # the timeout is Dask's distributed.comm.timeouts.connect (30 s by default)
        client = Client(address, set_as_default=False)
    except OSError as exc:  # distributed's connect timeouts are OSErrors too
        raise PluginError(
            f"cannot reach the Dask scheduler at {address}: {exc}", plugin="flowmake_dask",
            install_hint="start one (`dask scheduler`), or drop --scheduler, "
                         f"{ENV_VAR} and [flow] dask_scheduler to run on a local cluster",
        ) from None
    return Connection(client)


def start_local_cluster(jobs: int) -> Any:
    """One single-threaded worker process per CPU (at most ``jobs``), on 127.0.0.1 only."""
    import dask
    from distributed import LocalCluster

    workers = max(1, min(jobs, os.cpu_count() or 1))
    # A worker that dies mid-target fails that attempt at once (flowmake's `retries` decide
    # what happens next) rather than being re-run silently on another worker.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0", memory_limit=0, silence_logs=logging.ERROR,
            preload=["flowmake_dask.preload"])
