"""Benchmark flowmake against GNU make and ninja on the same generated projects.

Benchmarks (see benchmarks/README.md):

* noop     no-op ``build`` of N copy targets after a full build and a warm-up run
* status   no-op ``flowmake status`` vs ``make -q all`` vs ``ninja -n``
* full     full build of N copy targets from a clean tree
* sleep    K targets of ``sleep S`` at -j4: wall time and parallel efficiency
* (full and sleep also run ``floor.py``, the least a Python tool can cost, for reference)
* hash     hashing throughput on one large input, and a folder of 10,000 small files
           cold then from the stat cache (flowmake only; ``--hash``)
* scale    1,000 to 100,000 targets, wide and layered (flowmake only; ``scale.py``)

Each command is timed as a direct child process (wall time, median and min of several
runs), then run once more under ``/usr/bin/time -f %M`` for its peak RSS: the largest
resident set of the tool process or any descendant it waited for, not their sum (see
``run_once`` for why ``os.wait4`` from this process cannot give it). The tools take turns
within each repetition, so drifting load on a shared machine hits all of them alike. Results are printed as markdown and written to ``benchmarks/results.json``.

    python benchmarks/run.py [--quick] [--hash] [--dir DIR] [--flowmake "python -m flowmake"]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from gen import (
    Project,
    write_copy_project,
    write_files_project,
    write_hash_project,
    write_sleep_project,
)

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv"  # --install release
REPO_ROOT = BENCH_DIR.parent
SETTLE_SECONDS = 2.0  # lets output mtimes age past any "racy timestamp" window
STDERR_TAIL = 2000
TOOLS = ("flowmake", "make", "ninja")
NO_CACHE = "flowmake-nocache"  # the full build again with --no-cache
FLOOR = "python-floor"  # benchmarks/floor.py: a reference for the builds from clean
TIME = "/usr/bin/time" if Path("/usr/bin/time").is_file() else None


@dataclass(frozen=True)
class Config:
    noop_sizes: tuple[int, ...]
    full_size: int
    sleep_targets: int
    sleep_seconds: float
    sleep_jobs: int
    jobs: int
    repeat_noop: int
    repeat_full: int
    hash_mb: int
    hash_files: int = 10_000
    scale_sizes: tuple[int, ...] = (1000, 10_000, 100_000)


FULL = Config((1000, 10000), 1000, 16, 0.5, 4, 2, 5, 5, 1024)
QUICK = Config((100, 1000), 200, 8, 0.25, 4, 2, 3, 2, 256, scale_sizes=(1000, 10_000))


@dataclass(frozen=True, eq=False)
class Tool:
    """How to invoke one build tool; ``{jobs}`` in an argument is replaced by -j's value."""

    name: str
    exe: tuple[str, ...]
    build_args: tuple[str, ...]
    status_args: tuple[str, ...]
    env: Mapping[str, str] | None = None

    def build(self, jobs: int) -> list[str]:
        return [*self.exe, *(a.format(jobs=jobs) for a in self.build_args)]

    def status(self) -> list[str]:
        return [*self.exe, *self.status_args]

    def state_files(self) -> tuple[str, ...]:
        return {"flowmake": (".flowmake",), "ninja": (".ninja_log", ".ninja_deps")}.get(
            self.name, ()
        )


@dataclass
class Run:
    seconds: float
    maxrss_kb: int
    returncode: int
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class Series:
    """Repeated measurements of one command in one benchmark."""

    bench: str
    size: int
    tool: str
    argv: list[str]
    seconds: list[float] = field(default_factory=list)
    maxrss_kb: list[int] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    @property
    def min(self) -> float | None:
        return min(self.seconds) if self.seconds else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(self.maxrss_kb) / 1024 if self.maxrss_kb else None

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data.update(median=self.median, min=self.min, peak_rss_mb=self.peak_rss_mb)
        return data


# --------------------------------------------------------------------------- running


