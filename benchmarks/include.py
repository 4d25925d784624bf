"""Load time of a flow split across included files, and of a foreach over many files.

* ``one file``: 10,000 copy targets in flow.toml;
* ``100 includes``: the same targets in 100 files of 100 targets each (``[flow] include =
  ["flows/*.toml"]``);
* ``foreach``: one target with ``foreach = "data/*.txt"`` over 10,000 files.

Each is timed as a cold parse (``config.load`` in this process: read, validate, expand) and
as ``flowmake list`` in a subprocess twice: the first run parses and writes the compiled
flow (``.flowmake/flow.pickle``), the second reads it (its signature checks the included
files' stats and the globbed folders' listing).

    python benchmarks/include.py [-n 10000] [--files 100] [--repeat 3]

Prints a markdown table (medians). The machine is shared: compare runs made side by side.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowmake.config import load as config

TARGET = '[targets.t{i}]\ncmd = "cp ${{inputs}} ${{outputs}}"\ninputs = ["src/in{i}.txt"]\n' \
         'outputs = ["out/out{i}.txt"]\n'


def one_file(root: Path, n: int, files: int) -> None:
    (root / "flow.toml").write_text("\n".join(TARGET.format(i=i) for i in range(n)))
    sources(root, n)


def included(root: Path, n: int, files: int) -> None:
    (root / "flows").mkdir(parents=True)
    (root / "flow.toml").write_text('[flow]\ninclude = ["flows/*.toml"]\n')
    per = n // files
    for f in range(files):
        (root / f"flows/part{f:03}.toml").write_text(
            "\n".join(TARGET.format(i=i) for i in range(f * per, (f + 1) * per)))
    sources(root, n)


def foreach(root: Path, n: int, files: int) -> None:
    (root / "data").mkdir(parents=True)
    for i in range(n):
        (root / f"data/d{i}.txt").write_text("")
    (root / "flow.toml").write_text('[targets.each]\nforeach = "data/*.txt"\n'
                                    'cmd = "cp ${item} ${outputs}"\ninputs = ["${item}"]\n'
                                    'outputs = ["out/${item.stem}.txt"]\n')


def sources(root: Path, n: int) -> None:
    (root / "src").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"src/in{i}.txt").write_text("")


def cold(root: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        project = config.load(root / "flow.toml")
        times.append(time.perf_counter() - start)
    assert project.targets
    return statistics.median(times)


def command(root: Path, repeat: int) -> tuple[float, float]:
    """``flowmake list``: first run (parse + write the compiled flow), later runs (read it)."""
    args = [sys.executable, "-m", "flowmake", "-C", str(root), "list"]
    env = {**os.environ, "NO_COLOR": "1"}
    first, later = [], []
    for _ in range(repeat):
        shutil.rmtree(root / ".flowmake", ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True)
        first.append(time.perf_counter() - start)
    time.sleep(2.1)  # past the racy window: the compiled flow is trusted
    subprocess.run(args, env=env, check=True, capture_output=True)
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True)
        later.append(time.perf_counter() - start)
    return statistics.median(first), statistics.median(later)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fm-include-"))
    rows = []
    try:
        for label, make in (("one file", one_file), (f"{args.files} includes", included),
                            ("foreach", foreach)):
            root = base / label.replace(" ", "-")
            root.mkdir()
            make(root, args.n, args.files)
            time.sleep(2.1)  # files older than the racy window, as in a real project
            first, later = command(root, args.repeat)
            rows.append((label, cold(root, args.repeat), first, later))
        print(f"{args.n:,} targets\n")
        print("| flow | cold parse (in process) | `flowmake list`, parsing | "
              "`flowmake list`, compiled flow |\n|---|---|---|---|")
        for label, parse, first, later in rows:
            print(f"| {label} | {parse:.2f} s | {first:.2f} s | {later:.2f} s |")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
