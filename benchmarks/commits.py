"""Two commits of flowmake side by side: the no-op build and the full build, same run.

    python benchmarks/commits.py OLD NEW            # e.g. fdb7cbe~1 HEAD
    python benchmarks/commits.py OLD NEW --quick    # smaller sizes, fewer repeats

Each commit is exported with ``git archive`` and installed as a user would (``pip install``
of that tree, no plugins) into a venv of its own under ``benchmarks/.venv-commits/``
(git-ignored, made once per commit). Each commit gets its own copy of the same generated
project, so neither reads the other's ``.flowmake/``; within a repeat the two take turns,
so load drifting on a shared machine hits them alike. Prints a markdown table with the
medians and the ratio new/old. A refactoring that must not change speed is held to
"within 5%".
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gen import Project, write_copy_project
from run import REPO_ROOT, SETTLE_SECONDS, clean_tree, missing_outputs, remove, run_once

VENVS = Path(__file__).resolve().parent / ".venv-commits"


@dataclass
class Side:
    rev: str
    sha: str
    exe: str
    times: dict[str, list[float]] = field(default_factory=dict)


def resolve(rev: str) -> str:
    out = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def install(rev: str) -> Side:
    """A venv holding flowmake as of ``rev`` (made once; the tree comes from git archive)."""
    sha = resolve(rev)
    venv = VENVS / sha[:12]
    exe = venv / "bin" / "flowmake"
    if not exe.exists():
        print(f"- installing {rev} ({sha[:12]}) into {venv}")
        with tempfile.TemporaryDirectory() as tree:
            archive = subprocess.run(["git", "archive", sha], cwd=REPO_ROOT,
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", tree], check=True)
    return Side(rev, sha, str(exe))


class Flowmake:
    """clean_tree's view of a tool: what a clean tree has none of."""

    def state_files(self) -> tuple[str, ...]:
        return (".flowmake", "flow.lock")


def build(side: Side, project: Project, jobs: int) -> float:
    run = run_once([side.exe, "-q", "build", f"-j{jobs}"], project.root)
    if not run.ok:
        raise SystemExit(f"{side.rev}: build failed (exit {run.returncode}): {run.stderr}")
    return run.seconds


def bench(sides: list[Side], root: Path, name: str, n: int, repeat: int, jobs: int) -> None:
    projects = [write_copy_project(root / f"{name}-{n}-{i}", n) for i in range(len(sides))]
    clean = name == "full"
    if not clean:  # a built tree, aged past the racy-timestamp window, one warm-up each
        for side, project in zip(sides, projects, strict=True):
            build(side, project, jobs)
        time.sleep(SETTLE_SECONDS)
        for side, project in zip(sides, projects, strict=True):
            build(side, project, jobs)
    key = f"{name} {n}"
    for _ in range(repeat):
        for side, project in zip(sides, projects, strict=True):
            if clean:
                clean_tree(project, [Flowmake()])  # type: ignore[list-item]  # duck-typed
            side.times.setdefault(key, []).append(build(side, project, jobs))
            if clean and (missing := missing_outputs(project)):
                raise SystemExit(f"{side.rev}: {len(missing)} outputs missing")
    for project in projects:
        remove(project.root)


def table(sides: list[Side]) -> str:
    old, new = sides
    rows = ["| benchmark | " + " | ".join(f"{s.rev} ({s.sha[:7]})" for s in sides)
            + " | new/old |", "|---|---|---|---|"]
    for key, old_times in old.times.items():
        a, b = statistics.median(old_times), statistics.median(new.times[key])
        rows.append(f"| {key} | {a:.3f} s (min {min(old_times):.3f}) | {b:.3f} s "
                    f"(min {min(new.times[key]):.3f}) | {b / a:.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="two flowmake commits side by side")
    p.add_argument("old", help="the commit to compare against (any git revision)")
    p.add_argument("new", help="the commit under test (any git revision)")
    p.add_argument("--quick", action="store_true", help="1,000-target no-op, 200-target full")
    p.add_argument("--repeat", type=int, help="repeats per benchmark (default 15, quick 3)")
    p.add_argument("-j", "--jobs", type=int, default=2, help="build jobs (default 2)")
    args = p.parse_args(argv)
    sides = [install(args.old), install(args.new)]
    noop_n, full_n = (1000, 200) if args.quick else (10000, 1000)
    repeat = args.repeat or (3 if args.quick else 15)
    root = Path(tempfile.mkdtemp(prefix="flowmake-commits-"))
    try:
        bench(sides, root, "noop", noop_n, repeat, args.jobs)
        bench(sides, root, "full", full_n, max(3, repeat // 3), args.jobs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n## {args.old} vs {args.new}: median wall time, -j{args.jobs}\n")
    print(table(sides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