def run_once(
    argv: list[str], cwd: Path, env: Mapping[str, str] | None = None, rss: bool = False
) -> Run:
    """Run ``argv`` to completion and time it; with ``rss``, also measure its peak RSS.

    Timed runs exec the command directly. The RSS run goes through ``/usr/bin/time``:
    Linux carries a parent's high-water RSS over fork and exec into the child's
    ``ru_maxrss``, so ``os.wait4`` on a child of this (large) Python process would report
    at least this process's RSS. A child forked by the small ``time`` binary does not.
    """
    if rss:  # a whole flowmake process's memory: a resident command's is its server's fork
        env = {**(env or {}), "FLOWMAKE_RESIDENT": "0"}
    full_env = {**os.environ, **env} if env else None
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r") as rss_file,
    ):
        wrapped = [TIME, "-f", "%M", "-o", rss_file.name, *argv] if rss and TIME else argv
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                wrapped, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        except OSError as exc:
            return Run(0.0, 0, 127, f"cannot start {argv[0]}: {exc}")
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        maxrss = parse_time_rss(rss_file.read()) if rss and TIME else usage.ru_maxrss
        run = Run(elapsed, maxrss, proc.returncode)
        if not run.ok:
            run.stderr = read_tail(err) or read_tail(out)
        return run


def parse_time_rss(text: str) -> int:
    """``time -f %M`` output: KiB on the last line (after a note when the command failed)."""
    lines = text.strip().splitlines()
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


