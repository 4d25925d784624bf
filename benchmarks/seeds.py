"""flowmake's python targets against redun and d6tflow on the same pipeline, in the same run.

The pipeline: N independent trivial Python tasks (task i returns ``{"i": i, "square": i*i}``)
and one task gathering all N (the sum of the squares), written idiomatically for each tool
in a fresh folder of its own:

* flowmake: a flow.toml of N python targets (``python = "steps:work"``, ``params = { i }``,
  JSON outputs) and a gathering target taking them as table-form inputs (keyword
  arguments); ``flowmake -q build -j2``.
* redun: ``@task`` functions and a ``main`` task; ``redun run pipeline.py main`` (its CLI,
  its default SQLite backend in ``.redun/`` of the folder, its default executor).
* d6tflow: ``TaskJson`` tasks with an ``IntParameter`` and a gathering task requiring the N;
  ``python pipeline.py``, which calls ``d6tflow.Workflow(Gather, ...).run()`` (default
  workers=1, as its docs show).

Each repeat times, for every tool in turn (wall time of the whole process, spawn to exit):
the first build from a clean state; then, after 2 s (flowmake trusts no mtime younger than
that), the first no-op; then a second, warm no-op. Every run is checked: the gathered value
is right, a first build ran every task and a no-op rewrote no output (redun: its job table).
Medians (and minimums) of the repeats, ratios of medians; a markdown table on stdout and
``benchmarks/seeds.json`` (git-ignored).

redun and d6tflow run from a venv of their own, ``benchmarks/.venv-seeds`` (made on the
first run, pinned versions below); flowmake runs as ``benchmarks/run.py`` runs it
(``--install release``: a wheel of this tree in ``benchmarks/.venv``).

    python benchmarks/seeds.py [--quick] [--repeat N] [-n 200] [--flowmake CMD] [--keep DIR]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from run import Tool, find_flowmake, tool_version

BENCH_DIR = Path(__file__).resolve().parent
SEEDS_VENV = BENCH_DIR / ".venv-seeds"
SEEDS_PYTHON = SEEDS_VENV / "bin" / "python"
# Tested on 2026-12-01 (Python 3.11.7): each tool and the main libraries it rests on.
PINS = {"redun": ("redun==0.44.1", "SQLAlchemy==2.1.9"),
        "d6tflow": ("d6tflow==0.2.8", "luigi==3.8.1", "pandas==3.1.1", "numpy==2.4.6")}
TOOLS = ("flowmake", "redun", "d6tflow")
MEASURES = ("first build (clean)", "first no-op (2 s after the build)", "no-op (warm)")
SETTLE_SECONDS = 2.0
TAIL = 1500

# --------------------------------------------------------------------------- projects

FLOWMAKE_STEPS = '''
def work(i):
    return {"i": i, "square": i * i}


def gather(**parts):
    return {"total": sum(part["square"] for part in parts.values())}
'''

REDUN_SCRIPT = '''
from redun import task

redun_namespace = "seeds"


@task()
def work(i: int) -> dict:
    return {"i": i, "square": i * i}


@task()
def gather(parts: list) -> dict:
    return {"total": sum(part["square"] for part in parts)}


@task()
def main(n: int = N) -> dict:
    return gather([work(i) for i in range(n)])
'''

D6TFLOW_SCRIPT = '''
import d6tflow


class Work(d6tflow.tasks.TaskJson):
    i = d6tflow.IntParameter()

    def run(self):
        self.save({"i": self.i, "square": self.i * self.i})


class Gather(d6tflow.tasks.TaskJson):
    n = d6tflow.IntParameter()

    def requires(self):
        return [Work(i=i) for i in range(self.n)]

    def run(self):
        self.save({"total": sum(part["square"] for part in self.inputLoad())})


if __name__ == "__main__":
    d6tflow.set_dir("data")
    d6tflow.Workflow(Gather, params={"n": N}).run()
'''


def write_flowmake(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    (root / "steps.py").write_text(FLOWMAKE_STEPS)
    targets = [f'[targets.p{i}]\npython = "steps:work"\nparams = {{ i = {i} }}\n'
               f'outputs = ["out/p{i}.json"]\n' for i in range(n)]
    inputs = ", ".join(f'p{i} = "out/p{i}.json"' for i in range(n))
    targets.append(f'[targets.gather]\npython = "steps:gather"\ninputs = {{ {inputs} }}\n'
                   'outputs = ["out/total.json"]\n')
    (root / "flow.toml").write_text("\n".join(targets))


def write_redun(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    (root / "pipeline.py").write_text(REDUN_SCRIPT.replace("= N)", f"= {n})"))


def write_d6tflow(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    (root / "pipeline.py").write_text(D6TFLOW_SCRIPT.replace('"n": N', f'"n": {n}'))


# --------------------------------------------------------------------------- running


@dataclass
class Proc:
    seconds: float
    returncode: int
    stdout: str
    stderr: str


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None) -> Proc:
    """Run ``argv`` as a direct child; wall time from spawn to reaping."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err)
        except OSError as exc:
            return Proc(0.0, 127, "", f"cannot start {argv[0]}: {exc}")
        _, status, _ = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Proc(elapsed, proc.returncode, out.read().decode(errors="replace"),
                    err.read().decode(errors="replace"))


