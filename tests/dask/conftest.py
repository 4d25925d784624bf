"""One real Dask cluster per test process, shared by the tests in this folder.

A ``distributed.LocalCluster`` of two worker *processes* (each under a nanny, so a
worker killed by a test comes back), two threads each, every worker declaring the Dask
resource ``slot = 1``. Tests pass its address to flowmake with ``--scheduler``. The
scheduler does not re-run a task whose worker died (``allowed-failures = 0``), as in
the clusters flowmake starts itself, so a killed worker fails exactly one attempt.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Cluster:
    address: str
    client: Any

    def worker_pids(self) -> dict[str, int]:
        """{worker address: pid} of the live workers."""
        return self.client.run(os.getpid)

    def wait_workers(self, n: int = 2, timeout: float = 60) -> None:
        self.client.wait_for_workers(n, timeout=timeout)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Cluster]:
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
            dashboard_address=":0", memory_limit=0, silence_logs=logging.ERROR,
            resources={"slot": 1})
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield Cluster(cluster.scheduler_address, client)
    finally:
        client.close()
        cluster.close()


@pytest.fixture
def cluster(dask_cluster: Cluster) -> Cluster:
    """The session cluster, with both workers up (a previous test may have killed one)."""
    dask_cluster.wait_workers()
    return dask_cluster
