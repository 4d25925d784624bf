"""Fuzz flow.toml: mutated files never crash flowmake, never hang it, and exit 0, 1 or 2.

A few valid flow.toml files (a chain, a matrix, python targets with params and table
inputs, resources and deps) are mutated at random with a seeded generator: lines deleted,
duplicated or swapped, values replaced with odd ones (nan, inf, -1, 1e308, huge integers,
empty or non-ASCII strings, NUL bytes, deep arrays, wrong types), unknown keys added, bytes
flipped. Each mutant is given to ``build -n``, ``status --json`` and ``list``.

Most cases call ``flowmake.cli.main`` in this process (stdout encoded strictly as UTF-8,
like a real one; stderr with backslashreplace, as Python does), under a SIGALRM deadline;
a sample runs the real command in a subprocess. Nothing here runs a target's command:
``build -n`` only plans.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowmake.cli import main as cli

TIMEOUT = 10.0
COMMANDS = (["build", "-n"], ["status", "--json"], ["list"])

SEEDS = [
    """
    [flow]
    default = ["report"]
    jobs = 2
    history = 20

    [params]
    top = 3
    name = "run"

    [targets.raw]
    help = "generate the raw data"
    cmd = "sh scripts/gen.sh > ${outputs}"
    inputs = ["scripts/gen.sh"]
    outputs = ["data/raw.txt"]

    [targets.report]
    cmd = "head -n ${params.top} ${inputs} > ${outputs}"
    inputs = ["data/raw.txt"]
    outputs = ["out/report-${params.name}.txt"]
    timeout = 60
    retries = 1
    """,
    """
    [params]
    scale = 2

    [targets.sweep]
    matrix = { lr = [0.1, 0.01], depth = [3, 5] }
    cmd = "echo ${lr} ${depth} ${params.scale} > ${outputs}"
    inputs = ["scripts/gen.sh"]
    outputs = ["models/fit-${lr}-${depth}.txt"]

    [targets.best]
    cmd = "cat models/*.txt > ${outputs}"
    inputs = ["models/*.txt"]
    outputs = ["out/best.txt"]
    deps = ["sweep"]
    """,
    """
    [flow]
    cache = false

    [params]
    threshold = 0.5
    seed = 7

    [targets.clean]
    python = "steps:clean"
    inputs = { table = "data/in.json" }
    params = { threshold = "${params.threshold}", seed = "${params.seed}", tags = ["a", "b"] }
    outputs = ["out/clean.json"]
    version = "1"

    [targets.split]
    python = "steps:split"
    inputs = { rows = "out/clean.json" }
    outputs = { train = "out/train.json", test = "out/test.json" }
    env = ["HOME"]
    """,
    """
    [flow]
    jobs = 4

    [flow.resources]
    cpu = 2
    mem_gb = 8

    [targets.a]
    cmd = "echo a > ${outputs}"
    outputs = ["a.txt"]
    resources = { cpu = 1, mem_gb = 4 }

    [targets.b]
    cmd = "echo b"
    deps = ["a"]
    always = true
    cwd = "src"
    resources = { cpu = 2 }

    [targets.c]
    cmd = "cat ${inputs} > ${outputs}"
    inputs = ["a.txt", "src"]
    outputs = ["c.txt"]
    cache = false
    """,
]

FILES = {
    "scripts/gen.sh": "echo 1\necho 2\n",
    "data/in.json": "[1, 2, 3]\n",
    "steps.py": "def clean(table, threshold, seed, tags):\n    return table\n\n"
                "def split(rows):\n    return {'train': rows, 'test': rows}\n",
    "src/x.py": "x = 1\n",
}

ODD_VALUES = [
    "nan", "-nan", "inf", "-inf", "+inf", "-1", "0", "-0.0", "1e308", "-1e308", "1e-320",
    str(10**18), str(2**63), "-" + str(2**63), "99999999999999999999999999",
    '""', "''", '"é ü 漢 🙂"', '"\\u0000"', '"a\\u0000b"', '"\\t\\n"', '"$"', '"${}"',
    '"${params.nope}"', '"${inputs.none}"', '"$${x}"', '"../escape"', '"/etc/passwd"',
    '".flowmake/state.db"', '"flow.toml"', '"."', '"out/*"', '"memory://bucket/x"',
    '"nope://x"', "true", "false", "[]", "{}", "[[]]", '["a", 1]', "[1, 2.5, true]",
    "[" * 40 + "]" * 40, "{ a = { b = { c = 1 } } }", "1979-05-27T07:32:00Z", "07:32:00",
    '["x"]', '["a", "a"]', '"' + "x" * 5000 + '"', "[" + ", ".join(map(str, range(300))) + "]",
    '{ cpu = nan }', '{ cpu = -1 }', '{ cpu = 1e308 }', '{ x = "y" }', '["../evil"]',
]

_BIG = "[" + ", ".join(map(str, range(1000))) + "]"  # 1,000 x 1,000 took > 30 s to expand
EXTRA_LINES = [
    'deps = ["raw"]', 'deps = ["report"]', 'deps = ["a", "b", "c"]', 'bogus = 1',
    "[targets.extra]", 'cmd = "true"', 'python = "steps:clean"', "[flow]", "[params]",
    "[flow.resources]", 'matrix = { k = [1, 2, 3] }', 'outputs = ["a.txt"]',
    'inputs = ["out/best.txt"]', "timeout = nan", "retries = 1000000000000000000",
    "jobs = 0", "history = -5", 'plugins = ["no.such.module"]', "[targets]", "[[targets.x]]",
    "x = ", "= 1", '"unterminated', "[targets.raw.params]", "a.b.c = 1",
    'inputs = ["a\\u0000b"]', 'outputs = ["flow.toml"]', 'cwd = "../.."',
    'resources = { cpu = nan }', 'plugins = ["../evil"]', 'env = ["A=B", ""]',
    "matrix = { k = " + _BIG + ", j = " + _BIG + " }",
]

_PATHS = ['["a\\u0000b"]', '["flow.toml"]', '[".flowmake/x"]', '["."]', '["/tmp"]',
          '["../x"]', '["${outputs}"]', "[]", '["a.txt"]', '["data/raw.txt"]', '["é/ü.txt"]',
          '["out/clean.json"]', '["models/*.txt"]', '[""]', '["x\\u00ff"]', '["src"]',
          '{ table = "data/raw.txt" }', '{ rows = "a\\u0000" }', '["memory://b/x"]']
# Values of the right type (mostly) but out of range, per key: these get past the parser.
TYPED = {
    "timeout": ["nan", "inf", "-inf", "1e308", "0", "-1", "1e-320", str(10**18), "1000001", "1000000",
                "0.001"],
    "retries": [str(10**18), "-1", str(2**63), "101", "0", "100"],
    "jobs": ["0", str(10**9), str(2**63 - 1), "-1", "1024", "1025"],
    "history": [str(10**18), str(2**63), "0", "1000000", "1000001"],
    "cpu": ["nan", "inf", "-0.0", "1e308", str(10**30), "-1", "0"],
    "mem_gb": ["nan", "-inf", "1e12", "1e13", "0.5"],
    "resources": ["{ cpu = nan }", "{ cpu = inf }", "{ gpu = -1 }", "{ cpu = 1e308 }", "{}"],
    "outputs": _PATHS, "inputs": _PATHS,
    "deps": ['["raw"]', '["report"]', '["a", "b", "c"]', '["sweep"]', '["best"]', '["nope"]',
             '["clean", "split"]', '["b"]', '["c"]'],
    "matrix": ["{ k = " + _BIG + ", j = " + _BIG + " }", "{ a = [[1], [2]] }",
               "{ a = [{ x = 1 }] }", "{ a = [1, 1] }", "{ a = [] }", "{ inputs = [1] }",
               "{ lr = [nan, inf], depth = [3] }", "{ lr = [0.1], depth = ['a,b=c]'] }",
               "{ a = " + "[" * 30 + "1" + "]" * 30 + " }"],
    "cmd": ['""', '"\\u0000"', '"' + "x" * 200_000 + '"', '"${params.nope}"', '"$$"',
            '"echo ${inputs.table}"', '"echo ${outputs.train}"', '"${lr}"'],
    "python": ['"steps:nope"', '"nope:x"', '"steps"', '"../x:y"', '"a.b:c"', '"steps:split"'],
    "env": ['["A=B"]', '[""]', '["\\u0000"]', '["HOME", "HOME"]', '["é"]'],
    "cwd": ['"../.."', '"/"', '"nonexistent"', '"scripts/gen.sh"', '"a\\u0000"', '"."'],
    "plugins": ['["../evil"]', '["/abs/evil"]', '["no.such.module"]', '["a b"]', '[""]'],
    "default": ['["nope"]', '["sweep[lr=0.1,depth=3]"]', '["*"]', '[""]', '["a\\u0000"]'],
    "cache": ['""', '"/"', '"."', '"flow.toml"', "false", "true", '"src"'],
    "remote": ['""', '"nope://x"', '"/nonexistent/remote"', '"memory://x"'],
    "executor": ['""', '"nope"'],
    "version": ["nan", "inf", '""', "1e308"],
    "top": ["nan", "inf", '"' + "y" * 100_000 + '"', "[" * 60 + "]" * 60, str(10**30)],
    "name": ['"a\\u0000b"', '"../../x"', '"*"', '"é"', "[1, 2]", "{ a = 1 }"],
    "threshold": ["nan", "inf", "{ a = 1 }"],
    "scale": ["nan", '"${params.scale}"', '"$${x}"'],
}


def mutate(text: str, rng: random.Random) -> bytes:
    """One to three random edits of ``text``; the result may not be valid UTF-8."""
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines)) if lines else 0
        kind = rng.choice(["delete", "duplicate", "swap", "value", "value", "value", "value",
                           "value", "insert", "insert", "flip"])
        if kind == "delete" and lines:
            del lines[i]
        elif kind == "duplicate" and lines:
            lines.insert(rng.randrange(len(lines) + 1), lines[i])
        elif kind == "swap" and len(lines) > 1:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "value" and lines:
            keyed = [n for n, line in enumerate(lines) if "=" in line]
            if keyed:
                n = rng.choice(keyed)
                lines[n] = _replace_value(lines[n], rng)
        elif kind == "insert":
            _insert(lines, i, rng.choice(EXTRA_LINES))
        elif kind == "flip":
            return _flip("\n".join(lines) + "\n", rng)
    return ("\n".join(lines) + "\n").encode()


def _insert(lines: list[str], i: int, new: str) -> None:
    """Insert ``new`` at ``i``; a ``key = value`` line replaces that key in its table (a
    duplicate key would only test the TOML parser)."""
    key = new.partition("=")[0].strip()
    if "=" in new and key:
        start = next((n for n in range(min(i, len(lines) - 1), -1, -1)
                      if lines[n].startswith("[")), 0)
        end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("[")),
                   len(lines))
        for n in range(start, end):
            if lines[n].partition("=")[0].strip() == key:
                lines[n] = new
                return
    lines.insert(i, new)


def _replace_value(line: str, rng: random.Random) -> str:
    """``key = value`` with an odd value: one of its key's own (TYPED) most of the time,
    else any; the whole value, or one inside an inline table."""
    key, _, rest = line.partition("=")
    typed = TYPED.get(key.strip())
    if typed and rng.random() < 0.7:
        return f"{key}= {rng.choice(typed)}"
    if "{" in rest and rng.random() < 0.5:
        inner = [part.partition("=")[0] for part in rest.strip(" {}").split(",") if "=" in part]
        if inner:
            name = rng.choice(inner).strip()
            return f"{key}= {{ {name} = {rng.choice(ODD_VALUES)} }}"
    return f"{key}= {rng.choice(ODD_VALUES)}"


def _flip(text: str, rng: random.Random) -> bytes:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 3)):
        data[rng.randrange(len(data))] = rng.choice([0x00, 0xFF, 0x80, 0x22, 0x5B, 0x7B,
                                                     rng.randrange(256)])
    return bytes(data)


def make_case(root: Path, seed_text: str, rng: random.Random) -> bytes:
    for rel, content in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    flow = mutate(textwrap.dedent(seed_text).lstrip("\n"), rng)
    (root / "flow.toml").write_bytes(flow)
    return flow


class Hang(BaseException):
    """Raised by the SIGALRM handler: a command ran past TIMEOUT."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(root: Path, args: list[str]) -> tuple[int, str]:
    """``flowmake -C root ARGS`` through cli.main: (exit code, stderr; a traceback if any)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    sigterm = signal.getsignal(signal.SIGTERM)
    code: int
    try:
        with deadline(TIMEOUT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(["-C", str(root), *args])
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 2
            out.flush()
            err.flush()
    except Hang as exc:
        return -1, f"HANG: {exc}"
    except BaseException:  # anything else is the crash we look for
        return -2, "Traceback (in process)\n" + traceback.format_exc()
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    return code, err.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]


def run_subprocess(root: Path, args: list[str]) -> tuple[int, str]:
    env = {**os.environ, "NO_COLOR": "1"}
    try:
        result = subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                                capture_output=True, timeout=TIMEOUT, env=env,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return -1, f"HANG: no answer within {TIMEOUT}s"
    return result.returncode, result.stderr.decode("utf-8", "replace")


# The bounds docs/reference.md documents: a flow.toml that breaks one must not load.
MAX_TIMEOUT, MAX_RETRIES, MAX_JOBS, MAX_HISTORY = 1e6, 100, 1024, 1_000_000
MAX_AMOUNT, MAX_INSTANCES = 1e12, 100_000
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


def wrongly_accepted(root: Path) -> list[str]:
    """What a flow.toml that loaded (``list`` exit 0) must not hold: the loader's bounds."""
    from flowmake.cli.workspace import Workspace

    ws = Workspace(root, None, {})
    try:
        project, graph = ws.project, ws.graph
    finally:
        ws.close()
    s = project.settings
    bad = [f"plugin {p!r}" for p in s.plugins if not _MODULE.match(p)]
    bad += [f"flow.{k} = {v!r}" for k, v, top in [("jobs", s.jobs or 1, MAX_JOBS),
                                                   ("history", s.history, MAX_HISTORY)]
            if not 1 <= v <= top]
    amounts = [(f"flow.resources.{k}", v) for k, v in s.resources.items()]
    if len(project.targets) > MAX_INSTANCES:
        bad.append(f"{len(project.targets)} targets")
    for t in project.targets.values():
        amounts += [(f"{t.name}.resources.{k}", v) for k, v in t.resources.items()]
        if t.timeout is not None and not 0 < t.timeout <= MAX_TIMEOUT:
            bad.append(f"{t.name}.timeout = {t.timeout!r}")
        if not 0 <= t.retries <= MAX_RETRIES:
            bad.append(f"{t.name}.retries = {t.retries!r}")
        paths = [i.path for i in t.inputs] + [o.path for o in t.outputs]
        text = [*paths, t.action.text, *t.env]
        bad += [f"{t.name}: NUL in {x!r}" for x in text if "\0" in x]
        bad += [f"{t.name}: output {o.path!r}" for o in t.outputs
                if o.path in ("flow.toml", ".", ".flowmake") or o.path.startswith(".flowmake/")]
        if t.name in graph.upstream[t.name] or t.name in t.deps:
            bad.append(f"{t.name} depends on itself")
        bad += [f"{t.name} reads its own output {o.path!r}" for o in t.outputs
                if o.path in {i.path for i in t.inputs}]
    bad += [f"{k} = {v!r}" for k, v in amounts if not 0 <= v <= MAX_AMOUNT]  # NaN fails too
    return bad


