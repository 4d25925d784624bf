"""Resource limits (``resources`` per target, ``[flow.resources]`` capacities), end to end.

Each target records when its command really ran (``date +%s.%N`` at its start and end) in
its output; the tests add up the amounts of the targets running at every start and check
them against the capacity. The Dask executor's variant is tests/dask/test_dask_resources.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPAN = ('s=$$(date +%s.%N); sleep {sleep}; '
        'echo "$$s $$(date +%s.%N) {amount}" > ${{outputs}}')


def span_target(name: str, resources: dict[str, float], sleep: float = 0.6) -> str:
    """A target whose output is '<start> <end> <amount of the first resource>'."""
    table = ", ".join(f"{k} = {v}" for k, v in resources.items())
    amount = next(iter(resources.values()), 0)
    return f"""
[targets.{name}]
cmd = '{SPAN.format(sleep=sleep, amount=amount)}'
outputs = ["spans/{name}.txt"]
resources = {{ {table} }}
"""


def spans(folder: Path) -> list[tuple[float, float, float]]:
    """(start, end, amount) of every target that wrote a span file."""
    found = []
    for path in sorted(folder.glob("*.txt")):
        start, end, amount = path.read_text().split()
        found.append((float(start), float(end), float(amount)))
    return found


def peak(found: list[tuple[float, float, float]]) -> tuple[float, int]:
    """The largest total amount, and the most targets, running at one moment."""
    most_amount, most_count = 0.0, 0
    for start, _, _ in found:
        running = [(s, e, a) for s, e, a in found if s <= start < e]
        most_amount = max(most_amount, sum(a for _, _, a in running))
        most_count = max(most_count, len(running))
    return most_amount, most_count


def test_local_executor_never_exceeds_capacity(project: Any) -> None:
    flow = "[flow.resources]\ngpu = 2\n"
    flow += "".join(span_target(f"one{i}", {"gpu": 1}) for i in range(6))
    flow += span_target("two", {"gpu": 2})
    project.flow(flow)
    assert set(project.build("-j", "4").values()) == {"built"}
    found = spans(project.path("spans"))
    assert len(found) == 7
    amount, count = peak(found)
    assert amount <= 2  # never more gpu in use than declared ...
    assert count >= 2  # ... though two one-gpu targets did run side by side


def test_targets_without_resources_run_beside_a_full_pool(project: Any) -> None:
    flow = "[flow.resources]\ngpu = 1\n"
    flow += "".join(span_target(f"g{i}", {"gpu": 1}, sleep=0.8) for i in range(3))
    flow += "".join(span_target(f"free{i}", {}, sleep=0.8) for i in range(3))
    project.flow(flow)
    assert set(project.build("-j", "4").values()) == {"built"}
    found = spans(project.path("spans"))
    gpu = [s for s in found if s[2] > 0]
    assert peak(gpu)[1] == 1  # the gpu targets ran one at a time
    assert peak(found)[1] >= 2  # while the others used the free job slots


def test_a_resource_flow_resources_does_not_declare_is_unlimited(project: Any) -> None:
    flow = "[flow.resources]\ngpu = 1\n"
    flow += "".join(span_target(f"t{i}", {"tape": 5}, sleep=1.0) for i in range(3))
    project.flow(flow)
    assert set(project.build("-j", "3").values()) == {"built"}
    assert peak(spans(project.path("spans")))[1] >= 2  # 15 "tape" ran at once: no limit


def test_asking_more_than_the_capacity_is_a_config_error(project: Any) -> None:
    project.flow("""
        [flow.resources]
        cpu = 4
        mem_gb = 8

        [targets.small]
        cmd = "true"
        resources = { cpu = 1 }

        [targets.huge]
        cmd = "true"
        resources = { cpu = 2, mem_gb = 16 }
    """)
    result = project.run("build")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "flowmake: error: flow.toml:11: targets.huge.resources.mem_gb: target 'huge' asks "
        "for mem_gb = 16 but [flow.resources] has only mem_gb = 8 in total")
    assert "Traceback" not in result.stderr
    # Every command that loads the flow refuses it, not just build.
    assert project.run("status").returncode == 2


def test_config_error_names_the_matrix_instance(project: Any) -> None:
    project.flow("""
        [flow.resources]
        gpu = 2

        [targets.fit]
        matrix = { lr = [0.1, 0.01] }
        cmd = "echo ${lr}"
        resources = { gpu = 4 }
    """)
    result = project.run("build")
    assert result.returncode == 2
    assert "targets.fit.resources.gpu: target 'fit[lr=0.1]' asks for gpu = 4" in result.stderr


def test_capacity_check_allows_exactly_the_capacity(project: Any) -> None:
    project.flow("[flow.resources]\ngpu = 2\n" + span_target("all", {"gpu": 2}, sleep=0))
    assert project.build() == {"all": "built"}
