"""The no-op build imports what it needs and nothing more (the fast path's budget is a
few milliseconds): a pinned list of flowmake's own modules, and none of the heavy
libraries the rest of flowmake uses. A change that adds an import to the no-op path makes
this fail; widen the pin only with a measurement."""

from __future__ import annotations

import os
import subprocess
import sys
import time

# Besides the entry point: the fast path's command half (cli.noop), the snapshot
# (fastpath, and warm: a resident server's decoded copy of it), the state's layout
# (store.paths), the lock (store.mutex) and the run a no-op build records (store.db,
# store.runs, store.sqlite). With -q no summary line is printed: report.live is not
# imported.
NOOP_MODULES = {"flowmake", "flowmake.resident", "flowmake.resident.client",  # the entry
                "flowmake.cli", "flowmake.cli.main", "flowmake.cli.parser",
                "flowmake.errors",
                "flowmake.cli.noop", "flowmake.fastpath", "flowmake.warm", "flowmake.store",
                "flowmake.store.db", "flowmake.store.mutex", "flowmake.store.paths", "flowmake.store.runs",
                "flowmake.store.sqlite"}  # the packages' __init__ are empty
NEVER = {"rich", "pluggy", "fsspec", "xxhash", "json", "tomllib", "tomli_w", "yaml",
         "concurrent", "logging", "dataclasses", "inspect", "ast", "pickle"}


def imported(project) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "flowmake", "-q", "build"],
                            cwd=project.root, capture_output=True, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_subpackage_inits_are_empty():
    from pathlib import Path

    import flowmake

    for init in Path(flowmake.__file__).parent.glob("*/__init__.py"):
        assert init.read_text() == "", init


def test_a_no_op_build_imports_only_the_fast_path(project):
    project.flow("""
        [targets.a]
        cmd = "cp ${inputs} ${outputs}"
        inputs = ["in.txt"]
        outputs = ["out/a.txt"]

        [targets.b]
        cmd = "cp ${inputs} ${outputs}"
        inputs = ["out/a.txt"]
        outputs = ["out/b.txt"]
        """, {"in.txt": "x\n"})
    project.build()
    past = time.time() - 30
    for path in project.root.rglob("*"):
        os.utime(path, (past, past))  # nothing racy: the fast path may be armed
    project.build()  # arms it
    names = imported(project)
    assert {n for n in names if n.split(".")[0] == "flowmake"} == NOOP_MODULES
    assert not {n for n in names if n.split(".")[0] in NEVER}, sorted(names)