@dataclass
class Bench:
    """One tool: how to write its project, run it, reset it and check what a run did."""

    name: str
    argv: list[str]
    env: dict[str, str] | None
    write: Callable[[Path, int], None]
    state: tuple[str, ...]  # removed for a clean build
    outputs: Callable[[Path], list[Path]] | None  # the files the tasks wrote
    total: Callable[[Path, Proc], int | None]  # the gathered value, from the run
    counts: Callable[[Proc], tuple[int, int] | None] | None = None  # redun: (done, cached)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    version: str = ""

    def clean(self, root: Path) -> None:
        for name in self.state:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def json_total(path: Path) -> int | None:
    return json_total_of(read_json(path))


def json_total_of(data: object) -> int | None:
    total = data.get("total") if isinstance(data, dict) else None
    return total if isinstance(total, int) else None


def d6tflow_total(root: Path, _proc: Proc) -> int | None:
    """TaskJson saves ``{"data": value}`` in ``data/Gather/Gather_<n>_<hash>-data.json``."""
    found = sorted((root / "data" / "Gather").glob("*-data.json"))
    data = read_json(found[0]) if len(found) == 1 else None
    return json_total_of(data.get("data")) if isinstance(data, dict) else None


def redun_total(_root: Path, proc: Proc) -> int | None:
    """``redun run`` prints the main task's value (a Python literal) as its last line."""
    lines = proc.stdout.strip().splitlines()
    try:
        value = ast.literal_eval(lines[-1]) if lines else None
    except (ValueError, SyntaxError):
        return None
    return value.get("total") if isinstance(value, dict) else None


def redun_counts(proc: Proc) -> tuple[int, int] | None:
    """The ``ALL`` row of the job table redun prints at the end: (done, cached) jobs."""
    for line in proc.stderr.splitlines():
        parts = line.replace("[redun] |", "").split()
        if parts[:1] == ["ALL"] and len(parts) == 7 and all(p.isdigit() for p in parts[1:]):
            return int(parts[5]), int(parts[4])
    return None


def flowmake_outputs(root: Path) -> list[Path]:
    return sorted((root / "out").glob("*.json"))


def d6tflow_outputs(root: Path) -> list[Path]:
    return sorted((root / "data").glob("*/*-data.json"))


def mtimes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