def violations(tmp_path: Path, cases: int, seed: int, subprocess_every: int) -> tuple[
        int, list[str]]:
    """Run ``cases`` mutants; every ``subprocess_every``-th through a real subprocess."""
    rng = random.Random(seed)
    found: list[str] = []
    for case in range(cases):
        root = tmp_path / f"case{case}"
        flow = make_case(root, rng.choice(SEEDS), rng)
        run = run_subprocess if subprocess_every and case % subprocess_every == 0 \
            else run_in_process
        for args in COMMANDS:
            code, stderr = run(root, args)
            if code == 0 and args == ["list"] and (wrong := wrongly_accepted(root)):
                code, stderr = -3, "accepted: " + "; ".join(wrong)
            if code not in (0, 1, 2) or "Traceback" in stderr:
                found.append(f"case {case} ({run.__name__}) {' '.join(args)}: exit {code}\n"
                             f"--- flow.toml ---\n{flow.decode('utf-8', 'backslashreplace')}"
                             f"--- stderr ---\n{stderr[-3000:]}")
    return cases, found


def report(found: list[str]) -> str:
    return f"{len(found)} violation(s); first ones:\n\n" + "\n\n".join(found[:5])


def test_mutated_flow_files_smoke(tmp_path: Path) -> None:
    """A quick sample for every run: 20 mutants, 2 of them through real subprocesses."""
    _, found = violations(tmp_path, cases=20, seed=1, subprocess_every=10)
    assert not found, report(found)


@pytest.mark.slow
def test_mutated_flow_files(tmp_path: Path) -> None:
    """Hundreds of mutants (x3 commands), about one in twelve through a real subprocess."""
    cases, found = violations(tmp_path, cases=400, seed=20240601, subprocess_every=13)
    assert cases == 400
    assert not found, report(found)
