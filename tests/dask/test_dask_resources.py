"""Resources on the Dask executor: ``[flow.resources]`` capacities, and Dask worker resources.

The session cluster (conftest.py) has two workers of two threads each, every worker
declaring the Dask resource ``slot = 1``. Each target writes when its command really ran
(``date +%s.%N`` at start and end) to its output, and the tests add up what ran at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

SPAN = ('s=$$(date +%s.%N); sleep {sleep}; '
        'echo "$$s $$(date +%s.%N) {amount}" > ${{outputs}}')


def span_target(name: str, resources: dict[str, float], sleep: float = 1.0) -> str:
    table = ", ".join(f"{k} = {v}" for k, v in resources.items())
    amount = next(iter(resources.values()), 0)
    return f"""
[targets.{name}]
cmd = '{SPAN.format(sleep=sleep, amount=amount)}'
outputs = ["spans/{name}.txt"]
resources = {{ {table} }}
"""


def peak(folder: Path, prefix: str = "") -> tuple[float, int]:
    """The largest total amount, and the most targets, running at one moment."""
    found = []
    for path in folder.glob(f"{prefix}*.txt"):
        start, end, amount = path.read_text().split()
        found.append((float(start), float(end), float(amount)))
    most_amount, most_count = 0.0, 0
    for start, _, _ in found:
        running = [a for s, e, a in found if s <= start < e]
        most_amount, most_count = max(most_amount, sum(running)), max(most_count, len(running))
    return most_amount, most_count


def on_dask(cluster: Any, *args: str) -> list[str]:
    return ["--executor", "dask", "--scheduler", cluster.address, *args]


@pytest.mark.slow
def test_flow_capacities_hold_on_dask(project: Any, cluster: Any) -> None:
    # Four worker threads and -j4, but only 2 gpu: the core keeps the sum at 2.
    flow = "[flow.resources]\ngpu = 2\n"
    flow += "".join(span_target(f"one{i}", {"gpu": 1}, sleep=0.6) for i in range(5))
    flow += span_target("two", {"gpu": 2}, sleep=0.6)
    project.flow(flow)
    assert set(project.build(*on_dask(cluster, "-j", "4")).values()) == {"built"}
    amount, count = peak(project.path("spans"))
    assert amount <= 2
    assert count >= 2


@pytest.mark.slow
def test_target_resources_become_dask_worker_resources(project: Any, cluster: Any) -> None:
    # flow.toml declares no capacity for "slot", so the core does not limit it; each worker
    # declares slot=1, so Dask runs at most one slot target per worker: two at a time.
    flow = "".join(span_target(f"slot{i}", {"slot": 1}, sleep=1.5) for i in range(4))
    flow += "".join(span_target(f"free{i}", {}, sleep=1.5) for i in range(4))
    project.flow(flow)
    project.build(*on_dask(cluster, "-j", "4"), "slot*")
    assert peak(project.path("spans"), "slot")[1] <= 2
    # The same cluster runs four unconstrained targets at once (the limit was Dask's).
    project.build(*on_dask(cluster, "-j", "4"), "free*")
    assert peak(project.path("spans"), "free")[1] >= 3


def test_more_of_a_resource_than_any_worker_offers_fails(project: Any, cluster: Any) -> None:
    project.flow("""
        [targets.greedy]
        cmd = "echo x > ${outputs}"
        outputs = ["greedy.txt"]
        resources = { slot = 2 }

        [targets.after]
        cmd = "cat ${inputs} > ${outputs}"
        inputs = ["greedy.txt"]
        outputs = ["after.txt"]
    """)
    doc = project.json("build", *on_dask(cluster), check=1)
    status = {t["name"]: t for t in doc["targets"]}
    assert status["greedy"]["error"] == "needs slot=2, but no Dask worker offers more than slot=1"
    assert status["after"]["status"] == "skipped"