# --------------------------------------------------------------------------- the tools


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment for every tool alike, less what would change what Python imports or
    caches (PYTHONDONTWRITEBYTECODE is set on some machines: no user's default)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV")}
    return {**env, **(extra or {})}


def flowmake_command(args: argparse.Namespace) -> tuple[tuple[str, ...], dict[str, str] | None]:
    """run.py's choice. Its ``--flowmake`` also puts this tree on PYTHONPATH, which is
    right for ``python -m flowmake`` only: an installed script would import this tree."""
    exe, env = find_flowmake(args)
    if args.flowmake and "-m" not in exe:
        env = None
    return exe, env


def make_benches(args: argparse.Namespace) -> list[Bench]:
    fm_exe, fm_env = flowmake_command(args)
    flowmake = Bench("flowmake", [*fm_exe, "-q", "build", "-j2"], child_env(fm_env),
                     write_flowmake, (".flowmake", "out", "flow.lock"), flowmake_outputs,
                     lambda root, _proc: json_total(root / "out" / "total.json"))
    flowmake.version = tool_version(Tool("flowmake", fm_exe, (), (), child_env(fm_env)))
    redun = Bench("redun", [str(SEEDS_VENV / "bin" / "redun"), "run", "pipeline.py", "main"],
                  child_env(), write_redun, (".redun",), None, redun_total, redun_counts)
    d6tflow = Bench("d6tflow", [str(SEEDS_PYTHON), "pipeline.py"], child_env(),
                    write_d6tflow, ("data",), d6tflow_outputs, d6tflow_total)
    return [flowmake, redun, d6tflow]


def ensure_seeds_venv() -> str | None:
    """Make ``benchmarks/.venv-seeds`` if needed; None, or why it could not be made."""
    if SEEDS_PYTHON.exists():
        return None
    print(f"- making {SEEDS_VENV} (once)")
    proc = subprocess.run([sys.executable, "-m", "venv", str(SEEDS_VENV)], check=False)
    return None if proc.returncode == 0 else f"python -m venv {SEEDS_VENV}: exit {proc.returncode}"


def ensure_pins(tool: str) -> str | None:
    """Install ``tool``'s pins into the seeds venv unless there; None, or why not."""
    pins = list(PINS[tool])
    if installed_pins(pins) == pins:
        return None
    print(f"- installing {' '.join(pins)} into {SEEDS_VENV}")
    proc = subprocess.run([str(SEEDS_PYTHON), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", *pins], check=False)
    return None if proc.returncode == 0 else f"pip install {' '.join(pins)}: exit {proc.returncode}"


def installed_pins(pins: list[str]) -> list[str]:
    code = ("import importlib.metadata as m, sys\n"
            "for n in sys.argv[1:]:\n"
            "    try: print(n + '==' + m.version(n))\n"
            "    except m.PackageNotFoundError: print(n + '==?')")
    proc = subprocess.run([str(SEEDS_PYTHON), "-c", code, *(p.split("==")[0] for p in pins)],
                          capture_output=True, text=True, check=False)
    return proc.stdout.split()


def seed_version(module: str) -> str | None:
    """``module`` and its version in the seeds venv, or None when it does not import."""
    code = (f"import importlib.metadata as m; import {module}; "
            f"print('{module} ' + m.version('{module}'))")
    proc = subprocess.run([str(SEEDS_PYTHON), "-c", code], capture_output=True, text=True,
                          env=child_env(), check=False)
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if proc.returncode == 0 and lines else None


def prepare_seeds(benches: list[Bench]) -> None:
    """Drop (with the reason) a seed tool that cannot be installed or imported here."""
    venv_problem = ensure_seeds_venv()
    for bench in benches[1:]:
        problem = venv_problem or ensure_pins(bench.name)
        version = None if problem else seed_version(bench.name)
        if version is None:
            bench.error = problem or f"{bench.name} does not import in {SEEDS_VENV}"
        else:
            bench.version = version


# --------------------------------------------------------------------------- measuring


def check(bench: Bench, root: Path, proc: Proc, measure: str, n: int,
          before: dict[Path, int]) -> tuple[str | None, str | None]:
    """(why the run does not count, a remark on it) for one run of ``bench``."""
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {(proc.stderr or proc.stdout)[-TAIL:].strip()}", None
    expected = sum(i * i for i in range(n))
    total = bench.total(root, proc)
    if total != expected:
        return f"gathered {total!r}, expected {expected}", None
    clean = measure == MEASURES[0]
    if bench.counts is not None:
        counts = bench.counts(proc)
        if counts is None:
            return "no job table in redun's output", None
        done, cached = counts
        if clean and done != n + 2:
            return f"a clean build ran {done} jobs, not {n + 2}", None
        return None, f"{measure}: done {done}, cached {cached} of {n + 2} jobs"
    assert bench.outputs is not None
    after = mtimes(bench.outputs(root))
    if len(after) != n + 1:
        return f"{len(after)} output files, not {n + 1}", None
    if not clean and after != before:
        changed = sum(1 for p, t in after.items() if before.get(p) != t)
        return None, f"{measure}: not a no-op, {changed} outputs rewritten"
    return None, None


def measure_once(bench: Bench, root: Path, measure: str, n: int) -> None:
    before = mtimes(bench.outputs(root)) if bench.outputs and measure != MEASURES[0] else {}
    proc = timed(bench.argv, root, bench.env)
    problem, remark = check(bench, root, proc, measure, n, before)
    if problem:
        bench.error = f"{measure}: {problem}"
        print(f"  ! {bench.name} dropped: {bench.error}")
        return
    if remark and remark not in bench.notes:
        bench.notes.append(remark)
    bench.seconds.setdefault(measure, []).append(proc.seconds)


def run_repeats(benches: list[Bench], base: Path, n: int, repeat: int) -> None:
    """Per repeat, the tools take turns at each step, so drifting load hits them alike."""
    for bench in benches:
        if bench.error is None:
            bench.write(base / bench.name, n)
    for r in range(repeat):
        for measure in MEASURES:
            if measure == MEASURES[1]:
                time.sleep(SETTLE_SECONDS)
            for bench in benches:
                if bench.error is None:
                    if measure == MEASURES[0]:
                        bench.clean(base / bench.name)
                    measure_once(bench, base / bench.name, measure, n)
        done = ", ".join(f"{b.name} {sum(s[-1] for s in b.seconds.values()):.1f} s"
                         for b in benches if b.error is None and b.seconds)
        print(f"- repeat {r + 1}/{repeat}: {done}", flush=True)


# --------------------------------------------------------------------------- reporting


def median(bench: Bench, measure: str) -> float | None:
    times = bench.seconds.get(measure) if bench.error is None else None
    return statistics.median(times) if times else None


def cell(bench: Bench, measure: str) -> str:
    times = bench.seconds.get(measure) if bench.error is None else None
    if not times:
        return "n/a"
    return f"{statistics.median(times):.2f} s (min {min(times):.2f})"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.1f}x" if a is not None and b else "n/a"


def markdown_table(benches: list[Bench]) -> str:
    by_name = {b.name: b for b in benches}
    fm, redun, d6t = (by_name[t] for t in TOOLS)
    rows = ["| measure | flowmake | redun | d6tflow | redun / flowmake | d6tflow / flowmake |",
            "|---|---|---|---|---|---|"]
    for m in MEASURES:
        base = median(fm, m)
        rows.append(f"| {m} | {cell(fm, m)} | {cell(redun, m)} | {cell(d6t, m)} | "
                    f"{ratio(median(redun, m), base)} | {ratio(median(d6t, m), base)} |")
    return "\n".join(rows)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def write_json(path: Path, benches: list[Bench], args: argparse.Namespace, n: int,
               repeat: int, loads: tuple[str, str]) -> None:
    doc = {
        "meta": {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "n": n,
                 "repeat": repeat, "jobs": 2, "cpus": os.cpu_count(),
                 "python": sys.version.split()[0], "pins": PINS,
                 "load_before": loads[0], "load_after": loads[1]},
        "tools": {b.name: {"argv": b.argv, "version": b.version, "error": b.error,
                           "notes": b.notes,
                           "results": {m: {"seconds": t, "median": statistics.median(t),
                                           "min": min(t)} for m, t in b.seconds.items()}}
                  for b in benches},
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    p.add_argument("--repeat", type=int, help="repeats (default 5; --quick 2)")
    p.add_argument("-n", type=int, default=200, help="independent tasks (default 200)")
    p.add_argument("--flowmake", help='flowmake command, e.g. "python -m flowmake"')
    p.add_argument("--install", choices=["release", "here"], default="release",
                   help="which flowmake, as in run.py (default: a wheel in benchmarks/.venv)")
    p.add_argument("--keep", type=Path, help="write the projects here and keep them")
    p.add_argument("--json", type=Path, default=BENCH_DIR / "seeds.json", help="results file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 5)
    loads = (load_average(), "")
    benches = make_benches(args)
    prepare_seeds(benches)
    print(f"# python targets against redun and d6tflow ({args.n} tasks + 1 gathering;"
          f" median of {repeat}; load {loads[0]}; {os.cpu_count()} CPUs)")
    for b in benches:
        print(f"- {b.name}: {shlex.join(b.argv)} — {b.version or 'unavailable: ' + str(b.error)}")
    base = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="flowmake-seeds-"))
    if args.keep:
        shutil.rmtree(base, ignore_errors=True)
    try:
        run_repeats(benches, base, args.n, repeat)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    loads = (loads[0], load_average())
    print(f"\n## results (wall time per process; median of {repeat}; ratios of medians)\n")
    print(markdown_table(benches))
    for b in benches:
        for line in ([f"dropped: {b.error}"] if b.error else []) + b.notes:
            print(f"- {b.name}: {line}")
    print(f"- load average before {loads[0]}, after {loads[1]}")
    write_json(args.json, benches, args, args.n, repeat, loads)
    print(f"\nwrote {args.json}")
    return 0 if benches[0].error is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
