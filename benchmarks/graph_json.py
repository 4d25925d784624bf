"""`graph --format json` and `status` against the no-op, for flowmake commits (issue 17).

    python benchmarks/graph_json.py OLD NEW [-n 100000] [--repeat 5] [--keep DIR] [--after-edit]

Each commit is installed as ``commits.py`` does. One layered project of N targets
(``gen.py``; made by its Makefile and recorded with ``flowmake accept``, so that 100,000
targets take a minute, not a full build) is shared: each commit is measured in a block
of its own, since the compiled flow (``.flowmake/flow.pickle``) is made again whenever
another flowmake opens the project. Within a block, after two untimed runs of each
command: the no-op build, `status` and `graph --format json` (to /dev/null), taking
turns, ``--repeat`` times. Prints medians (min) and each command's ratio to the no-op.
``--keep DIR``: the project is made there if missing, and kept. ``--after-edit``: then,
for each commit, ``--repeat`` times: one leaf source edited (new content), `build -q`
(timed: "edit build"), and just after it `status` and `graph --format json` (what a user
runs next, while the build's outputs are within the racy window), each against the
block's no-op.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from commits import install
from gen import write_layered_project
from run import SETTLE_SECONDS, Tool, run_once
from scale import accepted

COMMANDS = {"no-op": ["build", "-q"], "status": ["status"],
            "graph json": ["graph", "--format", "json"]}


def made(root: Path, n: int, exe: str) -> None:
    """The project at ``root``, built by make and recorded by ``flowmake accept`` (as
    ``scale.py --accept`` makes it)."""
    if (root / ".flowmake").is_dir():
        return
    if not accepted(write_layered_project(root, n), Tool("flowmake", (exe,), (), ()), 2):
        raise SystemExit(f"{root}: not made")
    time.sleep(SETTLE_SECONDS + 0.2)  # outputs past the racy window: the no-op is armed


def block(root: Path, exe: str, repeat: int) -> dict[str, list[float]]:
    for argv in list(COMMANDS.values()) * 2:  # the compiled flow made, the snapshot saved
        run_once([exe, *argv], root)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeat):
        for name, argv in COMMANDS.items():
            time.sleep(0.3)  # the resident server has kept what the last command read
            run = run_once([exe, *argv], root)
            if not run.ok and not (name == "status" and run.returncode == 1):
                raise SystemExit(f"{name} failed (exit {run.returncode}): {run.stderr}")
            times[name].append(run.seconds)
    return times


AFTER_EDIT = {"edit build": ["build", "-q"], "status": ["status"],
              "graph json": ["graph", "--format", "json"]}


def after_edit(root: Path, exe: str, repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in AFTER_EDIT}
    for r in range(repeat):
        time.sleep(0.3)
        (root / "src" / f"in{r}.txt").write_text(f"edited {time.time_ns()}\n")
        for name, argv in AFTER_EDIT.items():
            run = run_once([exe, *argv], root)
            if not run.ok and not (name == "status" and run.returncode == 1):
                raise SystemExit(f"{name} failed (exit {run.returncode}): {run.stderr}")
            times[name].append(run.seconds)
    time.sleep(SETTLE_SECONDS + 0.2)
    run_once([exe, "build", "-q"], root)  # the fast path armed again for the next block
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("commits", nargs="+", help="flowmake commits to compare (git revisions)")
    p.add_argument("-n", type=int, default=100_000, help="targets (default 100000)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs of each command")
    p.add_argument("--keep", type=Path, help="project folder, made if missing, kept")
    p.add_argument("--after-edit", action="store_true",
                   help="also time an edit's build, and status and graph just after it")
    args = p.parse_args(argv)
    sides = [install(rev) for rev in args.commits]
    root = args.keep or Path(tempfile.mkdtemp(prefix="flowmake-graph-")) / "project"
    try:
        made(root, args.n, sides[0].exe)
        print(f"## graph --format json, layered {args.n}, {args.repeat} repeats "
              f"(load {os.getloadavg()[0]:.2f})\n")
        print("| flowmake | " + " | ".join(COMMANDS) + " |")
        print("|---|" + "---|" * len(COMMANDS))
        for side in sides:
            times = block(root, side.exe, args.repeat)
            noop = statistics.median(times["no-op"])
            cells = [f"{statistics.median(xs):.3f} s (min {min(xs):.3f})"
                     + ("" if name == "no-op" else f", {statistics.median(xs) / noop:.1f}x")
                     for name, xs in times.items()]
            print(f"| {side.rev} ({side.sha[:7]}) | " + " | ".join(cells) + " |")
            sys.stdout.flush()
            if args.after_edit:
                edited = after_edit(root, side.exe, args.repeat)
                cells = [f"{statistics.median(xs):.3f} s (min {min(xs):.3f}), "
                         f"{statistics.median(xs) / noop:.1f}x" for xs in edited.values()]
                print(f"| {side.rev} ({side.sha[:7]}), after an edit: "
                      + ", ".join(f"{name} {cell}" for name, cell in zip(
                          edited, cells, strict=True)) + " |")
                sys.stdout.flush()
    finally:
        if args.keep is None:
            shutil.rmtree(root.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
