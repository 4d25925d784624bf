"""Where a full build's CPU goes, in flowmake and in its commands (issue 17).

    python benchmarks/cpu_split.py [-n 1000] [-j 2] [--repeat 4] [--keep DIR]

Makes a copy project (``gen.py copy -n N``) and builds it from clean ``--repeat`` times
(after one build not counted; cleaned as ``run.py``'s full build cleans: the outputs and
``.flowmake/``, flow.lock kept), in this process (``flowmake.cli.main.main`` with
``FLOWMAKE_RESIDENT=0``: the flowmake beside this Python, e.g. the development install).
Prints, per build: the wall time; flowmake's own CPU and its commands' (``getrusage``);
the machine's idle core-seconds over the build (``/proc/stat``, so other load shows as
less idle); and a table of phases, each with the CPU this process spent in it
(``time.process_time``) beside its wall time. A start's wall time is mostly the scheduler
waiting for the child's exec (vfork): that wait is no CPU of flowmake's, so the two
columns tell waiting from work. The phases nest (``_popen`` is within ``Attempt``,
``Attempt`` within ``Scheduler._submit``); wrapping costs ~1 us a call.

On a two-core machine the build is bound by CPU: what flowmake spends a target is what
the full build can still lose (docs/performance.md, "The full build on two cores").
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gen import write_copy_project
from run import Tool, clean_tree

PHASES = [  # (module, qualified name), outermost first
    ("flowmake.cli.workspace", "load_compiled"),
    ("flowmake.schedule", "Scheduler.run"),
    ("flowmake.schedule", "Scheduler._submit"),
    ("flowmake.builtin.attempt", "Attempt.__init__"),
    ("flowmake.builtin.attempt", "_popen"),
    ("flowmake.builtin.local_executor", "_Loop.pump"),
    ("flowmake.builtin.local_executor", "finish_outputs"),
    ("flowmake.schedule", "Scheduler._finish"),
    ("flowmake.cache.artifacts", "Artifacts.save"),
    ("flowmake.schedule", "Scheduler._record"),
    ("flowmake.plan.check", "Checker.check"),
    ("flowmake.cli.workspace", "Workspace.sync_lock"),
]


def _wrap(module: str, qualname: str, cpu: dict[str, float], wall: dict[str, float]) -> None:
    owner: Any = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    inner: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        c, w = time.process_time(), time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            cpu[qualname] += time.process_time() - c
            wall[qualname] += time.perf_counter() - w

    setattr(owner, name, timed)


def _idle_jiffies() -> int | None:
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[4])  # cpu  user nice system idle ...
    except (OSError, IndexError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", type=int, default=1000, help="targets (default 1000)")
    p.add_argument("-j", type=int, default=2, help="jobs (default 2)")
    p.add_argument("--repeat", type=int, default=4, help="builds measured (default 4)")
    p.add_argument("--keep", type=Path, help="project folder to keep (default: a temporary one)")
    args = p.parse_args(argv)
    os.environ["FLOWMAKE_RESIDENT"] = "0"
    root = args.keep or Path(tempfile.mkdtemp(prefix="flowmake-cpu-"))
    project = write_copy_project(root, args.n)
    flowmake_tool = [Tool("flowmake", (), (), ())]  # only its state files, for clean_tree
    os.chdir(root)
    from flowmake.cli.main import main as flowmake

    cpu: dict[str, float] = collections.defaultdict(float)
    wall: dict[str, float] = collections.defaultdict(float)
    for module, qualname in PHASES:
        _wrap(module, qualname, cpu, wall)
    hz = os.sysconf("SC_CLK_TCK")
    walls = []
    try:
        for i in range(args.repeat + 1):
            if i == 1:
                cpu.clear()
                wall.clear()
            clean_tree(project, flowmake_tool)
            me, kids, idle = (resource.getrusage(resource.RUSAGE_SELF),
                              resource.getrusage(resource.RUSAGE_CHILDREN), _idle_jiffies())
            start = time.perf_counter()
            code = flowmake(["-q", "build", f"-j{args.j}"])
            took = time.perf_counter() - start
            me2, kids2, idle2 = (resource.getrusage(resource.RUSAGE_SELF),
                                 resource.getrusage(resource.RUSAGE_CHILDREN), _idle_jiffies())
            if code != 0:
                print(f"build failed (exit {code})", file=sys.stderr)
                return 1
            idle_s = "-" if idle is None or idle2 is None else f"{(idle2 - idle) / hz:.2f}"
            print(f"{'warm-up' if i == 0 else f'build {i}'}: wall {took:.3f} s, flowmake "
                  f"{me2.ru_utime - me.ru_utime + me2.ru_stime - me.ru_stime:.3f} CPU-s, its "
                  f"commands {kids2.ru_utime - kids.ru_utime + kids2.ru_stime - kids.ru_stime:.3f}"
                  f" CPU-s, idle {idle_s} core-s")
            if i:
                walls.append(took)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    runs = args.repeat
    print(f"\n## full build of {args.n}, -j{args.j}: median wall {statistics.median(walls):.3f} s"
          f" over {runs}; per build\n")
    print("| phase | CPU (ms) | wall (ms) |\n|---|---:|---:|")
    for _, qualname in PHASES:
        print(f"| {qualname} | {cpu[qualname] / runs * 1000:.1f} | "
              f"{wall[qualname] / runs * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
