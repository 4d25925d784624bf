"""Where flowmake's fixed cost per build goes (issue 17), measured from the outside.

    python benchmarks/fixed_cost.py [--repeat 5] [--flowmake CMD] [--install here|release]
                                    [--against OTHER_CMD]

Two projects, each built from clean ``--repeat`` times:

* ``hundred``: 100 independent targets, each ``date +%s.%N > OUTPUT`` (so every output
  holds the wall-clock time its command ran), at -j2;
* ``sleep``: 16 targets ``date > START; sleep 0.5; date > OUTPUT`` at -j4 (ideal 2.0 s).

From the timestamps the commands write, against the harness's clock taken just before it
starts flowmake and just after it reaps it (no hook in flowmake itself):

* exec -> first command: Python's start, imports, config load, graph and plan, first spawn;
* slot refill: for the sleep project, how long a freed slot stays empty (the i-th job to
  end frees the slot the (i+4)-th job to start takes); for ``hundred``, the median gap
  between successive command starts (2 slots, commands of ~1 ms);
* last command -> exit: recording, flow.lock, SQLite close, atexit, interpreter exit.

Then, once each on ``hundred``: ``python -c pass`` for the interpreter's own start,
``-X importtime`` totals (flowmake's modules, the rest by top-level package), and a
cProfile run of the build in-process, its self time grouped by flowmake module (the
profile inflates Python-heavy code: read it as shares, not as milliseconds).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from run import find_flowmake, flowmake_python, parse_args

SLEEP_JOBS = 4
PROFILE = r"""
import cProfile, pstats, sys, runpy, atexit, io, os
sys.argv = ["flowmake", *sys.argv[2:]]
sys.path[0] = os.path.dirname(sys.executable)  # as the console script has it, not the cwd
prof = cProfile.Profile()
def done():
    prof.disable()
    stats = pstats.Stats(prof)
    with open(sys.argv_out, "w") as f:
        for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
            f.write(f"{tt}\t{ct}\t{nc}\t{file}\t{func}\n")
