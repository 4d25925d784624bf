"""Per-target overhead of python targets, against shell targets, and the worker start-up.

* ``build``: a clean full build of N trivial python targets (each returns a small dict,
  saved as JSON) and of N trivial shell targets (``echo i > out``), both at ``-j2``,
  through the ``flowmake`` command. Per-target cost = wall time / N.
* ``startup``: in-process, a ``WorkerPool(1)``: the first job (which starts the worker
  process and loads the plugins) against the following ones on the warm worker; and the
  bare round trip of a job with no outputs.

    python benchmarks/python_targets.py [-n 200] [--repeat 3]

Prints a markdown table. The machine is shared: take the median, and compare runs made
side by side.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = """
def work(i):
    return {"i": i, "square": i * i}


def nothing():
    return None
"""


def write_python_project(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "steps.py").write_text(STEPS)
    targets = [f'[targets.p{i}]\npython = "steps:work"\nparams = {{ i = {i} }}\n'
               f'outputs = ["out/p{i}.json"]\n' for i in range(n)]
    (root / "flow.toml").write_text("\n".join(targets))


def write_shell_project(root: Path, n: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    targets = [f'[targets.s{i}]\ncmd = "echo {i} > ${{outputs}}"\noutputs = ["out/s{i}.txt"]\n'
               for i in range(n)]
    (root / "flow.toml").write_text("\n".join(targets))


def timed_build(root: Path, jobs: int) -> float:
    """Wall time of one clean full build (state and outputs removed first)."""
    shutil.rmtree(root / ".flowmake", ignore_errors=True)
    shutil.rmtree(root / "out", ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flowmake", "-q", "-C", str(root), "build",
                    "-j", str(jobs)], check=True)
    return time.perf_counter() - start


def bench_build(base: Path, n: int, repeat: int) -> dict[str, list[float]]:
    write_python_project(base / "py", n)
    write_shell_project(base / "sh", n)
    times: dict[str, list[float]] = {"python": [], "shell": []}
    for _ in range(repeat):  # alternate, so drifting load hits both alike
        times["python"].append(timed_build(base / "py", 2))
        times["shell"].append(timed_build(base / "sh", 2))
    return times


def bench_startup(base: Path, repeat: int) -> dict[str, list[float]]:
    from flowmake.builtin.python_workers import WorkerPool
    from flowmake.executor import Job

    root = base / "startup"
    write_python_project(root, 1)
    (root / "out").mkdir(exist_ok=True)
    times: dict[str, list[float]] = {"first": [], "warm": [], "warm_no_output": []}
    for r in range(repeat):
        pool = WorkerPool(1)
        try:
            for k in range(21):
                job = Job(name=f"p{k}", root=str(root), cwd=str(root), function="steps:work",
                          kwargs={"i": k}, outputs=((None, f"out/r{r}-{k}.json"),))
                start = time.perf_counter()
                assert pool.submit(job).result().ok
                times["first" if k == 0 else "warm"].append(time.perf_counter() - start)
            for k in range(20):
                job = Job(name=f"n{k}", root=str(root), cwd=str(root), function="steps:nothing")
                start = time.perf_counter()
                assert pool.submit(job).result().ok
                times["warm_no_output"].append(time.perf_counter() - start)
        finally:
            pool.shutdown()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="targets per project")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="flowmake-pybench-"))
    try:
        build = bench_build(base, args.n, args.repeat)
        startup = bench_startup(base, args.repeat)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    py, sh = statistics.median(build["python"]), statistics.median(build["shell"])
    print(f"| measure (median of {args.repeat}) | value |\n|---|---|")
    print(f"| {args.n} python targets, -j2, clean build | {py:.2f} s ({py / args.n * 1000:.1f} ms/target) |")
    print(f"| {args.n} shell targets, -j2, clean build | {sh:.2f} s ({sh / args.n * 1000:.1f} ms/target) |")
    print(f"| python − shell, per target | {(py - sh) / args.n * 1000:+.1f} ms |")
    print(f"| first job on a new pool (worker start + plugins) | {statistics.median(startup['first']) * 1000:.0f} ms |")
    print(f"| later job, JSON output (warm worker) | {statistics.median(startup['warm']) * 1000:.1f} ms |")
    print(f"| later job, no output (round trip) | {statistics.median(startup['warm_no_output']) * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
