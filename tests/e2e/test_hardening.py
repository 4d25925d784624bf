"""Inputs that once crashed or hung a command beyond the config checks: a long chain in
`why`, an output folder holding a file whose name is not UTF-8, a huge -j."""

from __future__ import annotations

import json
import os


def chain(n: int) -> str:
    parts = ['[targets.t0]\ncmd = "echo 0 > ${outputs}"\ninputs = ["src.txt"]\noutputs = ["o/0"]\n']
    parts += [f'[targets.t{i}]\ncmd = "cat ${{inputs}} > ${{outputs}}"\ninputs = ["o/{i - 1}"]'
              f'\noutputs = ["o/{i}"]\n' for i in range(1, n)]
    return "\n".join(parts)


def test_why_explains_a_long_stale_chain(project):
    project.flow(chain(1500), {"src.txt": "x\n"}, cache=False)
    result = project.run("why", "t1499", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].strip().startswith("upstream stale: t1498") or any(
        "upstream stale: t1498" in line for line in lines)
    assert any("and further upstream: `flowmake why" in line for line in lines)
    assert max(len(line) for line in lines) < 200
    doc = json.loads(project.run("why", "t1499", "--json", timeout=120).stdout)
    assert len(doc["upstream"]) == 1499  # the JSON lists every one


def test_an_output_folder_holding_a_name_that_is_not_utf8(project):
    project.flow("""
        [targets.odd]
        cmd = "mkdir -p out/dir && printf x > \\"out/dir/$$(printf 'a\\\\377b')\\""
        outputs = ["out/dir"]
        """, cache=False)
    result = project.run("build", "--json", timeout=30)
    assert "Traceback" not in result.stderr
    assert os.listdir(os.fsencode(project.path("out/dir"))) == [b"a\xffb"]
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 1:  # refused, naming the path: never hangs, never crashes
        [target] = json.loads(result.stdout)["targets"]
        assert "out/dir" in target["error"]


def test_a_huge_j_is_a_usage_error(project):
    project.flow('[targets.a]\ncmd = "true"\n', cache=False)
    result = project.run("build", "-j", "100000000")
    assert result.returncode == 2
    assert "-j" in result.stderr and "Traceback" not in result.stderr