def read_tail(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")[-STDERR_TAIL:].strip()


def report_failure(series: Series, run: Run) -> None:
    series.error = f"exit {run.returncode}: {run.stderr}"
    print_failure(series.tool, series.argv, run)


def print_failure(tool: str, argv: list[str], run: Run) -> None:
    print(f"  ! {tool} failed ({shlex.join(argv)}), exit {run.returncode}")
    for line in run.stderr.splitlines()[-20:]:
        print(f"  | {line}")


def measure(
    bench: str,
    size: int,
    commands: Mapping[Tool, list[str]],
    cwd: Path,
    repeat: int,
    before: Callable[[Tool], None] | None = None,
    after: Callable[[Tool], str | None] | None = None,
) -> list[Series]:
    """Run each tool's command ``repeat`` times, the tools taking turns in each round.

    One more round follows, untimed, under ``/usr/bin/time`` for the peak RSS.
    ``before`` prepares the tree (untimed); ``after`` checks it and may return a note.
    A tool that fails is reported once and dropped from the remaining rounds.
    """
    series = {tool: Series(bench, size, tool.name, argv) for tool, argv in commands.items()}
    for round_ in range(repeat + 1):
        rss = round_ == repeat  # a last, untimed round measures the peak RSS
        for tool, s in series.items():
            if s.error:
                continue
            if before:
                before(tool)
            run = run_once(s.argv, cwd, tool.env, rss=rss)
            if not run.ok:
                report_failure(s, run)
                continue
            if rss:
                s.maxrss_kb.append(run.maxrss_kb)
            else:
                s.seconds.append(run.seconds)
            note = after(tool) if after else None
            if note and note not in s.notes:
                s.notes.append(note)
    for s in series.values():
        print_series(s)
    return list(series.values())


def print_series(s: Series) -> None:
    if s.error or s.median is None or s.min is None:
        print(f"  {s.bench:<16} {s.size:>6} {s.tool:<9} FAILED")
        return
    rss = f"{s.peak_rss_mb:7.1f} MB" if s.peak_rss_mb is not None else ""
    notes = f"  ({'; '.join(s.notes)})" if s.notes else ""
    print(
        f"  {s.bench:<16} {s.size:>6} {s.tool:<9} median {s.median:8.3f} s"
        f"  min {s.min:8.3f} s  {rss}{notes}"
    )


# --------------------------------------------------------------------------- tree state


def clean_tree(project: Project, tools: Iterable[Tool]) -> None:
    """Delete every output and every tool's state, keeping the (empty) output folder."""
    for tool in tools:
        for name in tool.state_files():
            remove(project.root / name)
    out = project.root / project.out_dir
    remove(out)
    out.mkdir()


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def missing_outputs(project: Project) -> list[str]:
    return [o for o in project.outputs if not (project.root / o).is_file()]


def output_mtimes(project: Project) -> dict[str, int]:
    return {o: (project.root / o).stat().st_mtime_ns for o in project.outputs}


# --------------------------------------------------------------------------- benchmarks


def build_commands(tools: Iterable[Tool], jobs: int) -> dict[Tool, list[str]]:
    return {tool: tool.build(jobs) for tool in tools}


def prepare_noop(project: Project, tools: list[Tool], jobs: int) -> dict[str, str]:
    """Full build with every tool, then a warm-up no-op each; returns the tools that failed."""
    clean_tree(project, tools)
    failed = {}
    for tool in tools:
        run = run_once(tool.build(jobs), project.root, tool.env)
        if not run.ok:
            print_failure(tool.name, tool.build(jobs), run)
            failed[tool.name] = f"full build failed, exit {run.returncode}: {run.stderr}"
    if missing := missing_outputs(project):
        print(f"  ! {len(missing)} outputs missing after the full builds, e.g. {missing[0]}")
    time.sleep(SETTLE_SECONDS)
    for tool in tools:
        if tool.name not in failed:
            run_once(tool.build(jobs), project.root, tool.env)
    return failed


def bench_noop(root: Path, tools: list[Tool], cfg: Config) -> list[Series]:
    results: list[Series] = []
    for n in cfg.noop_sizes:
        print(f"\n## no-op build and status, N={n}")
        project = write_copy_project(root / f"copy-{n}", n)
        failed = prepare_noop(project, tools, cfg.jobs)
        ready = [tool for tool in tools if tool.name not in failed]
        baseline = output_mtimes(project)

        def unchanged(
            _tool: Tool, project: Project = project, base: dict[str, int] = baseline
        ) -> str | None:
            return None if output_mtimes(project) == base else "rewrote outputs: not a no-op"

        builds = build_commands(ready, cfg.jobs)
        results += measure("noop", n, builds, project.root, cfg.repeat_noop, after=unchanged)
        status = {tool: tool.status() for tool in ready}
        results += measure("status", n, status, project.root, cfg.repeat_noop, after=unchanged)
        results += [
            Series(bench, n, name, [], error=error)
            for name, error in failed.items()
            for bench in ("noop", "status")
        ]
        remove(project.root)
    return results


def bench_from_clean(
    bench: str, project: Project, tools: list[Tool], jobs: int, repeat: int
) -> list[Series]:
    def before(_tool: Tool) -> None:
        clean_tree(project, tools)

    def after(_tool: Tool) -> str | None:
        missing = missing_outputs(project)
        return f"{len(missing)} outputs missing" if missing else None

    return measure(
        bench,
        len(project.outputs),
        build_commands(tools, jobs),
        project.root,
        repeat,
        before=before,
        after=after,
    )


def bench_full(root: Path, tools: list[Tool], cfg: Config) -> list[Series]:
    print(f"\n## full build from clean, N={cfg.full_size}, -j{cfg.jobs}")
    project = write_copy_project(root / f"full-{cfg.full_size}", cfg.full_size)
    results = bench_from_clean("full", project, tools, cfg.jobs, cfg.repeat_full)
    remove(project.root)
    return results


def bench_sleep(root: Path, tools: list[Tool], cfg: Config) -> list[Series]:
    k, s, j = cfg.sleep_targets, cfg.sleep_seconds, cfg.sleep_jobs
    print(f"\n## {k} targets of sleep {s:g} at -j{j} (ideal {ideal_sleep(cfg):.2f} s)")
    project = write_sleep_project(root / "sleep", k, s)
    results = bench_from_clean("sleep", project, tools, j, cfg.repeat_full)
    remove(project.root)
    return results


def ideal_sleep(cfg: Config) -> float:
    waves = -(-cfg.sleep_targets // cfg.sleep_jobs)  # ceil
    return waves * cfg.sleep_seconds


def bench_hash(root: Path, flowmake: Tool, cfg: Config) -> list[Series]:
    """Cold ``status`` and cold ``build`` on one big input, and on a 1-byte one as baseline."""
    print(f"\n## hashing throughput, one {cfg.hash_mb} MiB input (cold: no .flowmake)")
    big = write_hash_project(root / "hash-big", cfg.hash_mb)
    tiny = write_hash_project(root / "hash-tiny", 0)
    results: list[Series] = []
    try:
        for name, argv in (("status", flowmake.status()), ("build", flowmake.build(1))):
            for label, project in (("big", big), ("tiny", tiny)):
                results += bench_from_clean_cmd(
                    f"hash-{name}-{label}", project, flowmake, argv, cfg.repeat_full
                )
        results.append(reference_hash(big.root / "big.bin", cfg.repeat_full))
    finally:
        remove(big.root)
        remove(tiny.root)
    return results + bench_hash_files(root, flowmake, cfg)


def bench_hash_files(root: Path, flowmake: Tool, cfg: Config) -> list[Series]:
    """``status`` on a folder input of many small files: cold (no .flowmake: every file
    read), then again (answered from the stat cache: no file read)."""
    n = cfg.hash_files
    print(f"\n## a folder input of {n:,} small files: status cold, then from the stat cache")
    project = write_files_project(root / "hash-files", n)
    old = time.time_ns() - 3600 * 10**9  # past the "racy" window: the stat cache may answer
    for path in (project.root / "data").rglob("*.txt"):
        os.utime(path, ns=(old, old))
    first = Series("hash-files-first", n, "flowmake", flowmake.status())
    second = Series("hash-files-second", n, "flowmake", flowmake.status())
    for _ in range(cfg.repeat_full):
        clean_tree(project, [flowmake])
        for s in (first, second):
            run = run_once(s.argv, project.root, flowmake.env)
            if not run.ok:
                report_failure(s, run)
                return [s]
            s.seconds.append(run.seconds)
    print_series(first)
    print_series(second)
    remove(project.root)
    return [first, second]


def reference_hash(path: Path, repeat: int) -> Series:
    """XXH3-128 over the file in this process (1 MiB reads): the ceiling for flowmake."""
    series = Series("hash-reference", 1, "xxh3_128", ["xxhash.xxh3_128", str(path)])
    try:
        import xxhash  # type: ignore[import-untyped]
    except ImportError:
        series.error = "xxhash is not installed"
        return series
    for _ in range(repeat):
        start = time.perf_counter()
        digest = xxhash.xxh3_128()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        series.seconds.append(time.perf_counter() - start)
    print_series(series)
    return series


def bench_from_clean_cmd(
    bench: str, project: Project, tool: Tool, argv: list[str], repeat: int
) -> list[Series]:
    def before(_tool: Tool) -> None:
        clean_tree(project, [tool])

    return measure(bench, len(project.outputs), {tool: argv}, project.root, repeat, before=before)


def hash_throughput(results: list[Series], mb: int) -> dict[str, float | None]:
    """GiB/s of each cold command: size / (time on the big input - time on the tiny one)."""
    size_gib = mb / 1024
    out: dict[str, float | None] = {}
    for name in ("status", "build"):
        big = find(results, f"hash-{name}-big", 1, "flowmake")
        tiny = find(results, f"hash-{name}-tiny", 1, "flowmake")
        delta = big.median - tiny.median if big and tiny and big.median and tiny.median else 0
        out[f"flowmake {name}"] = size_gib / delta if delta > 0 else None
    ref = find(results, "hash-reference", 1, "xxh3_128")
    out["xxh3_128 in-process, 1 MiB reads"] = size_gib / ref.median if ref and ref.median else None
    return out


def files_summary(results: list[Series]) -> str:
    """The small-files folder: time, files/s and GiB/s, first (cold) and second time."""
    parts = []
    for label in ("first", "second"):
        s = next((r for r in results if r.bench == f"hash-files-{label}"), None)
        if s is None or not s.median:
            continue
        size = 9 * s.size  # gen.py's files hold "file {i}\n": about 9 bytes each
        parts.append(f"{label} {s.median:.3f} s ({s.size / s.median:,.0f} files/s, "
                     f"{size / s.median / 2**30:.4f} GiB/s)")
    return ", ".join(parts)


# --------------------------------------------------------------------------- reporting


def find(results: list[Series], bench: str, size: int, tool: str) -> Series | None:
    return next((s for s in results if (s.bench, s.size, s.tool) == (bench, size, tool)), None)


def fmt_time(s: Series | None) -> str:
    if s is None:
        return "—"
    if s.error or s.median is None or s.min is None:
        return "failed"
    return f"{s.median:.3f} s (min {s.min:.3f})"


def fmt_ratio(a: Series | None, b: Series | None) -> str:
    if not a or not b or not a.median or not b.median:
        return "—"
    return f"{a.median / b.median:.2f}x"


def fmt_rss(s: Series | None) -> str:
    return f"{s.peak_rss_mb:.1f}" if s and s.peak_rss_mb is not None else "—"


def efficiency(s: Series | None, ideal: float) -> float | None:
    return ideal / s.median if s and s.median else None


def markdown_table(results: list[Series], cfg: Config) -> str:
    rows = [
        "| benchmark | N | flowmake | make | ninja | flowmake/make | flowmake/ninja "
        "| peak RSS MB (fm / make / ninja) |",
        "|---|---:|---|---|---|---:|---:|---|",
    ]
    keys = dict.fromkeys(
        (s.bench, s.size) for s in results if s.bench in ("noop", "status", "full", "sleep")
    )
    if not keys:
        return "(no make/ninja comparison was run)"
    for bench, size in keys:
        fm, mk, nj = (find(results, bench, size, t) for t in TOOLS)
        rows.append(
            f"| {bench} | {size} | {fmt_time(fm)} | {fmt_time(mk)} | {fmt_time(nj)} "
            f"| {fmt_ratio(fm, mk)} | {fmt_ratio(fm, nj)} "
            f"| {fmt_rss(fm)} / {fmt_rss(mk)} / {fmt_rss(nj)} |"
        )
    ideal = ideal_sleep(cfg)
    effs = [
        f"{t} {e:.3f}"
        for t in TOOLS
        if (e := efficiency(find(results, "sleep", cfg.sleep_targets, t), ideal)) is not None
    ]
    if effs:
        rows.append(f"\nParallel efficiency (ideal {ideal:.2f} s / median): " + ", ".join(effs))
    nocache = [
        f"{bench} {fmt_time(nc)} (flowmake/no-cache {fmt_ratio(find(results, bench, size, 'flowmake'), nc)},"
        f" no-cache/ninja {fmt_ratio(nc, find(results, bench, size, 'ninja'))})"
        for bench, size in keys
        if (nc := find(results, bench, size, NO_CACHE)) is not None
    ]
    if nocache:
        rows.append("\nflowmake --no-cache, same run: " + ", ".join(nocache))
    floors = [
        f"{bench} {fmt_time(fl)}" + (f" (efficiency {ideal / fl.median:.3f})"
                                     if bench == "sleep" and fl.median else "")
        for bench, size in keys
        if (fl := find(results, bench, size, FLOOR)) is not None
    ]
    if floors:
        rows.append("\nPython floor (benchmarks/floor.py: Python's start and subprocess, no"
                    " build logic), same interpreter as flowmake: " + ", ".join(floors))
    return "\n".join(rows)


def evaluate_bars(results: list[Series], cfg: Config) -> list[dict[str, object]]:
    """The project's targets (README): value, limit and whether flowmake meets them."""
    n_big = max(cfg.noop_sizes)
    fm_noop = find(results, "noop", n_big, "flowmake")
    mk_noop = find(results, "noop", n_big, "make")
    fm_full = find(results, "full", cfg.full_size, "flowmake")
    nj_full = find(results, "full", cfg.full_size, "ninja")
    fm_sleep = find(results, "sleep", cfg.sleep_targets, "flowmake")
    checks: list[tuple[str, float | None, str, float]] = [
        (f"no-op build N={n_big}: flowmake / make", ratio(fm_noop, mk_noop), "<=", 2.0),
        (
            f"no-op build N={n_big}: flowmake peak RSS (MB)",
            fm_noop.peak_rss_mb if fm_noop else None,
            "<",
            64.0,
        ),
        (f"full build N={cfg.full_size}: flowmake / ninja", ratio(fm_full, nj_full), "<=", 1.5),
        ("parallel efficiency (flowmake)", efficiency(fm_sleep, ideal_sleep(cfg)), ">=", 0.97),
    ]
    return [
        {"bar": name, "value": value, "op": op, "limit": limit, "met": meets(value, op, limit)}
        for name, value, op, limit in checks
    ]


def ratio(a: Series | None, b: Series | None) -> float | None:
    return a.median / b.median if a and b and a.median and b.median else None


def meets(value: float | None, op: str, limit: float) -> bool | None:
    if value is None:
        return None
    return {"<=": value <= limit, "<": value < limit, ">=": value >= limit}[op]


def markdown_bars(bars: list[dict[str, object]]) -> str:
    rows = ["| bar | value | target | met |", "|---|---:|---|---|"]
    for b in bars:
        value = b["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else "—"
        met = {True: "yes", False: "**no**", None: "—"}[b["met"]]  # type: ignore[index]
        rows.append(f"| {b['bar']} | {shown} | {b['op']} {b['limit']} | {met} |")
    return "\n".join(rows)


# --------------------------------------------------------------------------- tools


def find_ninja(explicit: str | None) -> tuple[str, ...]:
    """The pip package's real binary first: its console script may sit behind a slow shim."""
    if explicit:
        return tuple(shlex.split(explicit))
    try:
        import ninja  # type: ignore[import-untyped]

        binary = Path(ninja.BIN_DIR) / "ninja"
        if binary.is_file():
            return (str(binary),)
    except ImportError:
        pass
    return (shutil.which("ninja") or "/usr/bin/ninja",)


def find_flowmake(args: argparse.Namespace) -> tuple[tuple[str, ...], dict[str, str] | None]:
    """``--flowmake``; else with ``--install here`` the script beside this Python (else on
    PATH, else ``python -m``); else (the default) a release install in a venv."""
    if args.flowmake:
        command = tuple(shlex.split(args.flowmake))
        # An installed flowmake (a venv's bin/flowmake) runs its own code; only a bare
        # `python -m flowmake` is pointed at this working tree.
        return command, repo_pythonpath() if "-m" in command else None
    if args.install == "release":
        return (release_install(),), None
    _compile_flowmake()
    beside = Path(sys.executable).parent / "flowmake"
    if beside.is_file():
        return (str(beside),), None
    if found := shutil.which("flowmake"):
        return (found,), None
    return (sys.executable, "-m", "flowmake"), repo_pythonpath()


def release_install() -> str:
    """flowmake as a user installs it (``pip install flowmake``, no plugins): a wheel of
    this working tree in a venv of its own (``benchmarks/.venv``, made once). Not the
    development environment, whose editable-install finders and any ``.pth`` start-up
    hooks of this machine's site-packages run at every interpreter start and are not
    flowmake's (``--install here`` measures that one)."""
    python = VENV / "bin" / "python"
    quiet = ["--quiet", "--disable-pip-version-check"]
    if not python.exists():
        print(f"- making {VENV} (once): a venv with flowmake's dependencies")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", *quiet, str(REPO_ROOT)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", *quiet, "--no-deps",
                    "--force-reinstall", str(REPO_ROOT)], check=True)  # this working tree
    return str(VENV / "bin" / "flowmake")


def flowmake_python(exe: tuple[str, ...]) -> str | None:
    """The interpreter behind a flowmake command (a script's ``#!`` line, or ``python -m``)."""
    if len(exe) > 1 and exe[1] == "-m":
        return exe[0]
    try:
        first = Path(exe[0]).read_text(errors="replace").splitlines()[0]
    except (OSError, IndexError):
        return None
    return first[2:].strip() if first.startswith("#!") else sys.executable


def no_cache_tool(flowmake: Tool) -> list[Tool]:
    """flowmake with ``--no-cache``: what the artifact cache costs a full build."""
    build_args = (*flowmake.build_args[:-1], "--no-cache", flowmake.build_args[-1])
    return [Tool(NO_CACHE, flowmake.exe, build_args, flowmake.status_args, flowmake.env)]


def floor_tool(flowmake: Tool) -> list[Tool]:
    """benchmarks/floor.py under flowmake's interpreter: what any Python tool pays."""
    python = flowmake_python(flowmake.exe)
    if python is None:
        return []
    return [Tool(FLOOR, (python, str(BENCH_DIR / "floor.py")), ("-j", "{jobs}"), ())]


def interpreter_start(exe: tuple[str, ...]) -> float | None:
    """Median wall time of ``python -c pass`` for the interpreter behind a flowmake script:
    the part of every flowmake figure that is Python's, not flowmake's."""
    python = flowmake_python(exe)
    if python is None:
        return None
    times = []
    for _ in range(15):
        start = time.perf_counter()
        if subprocess.run([python, "-c", "pass"], check=False).returncode != 0:
            return None
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def repo_pythonpath() -> dict[str, str]:
    """Lets ``python -m flowmake`` import the working tree when it is not installed."""
    parts = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(parts)}


