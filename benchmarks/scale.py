"""Scale: how flowmake's times and memory grow from 1,000 to 100,000 targets (issue 17).

Run through ``python benchmarks/run.py --only scale`` (``--quick`` stops at 10,000), or
alone: ``python benchmarks/scale.py [--sizes 1000 10000 100000] [--repeat 3]``.

For each size and shape (``wide``: N independent ``cp`` targets; ``layered``: gen.py's 10
layers, one source reaching 55 targets), on a generated project: the full build from clean
(once), the no-op build, ``status``, ``graph --format json``, and edit-one-file (one
source's content changed, then ``build``: 1 target rebuilt when wide, 55 when layered).
Each command runs under ``/usr/bin/time`` for its peak RSS. Prints a table and the growth
exponent between sizes, log(t2/t1) / log(n2/n1): 1.0 is linear, and status and graph json
over the no-op (issue 17's bar at 100,000: 3x).
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from gen import Project, write_copy_project, write_layered_project
from run import SETTLE_SECONDS, Series, Tool, clean_tree, print_failure, remove, run_once

MEASURES = ("full", "noop", "edit-one", "status", "graph-json")
SHAPES: dict[str, Callable[[Path, int], Project]] = {
    "wide": write_copy_project, "layered": write_layered_project}


def commands(fm: Tool, jobs: int) -> dict[str, list[str]]:
    return {"full": fm.build(jobs), "noop": fm.build(jobs), "edit-one": fm.build(jobs),
            "status": [*fm.exe, "status"],
            "graph-json": [*fm.exe, "graph", "--format", "json"]}


def timed(series: Series, project: Project, fm: Tool) -> bool:
    run = run_once(series.argv, project.root, fm.env, rss=True)
    if not run.ok and not (series.bench.endswith("status") and run.returncode == 1):
        print_failure(fm.name, series.argv, run)
        series.error = f"exit {run.returncode}"
        return False
    series.seconds.append(run.seconds)
    series.maxrss_kb.append(run.maxrss_kb)
    return True


def accepted(project: Project, fm: Tool, jobs: int) -> bool:
    """The outputs made by the project's Makefile and recorded by ``flowmake accept``: the
    state of a full build without paying for one (``--accept``; no full-build row)."""
    for output in project.outputs:  # clean_tree left out/ only; make makes no folder
        (project.root / output).parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run(["make", f"-j{jobs}", "-s"], cwd=project.root, capture_output=True)
    run = run_once([*fm.exe, "-q", "accept", "*"], project.root, fm.env)  # every target
    if made.returncode != 0 or not run.ok:
        print(f"  accept failed: make exit {made.returncode}, accept exit {run.returncode}")
        return False
    return True


def one_size(root: Path, shape: str, n: int, fm: Tool, jobs: int, repeat: int,
             accept: bool = False) -> list[Series]:
    project = SHAPES[shape](root / f"scale-{shape}-{n}", n)
    argv = commands(fm, jobs)
    got = {m: Series(f"scale-{shape}-{m}", n, "flowmake", argv[m]) for m in MEASURES}
    clean_tree(project, [fm])
    if accepted(project, fm, jobs) if accept else timed(got["full"], project, fm):
        time.sleep(SETTLE_SECONDS)  # outputs past the "racy" window, as the no-op bench does
        run_once(argv["noop"], project.root, fm.env)  # warm-up: saves the no-op fast path
        source = project.root / "src" / "in0.txt"
        for i in range(repeat):
            timed(got["noop"], project, fm)
            source.write_text(f"edited {i} {time.time_ns()}\n")
            timed(got["edit-one"], project, fm)
            time.sleep(SETTLE_SECONDS)  # the rebuilt outputs past the "racy" window, so
            run_once(argv["noop"], project.root, fm.env)  # this saves the fast path again
            timed(got["status"], project, fm)
            timed(got["graph-json"], project, fm)
    remove(project.root)
    for m, s in got.items():
        shown = (f"{s.median:8.3f} s  {s.peak_rss_mb:6.1f} MB" if s.median and s.peak_rss_mb
                 else "not run (--accept)" if accept and m == "full" else "FAILED")
        print(f"  {shape:<8} {n:>7} {m:<10} {shown}")
    return list(got.values())


def bench_scale(root: Path, fm: Tool, sizes: tuple[int, ...], jobs: int = 2,
                repeat: int = 3, shapes: tuple[str, ...] = tuple(SHAPES),
                accept: bool = False) -> list[Series]:
    results: list[Series] = []
    for shape in shapes:
        for n in sizes:
            print(f"\n## scale: {shape}, N={n} (load {load()})")
            results += one_size(root, shape, n, fm, jobs, repeat, accept)
    print("\n" + markdown(results, sizes, shapes))
    return results


def load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def exponent(t1: float | None, t2: float | None, n1: int, n2: int) -> str:
    if not t1 or not t2:
        return "—"
    return f"{math.log(t2 / t1) / math.log(n2 / n1):.2f}"


def markdown(results: list[Series], sizes: tuple[int, ...],
             shapes: tuple[str, ...] = tuple(SHAPES)) -> str:
    head = " | ".join(f"N={n:,}" for n in sizes)
    grows = " | ".join(f"exp {a:,}→{b:,}" for a, b in itertools.pairwise(sizes))
    rows = [f"| shape | measure | {head} | {grows} |",
            "|---|---|" + "---|" * (2 * len(sizes) - 1)]
    for shape in shapes:
        for m in MEASURES:
            found = [next((s for s in results if s.bench == f"scale-{shape}-{m}"
                           and s.size == n), None) for n in sizes]
            cells = [f"{s.median:.3f} s, {s.peak_rss_mb:.0f} MB"
                     if s and s.median and s.peak_rss_mb else "—" for s in found]
            exps = [exponent(a.median if a else None, b.median if b else None, n1, n2)
                    for (a, b), (n1, n2) in zip(itertools.pairwise(found), itertools.pairwise(sizes),
                                                strict=True)]
            rows.append(f"| {shape} | {m} | " + " | ".join(cells + exps) + " |")
        rows += [ratio_row(results, shape, m, sizes) for m in ("status", "graph-json")]
    return "\n".join(rows)


def ratio_row(results: list[Series], shape: str, measure: str, sizes: tuple[int, ...]) -> str:
    """``measure``'s median over the no-op's at each size (the issue's bar: 3x)."""
    def median(m: str, n: int) -> float | None:
        found = next((s for s in results if s.bench == f"scale-{shape}-{m}" and s.size == n),
                     None)
        return found.median if found else None

    cells = []
    for n in sizes:
        top, noop = median(measure, n), median("noop", n)
        cells.append(f"{top / noop:.1f}x" if top and noop else "—")
    return (f"| {shape} | {measure} / no-op | " + " | ".join(cells)
            + " |" * len(list(itertools.pairwise(sizes))) + " |")


def main() -> None:
    import tempfile

    from run import find_flowmake, parse_args

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--install", choices=["release", "here"], default="here")
    parser.add_argument("--accept", action="store_true",
                        help="make the outputs with make and record them with `flowmake "
                             "accept` instead of a timed full build (minutes at 100,000)")
    parser.add_argument("--flowmake", help='flowmake command, e.g. "python -m flowmake"')
    args = parser.parse_args()
    exe, env = find_flowmake(parse_args(["--install", args.install] + (
        ["--flowmake", args.flowmake] if args.flowmake else [])))
    fm = Tool("flowmake", exe, ("-q", "build", "-j{jobs}"), ("status",), env)
    with tempfile.TemporaryDirectory(prefix="flowmake-scale-") as root:
        bench_scale(Path(root), fm, tuple(args.sizes), repeat=args.repeat,
                    shapes=tuple(args.shapes), accept=args.accept)


if __name__ == "__main__":
    main()
