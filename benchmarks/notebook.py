"""The overhead of a notebook over the same code as a plain Python function call.

In-process, on a trivial notebook (a ``parameters`` cell, a cell of work, a function):

* ``plain call``: ``work(n)`` called directly: the floor.
* ``call_function``: flowmake-notebook's function mode: read the notebook, run its code
  cells as a module, call ``work``.
* ``code_digest``: the notebook's code key (read the JSON, hash the code cells).
* ``run_notebook``: a fresh ipykernel ``python3`` kernel, the params cell injected, every
  cell run, the kernel shut down; with ``executed=`` also the executed copy written. An
  empty notebook gives the cost of the kernel alone (start, ``kernel_info``, shutdown).

    python benchmarks/notebook.py [--repeat 5] [--calls 200]

Then end to end, through ``flowmake build -B`` (every target rebuilt; each run a fresh
``python -m flowmake`` process, so the worker and the kernel start each time), one
target per project doing the same work and writing the same JSON output:

* a ``python`` target (``work:run``): the floor;
* a ``notebook`` target with ``function = "run"`` (the code cells run as a module in
  the python worker);
* a ``notebook`` target run in a kernel (the params injected, the output written by the
  notebook, the executed copy kept under .flowmake/executed/).

and the no-op ``flowmake build`` of each (the fast path: the kind costs nothing there).

Prints markdown tables. The machine is shared: take the median, and compare runs made
side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flowmake_notebook as fn

WORK = "def work(n):\n    return sum(i * i for i in range(n))"


def cell(source: str, *tags: str) -> dict[str, Any]:
    return {"cell_type": "code", "execution_count": None, "outputs": [], "source": source,
            "metadata": {"tags": list(tags)} if tags else {}}


def write_notebooks(folder: Path) -> tuple[Path, Path]:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    trivial = {"nbformat": 4, "nbformat_minor": 4, "metadata": meta, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Trivial"},
        cell("n = 10", "parameters"), cell(WORK), cell("total = work(n)")]}
    empty = {**trivial, "cells": []}
    (folder / "trivial.ipynb").write_text(json.dumps(trivial))
    (folder / "empty.ipynb").write_text(json.dumps(empty))
    return folder / "trivial.ipynb", folder / "empty.ipynb"


def timed(fn_: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn_()
        times.append(time.perf_counter() - start)
    return times


def plain_work() -> Callable[[int], int]:
    scope: dict[str, Any] = {}
    exec(WORK, scope)
    return scope["work"]  # type: ignore[no-any-return]


def measure(folder: Path, repeat: int, calls: int) -> list[tuple[str, list[float]]]:
    trivial, empty = write_notebooks(folder)
    work = plain_work()
    rows = [("plain call `work(10)`", timed(lambda: work(10), calls)),
            ("`call_function(nb, 'work', {'n': 10})`",
             timed(lambda: fn.call_function(trivial, "work", {"n": 10}), calls)),
            ("`code_digest(nb)`", timed(lambda: fn.code_digest(trivial), calls))]
    fn.run_notebook(empty, {}, cwd=folder)  # warm the imports (nbclient, zmq, ...)
    rows.append(("`run_notebook` of an empty notebook (the kernel alone)",
                 timed(lambda: fn.run_notebook(empty, {}, cwd=folder), repeat)))
    rows.append(("`run_notebook(nb, {'n': 10})`",
                 timed(lambda: fn.run_notebook(trivial, {"n": 10}, cwd=folder), repeat)))
    rows.append(("... with `executed=` (the copy written)",
                 timed(lambda: fn.run_notebook(trivial, {"n": 10}, cwd=folder,
                                               executed=folder / "out.ipynb"), repeat)))
    return rows


RUN = "def run(n):\n    return {'total': sum(i * i for i in range(n))}"
NB_WRITE = ("import json\nwith open('out/result.json', 'w') as f:\n"
            "    json.dump({'total': sum(i * i for i in range(n))}, f)")
TARGETS = {
    "python target": ('python = "work:run"', {"work.py": RUN + "\n"}),
    "notebook target, `function = \"run\"`": (
        'notebook = "nb.ipynb"\nfunction = "run"', {"nb.ipynb": [cell(RUN)]}),
    "notebook target, run in a kernel": (
        'notebook = "nb.ipynb"', {"nb.ipynb": [cell("n = 1", "parameters"),
                                               cell("import os\nos.makedirs('out', exist_ok=True)"),
                                               cell(NB_WRITE)]}),
}


def write_project(folder: Path, action: str, files: dict[str, Any]) -> None:
    folder.mkdir(parents=True)
    (folder / "flow.toml").write_text(
        f"[flow]\ncache = false\n\n[targets.t]\n{action}\nparams = {{ n = 1000 }}\n"
        'outputs = ["out/result.json"]\n')
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    for rel, content in files.items():
        text = content if isinstance(content, str) else json.dumps(
            {"nbformat": 4, "nbformat_minor": 4, "metadata": meta, "cells": content})
        (folder / rel).write_text(text)


def flowmake(folder: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flowmake", "-C", str(folder), *args], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def end_to_end(folder: Path, repeat: int) -> list[tuple[str, list[float], list[float]]]:
    """(name, `build -B` times, no-op build times) of each kind of target."""
    rows = []
    for index, (name, (action, files)) in enumerate(TARGETS.items()):
        project = folder / f"p{index}"
        write_project(project, action, files)
        flowmake(project, "build")  # warm: the first build, the compiled flow, the caches
        built = [flowmake(project, "build", "-B") for _ in range(repeat)]
        for path in project.rglob("*"):  # age the files: the fast path trusts no racy mtime
            if ".flowmake" not in path.parts:
                os.utime(path, (time.time() - 10, time.time() - 10))
        flowmake(project, "build")
        noop = [flowmake(project, "build") for _ in range(repeat)]
        rows.append((name, built, noop))
    return rows


def show(seconds: float) -> str:
    if seconds >= 0.1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.2f} ms" if seconds >= 1e-4 else f"{seconds * 1e6:.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="kernel runs per measure")
    parser.add_argument("--calls", type=int, default=200, help="in-process calls per measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flowmake-nb-bench-") as tmp:
        rows = measure(Path(tmp), args.repeat, args.calls)
        floor = statistics.median(rows[0][1])
        print("| measure | median | min | over the plain call |\n|---|---|---|---|")
        for name, times in rows:
            median = statistics.median(times)
            print(f"| {name} | {show(median)} | {show(min(times))} | +{show(median - floor)} |")
        e2e = end_to_end(Path(tmp) / "e2e", args.repeat)
    base = statistics.median(e2e[0][1])
    print("\n| `flowmake build` of one target | `build -B` median | over the python target"
          " | no-op build median |\n|---|---|---|---|")
    for name, built, noop in e2e:
        median = statistics.median(built)
        print(f"| {name} | {show(median)} | +{show(median - base)} |"
              f" {show(statistics.median(noop))} |")


if __name__ == "__main__":
    main()
