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

Prints a markdown table. The machine is shared: take the median, and compare runs made
side by side. (After the notebook target kind is wired in, the same comparison through
``flowmake build``, a notebook target against a python target, belongs here too.)
"""

from __future__ import annotations

import argparse
import json
import statistics
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


if __name__ == "__main__":
    main()
