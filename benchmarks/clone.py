"""A fresh clone's first commands (issue 17; SPEC §7): flow.lock tells what was built.

    python benchmarks/clone.py [--flowmake EXE] [-n 10000] [--repeat 5]

Makes a layered project (``gen.py layered -n N``), builds it, then, for each repeat,
copies it without ``.flowmake/`` (a clone whose outputs are committed, as a pre-commit
hook or a CI job that checks them sees it: every file new to flowmake) and times, in that
copy, ``status`` (every input and output hashed, every target compared with its flow.lock
entry), then ``build`` (nothing runs: each target is fresh by its entry, which becomes its
record), then a second ``build`` (the no-op, for scale). Each command is run as users run
it (a resident server's fork, after the first). Prints medians (min).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from gen import write_layered_project
from run import run_once

STEPS = ("status", "build", "no-op")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flowmake", default=str(Path(sys.executable).with_name("flowmake")))
    p.add_argument("-n", type=int, default=10000, help="targets (default 10000)")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    exe = args.flowmake
    with tempfile.TemporaryDirectory(prefix="flowmake-clone-") as tmp:
        origin = Path(tmp) / "origin"
        write_layered_project(origin, args.n)
        for _ in range(2):
            if not run_once([exe, "-q", "build", "-j2"], origin).ok:
                raise SystemExit("the origin's build failed")
        times: dict[str, list[float]] = {step: [] for step in STEPS}
        for i in range(args.repeat):
            clone = Path(tmp) / f"clone{i}"
            shutil.copytree(origin, clone, ignore=shutil.ignore_patterns(".flowmake"))
            for step, command in zip(STEPS, (["-q", "status"], ["-q", "build", "-j2"],
                                             ["-q", "build", "-j2"]), strict=True):
                run = run_once([exe, *command], clone)
                if not run.ok:
                    raise SystemExit(f"{step} in the clone failed: {run.stderr.strip()}")
                times[step].append(run.seconds)
            shutil.rmtree(clone)
    print(f"## a fresh clone, layered {args.n}, {args.repeat} repeats\n")
    print("| command in the clone | time |")
    print("|---|---|")
    labels = {"status": "`status` (first command)", "build": "`build` (all fresh by flow.lock)",
              "no-op": "`build` again (no-op)"}
    for step in STEPS:
        xs = times[step]
        print(f"| {labels[step]} | {statistics.median(xs):.3f} s (min {min(xs):.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
