"""The edit-one-file build does work in proportion to its cone, not to the project (issue
17, the in-process half): what it imports and what of ``.flowmake/`` it reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cone import age, write

N = 12  # chains a0 -> b0, a1 -> b1, ...


def flow(n: int = N) -> str:
    blocks = []
    for i in range(n):
        blocks.append(f'[targets.a{i}]\ncmd = "cat ${{inputs}} > ${{outputs}}"\n'
                      f'inputs = ["src/{i}.txt"]\noutputs = ["out/a{i}.txt"]\n')
        blocks.append(f'[targets.b{i}]\ncmd = "cat ${{inputs}} > ${{outputs}}"\n'
                      f'inputs = ["out/a{i}.txt"]\noutputs = ["out/b{i}.txt"]\n')
    return "[flow]\ncache = false\n\n" + "\n".join(blocks)


def run(root: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "NO_COLOR": "1", "FLOWMAKE_TRACE": "cone", **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=root, capture_output=True, text=True,
                          env=full, timeout=60)


def build(root: Path, *pre: str) -> tuple[dict[str, str], str]:
    """The build's statuses by target, and its stderr (``pre``: options to Python)."""
    done = run(root, *pre, "-m", "flowmake", "build", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    return {t["name"]: t["status"] for t in doc["targets"]}, done.stderr


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    for i in range(N):
        write(tmp_path, f"src/{i}.txt", f"{i}\n")
    (tmp_path / "flow.toml").write_text(flow())
    build(tmp_path)
    age(tmp_path)
    statuses, _ = build(tmp_path)  # all fresh: the no-op snapshot is saved
    assert set(statuses.values()) == {"fresh"}
    return tmp_path


def test_a_cone_build_from_the_compiled_flow_imports_no_loader_module(root: Path) -> None:
    write(root, "src/3.txt", "three\n")
    statuses, err = build(root, "-X", "importtime")
    assert {n for n, s in statuses.items() if s == "built"} == {"a3", "b3"}
    assert "cone: 1 changed paths, 2 of 24 targets checked" in err
    names = imported(err)
    loader = {"flowmake.config.load", "flowmake.config.include", "flowmake.config.matrix",
              "flowmake.config.targets", "flowmake.config.settings", "flowmake.config.scope"}
    assert not names & loader, sorted(names & loader)
    # flow.toml edited: parsed again (the loader imported), its change seen
    (root / "flow.toml").write_text(flow().replace("cat ${inputs} > ${outputs}\"\ninputs = "
                                                   "[\"out/a5", "cat ${inputs} ${inputs} >"
                                                   " ${outputs}\"\ninputs = [\"out/a5", 1))
    statuses, err = build(root, "-X", "importtime")
    assert {n for n, s in statuses.items() if s == "built"} == {"b5"}
    assert "flowmake.config.load" in imported(err)
    assert (root / "out" / "b5.txt").read_text() == "5\n5\n"
