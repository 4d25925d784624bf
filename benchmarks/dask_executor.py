"""What the Dask executor costs: scheduling overhead per target, and cluster start-up.

* sleep   64 targets of ``sleep 1`` at -j4: the local executor vs the ``dask`` executor on
          a running LocalCluster of 4 single-threaded worker processes (ideal: 16 s)
* noop    the same with ``true`` (1 and 64 targets): fixed cost per build (importing
          distributed, connecting) and cost per target (a task round trip), apart
* startup starting and closing that LocalCluster; and a whole build with
          ``--executor dask`` and no address, which starts and closes its own cluster

Every build is ``flowmake -q build -B -j4`` as a child process (wall time, median of the
repeats; the local and dask runs take turns, so drifting load hits both alike).

    python benchmarks/dask_executor.py [--targets 64] [--sleep 1] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FLOWMAKE = [sys.executable, "-m", "flowmake"]
WORKERS = 4


def write_project(folder: Path, targets: int, command: str) -> Path:
    """``targets`` independent targets running ``command``, each writing one output."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'[targets.t{i}]\ncmd = "{command} && echo {i} > ${{outputs}}"\n'
             f'outputs = ["out/t{i}.txt"]\n' for i in range(targets)]
    (folder / "flow.toml").write_text("\n".join(lines), encoding="utf-8")
    return folder


def timed_build(folder: Path, *extra: str) -> float:
    """Wall seconds of one forced build; raises if it fails."""
    start = time.perf_counter()
    result = subprocess.run([*FLOWMAKE, "-C", str(folder), "-q", "build", "-B", "-j",
                             str(WORKERS), *extra], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"build failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def compare(folder: Path, address: str, repeats: int) -> dict[str, float]:
    """Median wall time of local and dask builds of one project, taking turns."""
    local: list[float] = []
    remote: list[float] = []
    timed_build(folder)  # warm-up: compiled flow, page cache
    for _ in range(repeats):
        local.append(timed_build(folder))
        remote.append(timed_build(folder, "--executor", "dask", "--scheduler", address))
    return {"local": statistics.median(local), "dask": statistics.median(remote)}


def start_cluster() -> tuple[Any, float]:
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=":0", memory_limit=0,
                           silence_logs=logging.ERROR)
    with Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(WORKERS)
    return cluster, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=64)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers here")
    args = parser.parse_args()

    start = time.perf_counter()
    import distributed  # noqa: F401  (what every dask build pays once)

    results: dict[str, Any] = {"import_distributed": time.perf_counter() - start}
    tmp = Path(tempfile.mkdtemp(prefix="flowmake-dask-bench-"))
    cluster, results["cluster_start"] = start_cluster()
    try:
        address = cluster.scheduler_address
        sleep = write_project(tmp / "sleep", args.targets, f"sleep {args.sleep:g}")
        results["sleep"] = compare(sleep, address, args.repeats)
        results["noop_1"] = compare(write_project(tmp / "one", 1, "true"), address,
                                    args.repeats)
        results["noop_n"] = compare(write_project(tmp / "many", args.targets, "true"),
                                    address, args.repeats)
    finally:
        closing = time.perf_counter()
        cluster.close()
        results["cluster_close"] = time.perf_counter() - closing
    results["own_cluster_build"] = timed_build(sleep, "--executor", "dask")
    shutil.rmtree(tmp, ignore_errors=True)
    report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    n = args.targets
    ideal = math.ceil(n / WORKERS) * args.sleep
    per_target = {k: (r["noop_n"][k] - r["noop_1"][k]) / (n - 1) for k in ("local", "dask")}
    print(f"## {n} targets of `sleep {args.sleep:g}` at -j{WORKERS} "
          f"(ideal {ideal:.1f} s; median of {args.repeats})\n")
    print("| executor | wall s | over ideal s | overhead per target ms |")
    print("|---|---|---|---|")
    for k in ("local", "dask"):
        wall = r["sleep"][k]
        print(f"| {k} | {wall:.2f} | {wall - ideal:.2f} | {(wall - ideal) / n * 1000:.0f} |")
    print(f"\n## `true` targets: fixed cost per build and cost per target (-j{WORKERS})\n")
    print(f"| executor | 1 target s | {n} targets s | per extra target ms |")
    print("|---|---|---|---|")
    for k in ("local", "dask"):
        print(f"| {k} | {r['noop_1'][k]:.2f} | {r['noop_n'][k]:.2f} "
              f"| {per_target[k] * 1000:.1f} |")
    print("\n## start-up\n")
    print(f"- `import distributed`: {r['import_distributed']:.2f} s")
    print(f"- LocalCluster of {WORKERS} worker processes: start {r['cluster_start']:.2f} s, "
          f"close {r['cluster_close']:.2f} s")
    own = r["own_cluster_build"]
    workers = min(WORKERS, os.cpu_count() or 1)  # flowmake sizes its cluster to the machine
    own_ideal = math.ceil(n / workers) * args.sleep
    print(f"- `build --executor dask` with no address ({n} x sleep {args.sleep:g}; starts and "
          f"closes its own cluster of {workers} workers, ideal {own_ideal:.1f} s): "
          f"{own:.2f} s, {own - own_ideal:+.2f} s over ideal")


if __name__ == "__main__":
    main()