sys.argv_out = __import__("os").environ["FIXED_COST_PROFILE"]
atexit.register(done)
prof.enable()
runpy.run_module("flowmake", run_name="__main__", alter_sys=True)
"""


def write_projects(root: Path) -> dict[str, Path]:
    hundred, sleep = root / "hundred", root / "sleep"
    for path in (hundred, sleep):
        path.mkdir(parents=True)
    (hundred / "flow.toml").write_text("".join(
        f'[targets.t{i}]\ncmd = "date +%s.%N > ${{outputs}}"\ninputs = ["stamp.txt"]\n'
        f'outputs = ["out/t{i}.txt"]\n\n' for i in range(100)))
    (sleep / "flow.toml").write_text("".join(
        f'[targets.s{i}]\ncmd = "date +%s.%N > out/s{i}.start && sleep 0.5 && '
        f'date +%s.%N > ${{outputs}}"\ninputs = ["stamp.txt"]\noutputs = ["out/s{i}.txt"]\n\n'
        for i in range(16)))
    for path in (hundred, sleep):
        (path / "stamp.txt").write_text("0\n")
    return {"hundred": hundred, "sleep": sleep}


def clean(project: Path, warm: bool = False) -> None:
    """From clean: no outputs, no state. ``warm``: the state stays and the input every
    target reads changes, so every command runs again (a rebuild as users see it)."""
    if warm:
        (project / "stamp.txt").write_text(f"{time.time_ns()}\n")
        return
    for name in (".flowmake", "out", "flow.lock"):
        path = project / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (project / "out").mkdir()


def stamps(project: Path, suffix: str) -> list[float]:
    return sorted(float(p.read_text()) for p in (project / "out").glob(f"*{suffix}"))


def one_build(exe: list[str], project: Path, jobs: int, warm: bool) -> dict[str, float]:
    clean(project, warm)
    started = time.time()
    proc = subprocess.run([*exe, "-q", "build", f"-j{jobs}"], cwd=project,
                          capture_output=True, text=True, check=False)
    reaped = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"flowmake failed in {project}:\n{proc.stderr}")
    ends = stamps(project, ".txt")
    starts = stamps(project, ".start") or ends  # hundred: start and end are one stamp
    refill = ([s - e for e, s in zip(ends, starts[jobs:], strict=False)] if starts is not ends
              else [b - a for a, b in itertools.pairwise(starts)])
    return {"wall": reaped - started, "first": starts[0] - started,
            "refill": statistics.median(refill), "refill_max": max(refill),
            "exit": reaped - ends[-1]}


def series(exes: dict[str, list[str]], projects: dict[str, Path], jobs: int, repeat: int,
           warm: bool) -> dict[str, dict[str, list[float]]]:
    """Each flowmake (by label) on its own copy of the project, taking turns in each
    repeat, so that load drifting on a shared machine hits them alike."""
    got: dict[str, dict[str, list[float]]] = {label: defaultdict(list) for label in exes}
    if warm:
        for label, exe in exes.items():
            one_build(exe, projects[label], jobs, warm=False)  # the state the warm builds keep
    for _ in range(repeat):
        for label, exe in exes.items():
            for key, value in one_build(exe, projects[label], jobs, warm).items():
                got[label][key].append(value)
    return got


def python_start(python: str, repeat: int = 15) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def import_times(python: str, exe: list[str], project: Path
                 ) -> tuple[float, float, list[tuple[str, float]]]:
    """Seconds of all imports and of flowmake's (self times summed), and the top-level
    packages other than flowmake by cumulative time, from ``-X importtime`` (warm)."""
    clean(project, warm=True)
    how = ["-m", "flowmake"] if exe[1:2] == ["-m"] else exe[:1]
    proc = subprocess.run([python, "-X", "importtime", *how, "-q", "build", "-j2"],
                          cwd=project, capture_output=True, text=True, check=False)
    total = ours = 0.0
    tops: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        self_us, cum_us, indent, name = int(m[1]), int(m[2]), len(m[3]), m[4]
        total += self_us / 1e6
        if name.startswith("flowmake"):
            ours += self_us / 1e6
        elif indent == 1:
            tops.append((name, cum_us / 1e6))
    return total, ours, sorted(tops, key=lambda t: -t[1])[:8]


def profile_groups(python: str, project: Path) -> list[tuple[str, float]]:
    """Self time of one profiled (warm) build, grouped by flowmake module (else by kind)."""
    clean(project, warm=True)
    with tempfile.NamedTemporaryFile("r", suffix=".tsv") as out:
        env = {**os.environ, "FIXED_COST_PROFILE": out.name}
        subprocess.run([python, "-c", PROFILE, "-", "-q", "build", "-j2"], cwd=project,
                       env=env, capture_output=True, check=False)
        rows = [line.split("\t") for line in out.read().splitlines()]
    groups: dict[str, float] = defaultdict(float)
    for tt, _ct, _nc, file, func in rows:
        groups[group_of(file, func)] += float(tt)
    return sorted(groups.items(), key=lambda g: -g[1])[:14]


def group_of(file: str, func: str) -> str:
    if "/flowmake/" in file:
        rel = file.rsplit("/flowmake/", 1)[1]
        return "flowmake/" + rel.removesuffix(".py")
    if file == "~":  # a builtin: name the waits apart
        if any(w in func for w in ("poll", "select", "wait", "acquire", "sleep")):
            return "waiting (select/poll/wait/locks)"
        if any(w in func for w in ("fork", "exec", "posix_spawn")):
            return "spawning (fork/exec)"
        return f"builtins: {func.split(' of ')[0][:40]}"
    if "importlib" in file or file.startswith("<frozen"):
        return "importing (importlib)"
    return "other: " + Path(file).name


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.1f} ms (min {min(values) * 1000:.1f})"


def table(runs: dict[str, dict[str, list[float]]]) -> None:
    print("| measure | 100 targets, -j2 | 16 x sleep 0.5, -j4 |\n|---|---|---|")
    h, s = runs["hundred"], runs["sleep"]
    print(f"| wall | {ms(h['wall'])} | {ms(s['wall'])} (ideal 2000.0) |")
    print(f"| exec -> first command | {ms(h['first'])} | {ms(s['first'])} |")
    print(f"| slot refill, median | {ms(h['refill'])} | {ms(s['refill'])} |")
    print(f"| slot refill, worst | {ms(h['refill_max'])} | {ms(s['refill_max'])} |")
    print(f"| last command -> exit | {ms(h['exit'])} | {ms(s['exit'])} |")
    wall = statistics.median(s["wall"])
    print(f"\nsleep: efficiency {2.0 / wall:.3f}, fixed cost (wall - 2.0 s) "
          f"{(wall - 2.0) * 1000:.0f} ms")


def report(python: str, exe: list[str], projects: dict[str, Path]) -> None:
    start = python_start(python)
    total, ours, tops = import_times(python, exe, projects["hundred"])
    print(f"\npython -c pass: {start * 1000:.1f} ms; -X importtime on a warm `build` (100 "
          f"targets): all imports {total * 1000:.1f} ms, flowmake's modules {ours * 1000:.1f} "
          "ms (self times)")
    print("top-level imports other than flowmake (cumulative): "
          + ", ".join(f"{n} {t * 1000:.1f} ms" for n, t in tops))
    print("\nprofiled warm build of 100 targets, self time by group (read as shares: "
          "cProfile inflates Python code):")
    groups = profile_groups(python, projects["hundred"])
    whole = sum(t for _, t in groups) or 1.0
    for name, t in groups:
        print(f"  {t * 1000:7.1f} ms  {100 * t / whole:4.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--flowmake", help='flowmake command, e.g. "python -m flowmake"')
    parser.add_argument("--install", choices=["release", "here"], default="here")
    parser.add_argument("--against", help="a second flowmake command, measured taking turns"
                                          " with the first (before/after in one run)")
    args = parser.parse_args()
    run_args = ["--install", args.install] + (["--flowmake", args.flowmake] if args.flowmake
                                              else [])
    exe, env = find_flowmake(parse_args(run_args))
    if env:
        os.environ.update(env)
    python = flowmake_python(exe) or sys.executable
    exes = {shlex.join(exe): list(exe)}
    if args.against:  # e.g. benchmarks/.venv-commits/SHA/bin/flowmake (commits.py)
        exes[args.against] = shlex.split(args.against)
    with tempfile.TemporaryDirectory(prefix="flowmake-fixed-") as tmp:
        copies = {label: write_projects(Path(tmp) / str(i)) for i, label in enumerate(exes)}
        print(f"load {os.getloadavg()}; {os.cpu_count()} CPUs; {', '.join(exes)}")
        for warm, title in ((False, "from clean (no outputs, no .flowmake)"),
                            (True, "warm (state kept, an input of every target changed)")):
            runs = {name: series(exes, {label: c[name] for label, c in copies.items()}, jobs,
                                 args.repeat, warm)
                    for name, jobs in (("hundred", 2), ("sleep", SLEEP_JOBS))}
            for label in exes:
                print(f"\n## {title}, median of {args.repeat}: {label}\n")
                table({name: by_label[label] for name, by_label in runs.items()})
        print(f"\nload {os.getloadavg()}")
        report(python, list(exe), copies[shlex.join(exe)])


if __name__ == "__main__":
    main()
