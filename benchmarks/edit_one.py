"""The edit-one-file loop (issue 17): two flowmake commits and make on a layered project.

    python benchmarks/edit_one.py OLD NEW [-n 10000] [--repeat 7]

Each commit is installed as ``commits.py`` does (git archive, pip install, a venv of its
own); each tool gets its own copy of ``gen.py layered -n N`` (10 layers: one changed
source reaches 55 targets), built once. Then, taking turns within each repeat:

* edit: one source gets new content, the build is timed (55 targets run);
* touch: one source gets a new mtime and the same content, the build is timed (flowmake
  should run nothing; make runs the 55 again);
* noop: a build with nothing changed.

After each timed build the tree is settled untimed (aged past the racy window, built
until all fresh twice), so each measure starts where a user's next edit would.
Prints a markdown table of medians (min) and each flowmake's ratio to make.
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
from pathlib import Path

from commits import install
from gen import write_layered_project
from run import SETTLE_SECONDS, run_once

MEASURES = ("edit", "touch", "noop")


def timed(argv: list[str], root: Path, env: dict[str, str] | None = None) -> float:
    run = run_once(argv, root, env)
    if not run.ok:
        raise SystemExit(f"{argv[0]} failed in {root} (exit {run.returncode}): {run.stderr}")
    return run.seconds


def change(root: Path, measure: str, i: int) -> None:
    source = root / "src" / f"in{i}.txt"
    if measure == "edit":
        source.write_text(f"edited {i} {time.time_ns()}\n")
    elif measure == "touch":
        os.utime(source)  # now, same content


def settle(argv: list[str], root: Path, env: dict[str, str] | None = None) -> None:
    time.sleep(SETTLE_SECONDS + 0.2)
    for _ in range(2):
        timed(argv, root, env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="edit-one-file and touch: flowmake vs make")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("-n", type=int, default=10000, help="targets (default 10000)")
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("-j", "--jobs", type=int, default=2)
    p.add_argument("--in-process", action="store_true",
                   help="also NEW with FLOWMAKE_RESIDENT=0 (every command in-process, as a "
                        "one-shot CI job or hook runs it)")
    args = p.parse_args(argv)
    sides = [install(args.old), install(args.new)]
    tools: dict[str, tuple[list[str], dict[str, str] | None]] = {
        f"flowmake {s.rev} ({s.sha[:7]})": ([s.exe, "-q", "build", f"-j{args.jobs}"], None)
        for s in sides}
    if args.in_process:
        new = sides[1]
        tools[f"flowmake {new.rev} ({new.sha[:7]}), in-process"] = (
            [new.exe, "-q", "build", f"-j{args.jobs}"], {"FLOWMAKE_RESIDENT": "0"})
    tools["make"] = (["make", "-s", f"-j{args.jobs}"], None)
    tmp = Path(tempfile.mkdtemp(prefix="flowmake-edit-one-"))
    times: dict[tuple[str, str], list[float]] = {}
    try:
        roots = {}
        for k, (name, (cmd, env)) in enumerate(tools.items()):
            roots[name] = write_layered_project(tmp / f"p{k}", args.n).root
            print(f"- {name}: full build of {args.n}", file=sys.stderr)
            timed(cmd, roots[name], env)
            settle(cmd, roots[name], env)
        width = max(2, args.n // 10)
        for r in range(args.repeat):
            for measure in MEASURES:
                for name, (cmd, env) in tools.items():
                    change(roots[name], measure, (r * 7 + 3) % width)
                    times.setdefault((name, measure), []).append(timed(cmd, roots[name], env))
                    settle(cmd, roots[name], env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\n## edit-one-file, layered {args.n}, -j{args.jobs}, {args.repeat} repeats"
          f" ({load})\n")
    print("| tool | " + " | ".join(MEASURES) + " |\n|---|" + "---|" * len(MEASURES))
    make = {m: statistics.median(times[("make", m)]) for m in MEASURES}
    for name in tools:
        cells = []
        for m in MEASURES:
            got = times[(name, m)]
            med = statistics.median(got)
            ratio = "" if name == "make" else f", {med / make[m]:.1f}x make"
            cells.append(f"{med:.3f} s (min {min(got):.3f}){ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
