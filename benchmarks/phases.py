"""Where a resident command's time goes, phase by phase (issue 17).

    python benchmarks/phases.py [--flowmake EXE] [-n 10000] [--repeat 7] [--keep DIR] [--noop]
    python benchmarks/phases.py --sleep [--flowmake EXE] [--repeat 7]

Makes a layered project (``gen.py layered -n N``, one source reaches 55 targets), builds
it, then times ``flowmake -q build -j2`` after an edit of one source, ``--repeat`` times.
Each command is run as users run it, by a fork of a resident server, but a server of its
own (a private ``FLOWMAKE_RESIDENT_DIR``) started with a ``sitecustomize`` that wraps the
functions in PHASES with a timer: the fork prints, at its exit, when each phase started
(ms after ``cli.main.main`` was entered) and how long it took. The table gives each
phase's median start and duration over the repeats (``--noop``: of a no-op build, nothing
edited; a phase before ``cli.main.main``, the child's ``adopt``, starts at a negative
time); a phase an older commit does not have
is left out. ``--sleep``: ``run.py``'s sleep bench instead (16 targets of ``sleep 0.5`` at
-j4, every build from clean), with each command's start (ms after ``main`` was entered)
and the wall's excess over the ideal 2 s. Wrapping costs ~1 us a call: the phases called
once a build are timed faithfully, the per-target ones (``Checker.check``, ``Attempt``)
say how often they ran.

``--flowmake`` is any installed ``flowmake`` (a commit's, from ``commits.py``); the
default is the one beside this Python.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from gen import write_layered_project, write_sleep_project
from run import SETTLE_SECONDS

PHASES = [  # (module, qualified name): what a cone build goes through, in order
    ("flowmake.cli.noop", "run_noop"), ("flowmake.fastpath", "check"),
    ("flowmake.cli.workspace", "load_compiled"), ("flowmake.cli.workspace", "Workspace.select"),
    ("flowmake.cli.cone", "plan"), ("flowmake.cli.workspace", "Workspace.check_plugins"),
    ("flowmake.plugin.manager", "Plugins.__init__"), ("flowmake.store.db", "Store.start_run"),
    ("flowmake.schedule", "Scheduler.__init__"), ("flowmake.schedule", "Scheduler._loop"),
    ("flowmake.plan.check", "Checker.check"), ("flowmake.builtin.attempt", "Attempt.__init__"),
    ("flowmake.cache.artifacts", "Artifacts.close"), ("flowmake.cli.build", "_Build.record"),
    ("flowmake.cli.workspace", "Workspace.sync_lock"), ("flowmake.cli.cone", "resave"),
    ("flowmake.cli.workspace", "Workspace.close"),
    # and a no-op's (--noop): the child's set-up, the parser, the stats, the run recorded
    ("flowmake.resident.child", "adopt"), ("flowmake.cli.main", "build_parser"),
    ("flowmake.fastpath", "changed"), ("flowmake.cli.noop", "_record_run"),
    # flow.lock's update, within sync_lock
    ("flowmake.store.flowlock", "LockFile._touched"), ("flowmake.store.lockindex", "splice"),
    ("flowmake.store.flowlock", "_write_lock"), ("flowmake.store.flowlock", "LockFile._keep"),
    ("flowmake.store.flowlock", "LockFile._current"), ("flowmake.store.lockindex", "Index.layout"),
    ("flowmake.warm", "read"), ("flowmake.store.flowlock", "LockFile._spliced"),
    ("flowmake.store.flowlock", "LockFile.update"), ("flowmake.fsutil", "atomic_write"),
    # after the scheduler's loop and at the close
    ("flowmake.schedule", "Scheduler.run"), ("flowmake.cli.build", "_record_environment"),
    ("flowmake.cli.workspace", "Workspace.save_stats"), ("flowmake.store.db", "Store.finish_run"),
    ("flowmake.store.sqlite", "Database.close"), ("flowmake.store.lockindex", "Index.close"),
    ("flowmake.resident.child", "finish"),
    # a target's way through the scheduler's thread
    ("flowmake.schedule", "Scheduler._check"), ("flowmake.schedule", "Scheduler._submit"),
    ("flowmake.schedule", "Scheduler._finish"), ("flowmake.schedule", "Scheduler._record"),
    ("flowmake.schedule", "Scheduler._wait"), ("flowmake.executor", "prepare_outputs"),
    ("flowmake.builtin.shell", "direct_start"), ("flowmake.builtin.attempt", "_popen"),
    ("flowmake.executor", "finish_outputs"), ("flowmake.cache.artifacts", "Artifacts.save"),
    ("flowmake.builtin.local_executor", "_Loop._check_exits"),
    ("flowmake.builtin.local_executor", "_Loop._readable"),
    ("flowmake.builtin.attempt", "prepare_outputs"), ("flowmake.builtin.attempt", "direct_start"),
    ("flowmake.builtin.attempt", "_start_direct"), ("flowmake.builtin.attempt", "_pidfd"),
    ("flowmake.executor", "make_job"), ("flowmake.schedule", "make_job"),
    # between the plan and the scheduler's start (names cli/build.py imports are wrapped
    # where it calls them)
    ("flowmake.cli.build", "_checked"), ("flowmake.cli.build", "writing_lock"),
    ("flowmake.cli.build", "make_reporter"), ("flowmake.cli.build", "default_jobs"),
    ("flowmake.cli.build", "_Build.__init__"), ("flowmake.cli.cone", "still_valid"),
    ("flowmake.cli.cone", "checker"), ("flowmake.cli.workspace", "Workspace.validate_lock"),
    ("flowmake.plan.check", "Checker.check_sources"),
    ("flowmake.store.db", "Store.records_of_runs"), ("flowmake.cli.build", "_Build.run"),
]

SITE = '''
import functools, importlib, os, sys, time
PHASES = {phases!r}
log = []

def wrap(module, qualname):
    owner = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            log.append((qualname, start, time.perf_counter() - start))
    setattr(owner, name, timed)

def install():
    for module, qualname in PHASES:
        try:
            wrap(module, qualname)
        except (ImportError, AttributeError):
            pass  # not in this commit
    import gc
    import threading
    started = []
    timing = [0]  # the process whose command is timed: its own passes only

    def collected(phase, info):  # the collector's passes, as phases "gc0".."gc2"
        if os.getpid() != timing[0] or threading.get_ident() != threading.main_thread().ident:
            return  # the command's thread (another's callback is not the build's time)
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            begun = started.pop()
            log.append((f"gc{{info['generation']}}", begun, time.perf_counter() - begun))
    gc.callbacks.append(collected)
    import flowmake.cli.main as cli
    main = cli.main

    def timed_main(argv=None):
        timing[0] = os.getpid()
        start = time.perf_counter()
        try:
            return main(argv)
        finally:
            end = time.perf_counter()
            # perf_counter is CLOCK_MONOTONIC, one clock for every process: the harness
            # puts main's start and end against the client's exec and exit
            lines = [f"phase\\tmain\\t0\\t{{(end - start) * 1000:.3f}}",
                     f"clock\\t{{start * 1000:.3f}}\\t{{end * 1000:.3f}}"]
            lines += [f"phase\\t{{q}}\\t{{(s - start) * 1000:.3f}}\\t{{d * 1000:.3f}}" for q, s, d in log]
            os.write(2, ("\\n".join(lines) + "\\n").encode())
            log.clear()
    cli.main = timed_main

# Only in a resident server (its start-up variable, popped once this has run): the
# client and every other Python process of the build start as they would.
if "FLOWMAKE_RESIDENT_IMPORT_PATH" in os.environ:
    import flowmake.resident.server as server
    preload = server.preload

    def preload_and_wrap():
        preload()
        install()
    server.preload = preload_and_wrap
'''


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flowmake", default=str(Path(sys.executable).with_name("flowmake")))
    p.add_argument("-n", type=int, default=10000, help="targets (default 10000)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--keep", type=Path, help="project folder to keep (default: a temporary one)")
    p.add_argument("--noop", action="store_true", help="time a no-op build (nothing edited)")
    p.add_argument("--sleep", action="store_true",
                   help="time 16 x sleep 0.5 at -j4 from clean (run.py's sleep bench)")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="flowmake-phases-"))
    root = args.keep or tmp / "project"
    site, sockets = tmp / "site", tmp / "resident"
    site.mkdir()
    sockets.mkdir(mode=0o700)
    (site / "sitecustomize.py").write_text(SITE.format(phases=PHASES))
    env = {**os.environ, "PYTHONPATH": str(site), "FLOWMAKE_RESIDENT_DIR": str(sockets)}
    env.pop("FLOWMAKE_RESIDENT", None)
    exe = [args.flowmake]

    def flowmake(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*exe, *command], cwd=root, env=env, text=True,
                              capture_output=True, check=False)

    try:
        jobs = "-j4" if args.sleep else "-j2"
        if args.sleep:
            write_sleep_project(root, 16, 0.5)
        elif not (root / "flow.toml").exists():
            write_layered_project(root, args.n)
            print(f"- full build of {args.n}", file=sys.stderr)
        flowmake("-q", "build", jobs)
        time.sleep(SETTLE_SECONDS)
        flowmake("-q", "build", jobs)  # arms the no-op snapshot
        flowmake("--version")  # starts the server
        time.sleep(3)
        starts: dict[str, list[float]] = defaultdict(list)
        took: dict[str, list[float]] = defaultdict(list)
        calls: dict[str, list[int]] = defaultdict(list)
        walls = []
        before: list[float] = []  # ms from the client's exec to main's start
        after: list[float] = []  # ms from main's return to the client's exit
        spawns: list[list[float]] = []  # --sleep: each build's command starts
        for i in range(args.repeat):
            time.sleep(SETTLE_SECONDS)
            if args.sleep:  # as run.py's clean_tree
                shutil.rmtree(root / ".flowmake")
                shutil.rmtree(root / "out")
                (root / "out").mkdir()
            elif not args.noop:
                (root / "src" / "in7.txt").write_text(f"edited {i} {time.time_ns()}\n")
            begun = time.perf_counter()
            done = flowmake("-q", "build", jobs)
            ended = time.perf_counter()
            walls.append(ended - begun)
            if done.returncode != 0:
                raise SystemExit(f"build failed: {done.stderr}")
            runs: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for line in done.stderr.splitlines():
                parts = line.split("\t")
                if len(parts) == 3 and parts[0] == "clock":  # main's, against the wall
                    before.append(float(parts[1]) - begun * 1000)
                    after.append(ended * 1000 - float(parts[2]))
                if len(parts) == 4 and parts[0] == "phase":
                    runs[parts[1]].append((float(parts[2]), float(parts[3])))
            spawns.append([s for s, _ in runs.get("Attempt.__init__", [])])
            for name, found in runs.items():
                starts[name].append(found[0][0])
                took[name].append(sum(d for _, d in found))
                calls[name].append(len(found))
        what = ("16 x sleep 0.5 from clean, -j4" if args.sleep else
                f"{'a no-op build' if args.noop else 'an edit build'}, layered {args.n}, -j2")
        print(f"## phases of {what}, resident, {args.repeat} "
              f"repeats ({os.getloadavg()[0]:.2f} load)\n")
        print(f"wall (client's exec to exit) median {statistics.median(walls) * 1000:.1f} ms"
              + (f": {statistics.median(before):.1f} ms before main (the client's start, the"
                 f" request, the fork's set-up), {statistics.median(after):.1f} ms after it"
                 " (the fork's exit, the client's)" if before else "") + "\n")
        if args.sleep:
            print(f"over the ideal 2 s: median {(statistics.median(walls) - 2) * 1000:.1f} ms")
            columns = [statistics.median(c) for c in zip(*spawns, strict=False)]
            print("command starts (ms after main, medians): "
                  + ", ".join(f"{c:.1f}" for c in columns) + "\n")
        print("| phase | starts at (ms) | takes (ms) | calls |")
        print("|---|---|---|---|")
        for name in sorted(starts, key=lambda n: (n != "main", statistics.median(starts[n]))):
            print(f"| {name} | {statistics.median(starts[name]):.1f} | "
                  f"{statistics.median(took[name]):.1f} | {statistics.median(calls[name]):g} |")
    finally:
        subprocess.run(["pkill", "-f", str(sockets)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