def make_tools(args: argparse.Namespace) -> list[Tool]:
    fm_exe, fm_env = find_flowmake(args)
    return [
        Tool("flowmake", fm_exe, ("-q", "build", "-j{jobs}"), ("status",), fm_env),
        Tool("make", (args.make,), ("-j{jobs}", "-s", "all"), ("-q", "all")),
        Tool("ninja", find_ninja(args.ninja), ("-j{jobs}",), ("-n",)),
    ]


def tool_versions(tools: list[Tool]) -> dict[str, str]:
    """First line of ``--version`` per tool, or why it could not be run."""
    return {tool.name: tool_version(tool) for tool in tools}


def tool_version(tool: Tool) -> str:
    env = {**os.environ, **tool.env} if tool.env else None
    try:
        proc = subprocess.run(
            [*tool.exe, "--version"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable: {exc}"
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return f"unavailable: {proc.stderr.strip()[-300:]}"
    return lines[0]


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="flowmake vs make vs ninja benchmarks")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--hash", action="store_true", help="also measure hashing throughput")
    p.add_argument("--dir", type=Path, help="where to generate projects (default: a temp dir)")
    p.add_argument("--flowmake", help='flowmake command, e.g. "python -m flowmake"')
    p.add_argument("--install", choices=["release", "here"], default="release",
                   help="release (default): a wheel of this tree in benchmarks/.venv, as users"
                        " install it; here: the flowmake installed beside this Python")
    p.add_argument("--ninja", help="ninja command (default: the pip package's binary)")
    p.add_argument("--make", default="make", help="make command (default: make)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=["noop", "full", "sleep", "hash", "scale"],
        help="run only these benchmarks (noop includes status)",
    )
    p.add_argument("--json", type=Path, default=BENCH_DIR / "results.json", help="results file")
    return p.parse_args(argv)


def run_all(root: Path, tools: list[Tool], cfg: Config, args: argparse.Namespace) -> list[Series]:
    selected = set(args.only or ["noop", "full", "sleep"])
    if args.hash:
        selected.add("hash")
    results: list[Series] = []
    if "noop" in selected:
        results += bench_noop(root, tools, cfg)
    floor = floor_tool(tools[0])
    if "full" in selected:  # with the artifact cache (the default) and without it
        results += bench_full(root, tools + no_cache_tool(tools[0]) + floor, cfg)
    if "sleep" in selected:
        results += bench_sleep(root, tools + floor, cfg)
    if "hash" in selected:
        results += bench_hash(root, tools[0], cfg)
    if "scale" in selected:
        from scale import bench_scale

        results += bench_scale(root, tools[0], cfg.scale_sizes, cfg.jobs)
    return results


def _compile_flowmake() -> None:
    """Byte-compile flowmake as ``pip install`` of a wheel would. An editable install under
    PYTHONDONTWRITEBYTECODE (set on some machines) would otherwise recompile every module
    from source on every run, and that is not flowmake's speed."""
    import compileall

    import flowmake

    env_flag = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        compileall.compile_dir(Path(flowmake.__file__).parent, quiet=1)
    finally:
        if env_flag is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = env_flag


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = QUICK if args.quick else FULL
    tools = make_tools(args)
    versions = tool_versions(tools)
    print("# flowmake benchmarks" + (" (quick)" if args.quick else ""))
    for tool in tools:
        print(f"- {tool.name}: {shlex.join(tool.exe)} — {versions[tool.name]}")
    started = interpreter_start(tools[0].exe)
    if started is not None:
        print(f"- flowmake's Python starts (`python -c pass`) in {started * 1000:.0f} ms")
    owned = args.dir is None
    root = Path(tempfile.mkdtemp(prefix="flowmake-bench-")) if owned else args.dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"- projects in {root}; {os.cpu_count()} CPUs")
    try:
        results = run_all(root, tools, cfg, args)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)
    bars = evaluate_bars(results, cfg)
    hashed = args.hash or "hash" in (args.only or [])
    throughput = hash_throughput(results, cfg.hash_mb) if hashed else {}
    print("\n## results (median of repeats; ratios of medians)\n")
    print(markdown_table(results, cfg))
    if throughput:
        shown = ", ".join(
            f"{k}: " + (f"{v:.2f} GiB/s" if v else "n/a (big input not slower than tiny)")
            for k, v in throughput.items()
        )
        print(f"\nHashing throughput ({cfg.hash_mb} MiB input, cold): {shown}")
        print(f"Folder of {cfg.hash_files:,} small files, status: {files_summary(results)}")
    print("\n## bars\n")
    print(markdown_bars(bars))
    write_json(args.json, cfg, args, tools, versions, results, bars, throughput, started)
    print(f"\nwrote {args.json}")
    return 0


def write_json(
    path: Path,
    cfg: Config,
    args: argparse.Namespace,
    tools: list[Tool],
    versions: dict[str, str],
    results: list[Series],
    bars: list[dict[str, object]],
    throughput: dict[str, float | None],
    started: float | None,
) -> None:
    doc = {
        "meta": {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "quick": args.quick,
            "config": asdict(cfg),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "rss_method": "/usr/bin/time -f %M" if TIME else "os.wait4 (includes harness RSS)",
            "tools": {t.name: {"argv": list(t.exe), "version": versions[t.name]} for t in tools},
            "flowmake_install": "command" if args.flowmake else args.install,
            "flowmake_python_start_s": started,
        },
        "results": [s.to_json() for s in results],
        "parallel_efficiency": {
            t: efficiency(find(results, "sleep", cfg.sleep_targets, t), ideal_sleep(cfg))
            for t in (*TOOLS, FLOOR)
        },
        "hash_gib_per_s": throughput,
        "bars": bars,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
