"""Cost of function-level code keys (codefp.py) on a generated project of many modules.

Writes ``--modules`` modules (default 200) in a package, each with ``--functions``
functions, a class and module-level values; each module imports a few others
(``from pkg import m7``, ``from pkg.m3 import f2``) and its functions call into them, so
closures cross modules. One python target per function. Times, in this process:

* cold: no module analysed yet, an empty stat cache (every file hashed, parsed, analysed),
  then every target's code key (what the first command after an edit of every file pays);
* warm: a new fingerprinter and hasher over the same files with the stat cache of the cold
  run (what a later command in the same process pays: the analyses are kept per content
  digest), every target's key again;
* new process: ``flowmake status`` in a subprocess on the built project, no-op fast path
  disabled (what a command after an edit elsewhere pays: each file analysed once), against
  the same project whose targets carry ``version`` (no code keys at all).

    python benchmarks/codefp.py [--shape layered|dense] [--modules 200] [--functions 10]

Prints a markdown table (medians). The machine is shared: compare runs made side by side.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowmake.model import Call, Target
from flowmake.plan import codefp as codefp
from flowmake.plan.fingerprint import Hasher


def module_source(i: int, n: int, functions: int, shape: str, rng: random.Random) -> str:
    """Module ``m{i}``: imports three others, its functions call into them.

    ``layered``: a module imports lower-numbered ones only and a function calls one
    function elsewhere every third time (a pipeline over shared helpers). ``dense``: any
    module imports any other and every function calls into another module and the
    previous function: nearly every key reaches nearly every function.
    """
    pool = list(range(i)) if shape == "layered" else [m for m in range(n) if m != i]
    others = rng.sample(pool, k=min(3, len(pool)))
    lines = ['"""Generated module."""', "import json", "import math", ""]
    if len(others) == 3:
        lines += [f"from pkg import m{others[0]}",
                  f"from pkg.m{others[1]} import f0 as g{others[1]}", f"import pkg.m{others[2]}"]
    lines += ["", f"SCALE = {i}", "NAMES = ['a', 'b']", ""]
    for f in range(functions):
        call = "0"
        if len(others) == 3 and (shape == "dense" or f % 3 == 0):
            call = [f"m{others[0]}.f{rng.randrange(functions)}()", f"g{others[1]}()",
                    f"pkg.m{others[2]}.f{f}()"][rng.randrange(3)]
        local = f" + f{f - 1}()" if f and shape == "dense" else ""
        lines += ["", f"def f{f}(x=1):", f'    """Function {f}."""',
                  f"    return math.sqrt(SCALE) + json.dumps(NAMES).count('a'){local} + 0 * "
                  f"({call} if x < 0 else 0)", ""]
    lines += ["", "class Model:", "    def fit(self):", "        return f0()", ""]
    return "\n".join(lines)


def write_project(root: Path, n: int, functions: int, shape: str,
                  version: bool = False) -> list[Target]:
    rng = random.Random(7)
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg/__init__.py").write_text("")
    targets, flow = [], ["[flow]", "cache = false", "lock = false", ""]
    for i in range(n):
        (root / f"pkg/m{i}.py").write_text(module_source(i, n, functions, shape, rng))
        for f in range(functions):
            targets.append(Target(name=f"m{i}.f{f}", action=Call(f"pkg.m{i}:f{f}")))
            flow += [f'[targets."m{i}.f{f}"]', f'python = "pkg.m{i}:f{f}"',
                     f'outputs = ["out/m{i}_f{f}.json"]']
            flow += ['version = "1"'] if version else []
            flow.append("")
    (root / "flow.toml").write_text("\n".join(flow))
    return targets


def keys(root: Path, targets: list[Target], hasher: Hasher) -> float:
    start = time.perf_counter()
    fp = codefp.CodeFingerprint(str(root), hasher)
    for target in targets:
        fp.parts(target)
    return time.perf_counter() - start


def in_process(root: Path, targets: list[Target], repeat: int) -> tuple[list[float], list[float]]:
    cold, warm = [], []
    for _ in range(repeat):
        codefp._PARSED.clear()
        hasher = Hasher(str(root))
        cold.append(keys(root, targets, hasher))
        warm.append(keys(root, targets, Hasher(str(root), hasher.cache)))
    return cold, warm


def status_time(root: Path, repeat: int) -> float:
    command = [sys.executable, "-m", "flowmake", "-C", str(root), "status", "-q"]
    env = {**os.environ, "NO_COLOR": "1"}
    subprocess.run(command, env=env, capture_output=True, check=False)  # stat cache filled
    times = []
    for _ in range(repeat):
        (root / ".flowmake/noop.marshal").unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=200)
    parser.add_argument("--functions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--shape", choices=["layered", "dense"], default="layered")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fm-codefp-"))
    try:
        root = base / "proj"
        targets = write_project(root, args.modules, args.functions, args.shape)
        cold, warm = in_process(root, targets, args.repeat)
        fp = codefp.CodeFingerprint(str(root))
        sizes = sorted(len(fp.parts(t)) for t in targets)
        with_code = status_time(root, args.repeat)
        plain = base / "versioned"
        write_project(plain, args.modules, args.functions, args.shape, version=True)
        without = status_time(plain, args.repeat)
        ms = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731
        print(f"{args.shape}: {args.modules} modules, {len(targets)} python targets; code"
              f" parts per key: median {statistics.median(sizes):g}, max {sizes[-1]}\n")
        print("| measurement | median |\n|---|---|")
        print(f"| cold: analyse every module + all keys (in process) | {ms(statistics.median(cold))} |")
        print(f"| warm: all keys again, analyses kept (in process) | {ms(statistics.median(warm))} |")
        print(f"| `flowmake status`, code keys | {ms(with_code)} |")
        print(f"| `flowmake status`, `version` on every target (no code keys) | {ms(without)} |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
