"""`flowmake why`: every part of the key, old → new, in text and JSON."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import xxhash

FLOW = """
[flow]
cache = false   # states here are fresh or stale: nothing is restorable

[params]
n = 1

[targets.up]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["src/up.txt"]
outputs = ["out/up.txt"]

[targets.t]
cmd     = "cat ${inputs} > ${outputs} && echo n=${params.n} >> ${outputs}"
inputs  = ["out/up.txt", "src/a.txt", "src/extra/*.txt"]
outputs = ["out/t.txt"]
env     = ["FM_WHY_TOKEN"]
"""
TOKEN = "FM_WHY_TOKEN"


def digest(data: bytes | str) -> str:
    return xxhash.xxh3_128_hexdigest(data.encode() if isinstance(data, str) else data)


def line(text: str) -> str:
    """The digest of a one-line file holding ``text``."""
    return digest(text + "\n")


def flowmake(root: Path, *args: str, token: str = "tok-1") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", TOKEN: token}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def why(root: Path, *args: str, token: str = "tok-1") -> str:
    result = flowmake(root, *args[:-1], "why", args[-1], token=token)
    assert result.returncode == 0, result.stderr
    return result.stdout


def why_doc(root: Path, *args: str, token: str = "tok-1") -> dict:
    result = flowmake(root, *args[:-1], "why", args[-1], "--json", token=token)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def reasons(doc: dict, kind: str) -> list[dict]:
    return [r for r in doc["reasons"] if r["reason"] == kind]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "flow.toml").write_text(textwrap.dedent(FLOW))
    (tmp_path / "src" / "extra").mkdir(parents=True)
    (tmp_path / "src" / "up.txt").write_text("up\n")
    (tmp_path / "src" / "a.txt").write_text("a\n")
    (tmp_path / "src" / "extra" / "b.txt").write_text("b\n")
    return tmp_path


@pytest.fixture
def built(root: Path) -> Path:
    result = flowmake(root, "build")
    assert result.returncode == 0, result.stderr
    return root


def test_never_built(root):
    text = why(root, "t")
    assert text.splitlines()[0] == "t: stale"
    assert "never built" in text
    assert "not computable until these inputs exist: out/up.txt" in text
    doc = why_doc(root, "t")
    assert doc["state"] == "stale" and doc["key"] is None and doc["recorded"] is None
    assert doc["missing_inputs"] == ["out/up.txt"]
    assert doc["upstream"] == [{"name": "up", "state": "stale",
                                "reasons": [{"reason": "new", "text": "never built"}]}]


def test_fresh_target_matches_its_record(built):
    text = why(built, "t")
    assert text.splitlines()[0] == "t: fresh"
    assert "every part of the key matches the record" in text
    assert "(same)" in text and "last built:" in text
    doc = why_doc(built, "t")
    assert doc["reasons"] == [] and doc["recorded"]["key"] == doc["key"]
    assert doc["parts"]["inputs"]["src/a.txt"] == digest(b"a\n")
    assert doc["parts"]["globs"] == {"src/extra/*.txt": ["src/extra/b.txt"]}


def test_command_change_is_a_diff(built):
    flow = built / "flow.toml"
    flow.write_text(flow.read_text().replace("echo n=", "echo N="))
    lines = why(built, "t").splitlines()
    at = lines.index("  command changed:")
    old, new = lines[at + 1], lines[at + 3]
    assert old.startswith("    - cat ") and "echo n=1" in old
    assert new.startswith("    + cat ") and "echo N=1" in new
    assert lines[at + 2].lstrip().startswith("?") and "^" in lines[at + 2]  # marks n → N
    [reason] = reasons(why_doc(built, "t"), "command")
    assert "echo n=1" in reason["old"] and "echo N=1" in reason["new"]
    assert [d[0] for d in reason["diff"]] == ["-", "?", "+", "?"]


def test_param_change_old_to_new(built):
    assert "param params.n: 1 → 2" in why(built, "-p", "n=2", "t")
    [reason] = reasons(why_doc(built, "-p", "n=2", "t"), "param")
    assert (reason["subject"], reason["old"], reason["new"]) == ("params.n", 1, 2)


def test_env_change_says_changed_never_the_value(built):
    text = why(built, "t", token="tok-2")
    assert f"env {TOKEN}: changed" in text
    result = flowmake(built, "why", "t", "--json", token="tok-2")
    [reason] = reasons(json.loads(result.stdout), "env")
    assert reason["subject"] == TOKEN and "old" not in reason and "new" not in reason
    for output in (text, result.stdout):
        assert "tok-1" not in output and "tok-2" not in output


def test_changed_input_with_old_and_new_hash(built):
    (built / "src" / "a.txt").write_text("a, edited\n")
    text = why(built, "t")
    assert "input changed: src/a.txt" in text
    assert f"{line('a')} → {line('a, edited')}" in text
    [reason] = reasons(why_doc(built, "t"), "input")
    assert (reason["old"], reason["new"]) == (digest(b"a\n"), digest(b"a, edited\n"))


def test_inputs_added_and_removed_from_a_glob(built):
    (built / "src" / "extra" / "c.txt").write_text("c\n")
    (built / "src" / "extra" / "b.txt").unlink()
    text = why(built, "t")
    assert (f"input added: src/extra/c.txt ({line('c')}, matched by src/extra/*.txt)"
            in text)
    assert (f"input removed: src/extra/b.txt ({line('b')}, matched by src/extra/*.txt)"
            in text)
    doc = why_doc(built, "t")
    [added], [removed] = reasons(doc, "input_added"), reasons(doc, "input_removed")
    assert added["subject"] == "src/extra/c.txt" and added["glob"] == "src/extra/*.txt"
    assert removed["subject"] == "src/extra/b.txt" and removed["glob"] == "src/extra/*.txt"


def test_output_modified_then_missing(built):
    output = built / "out" / "t.txt"
    before = output.read_bytes()
    output.write_text("tampered\n")
    text = why(built, "t")
    assert "output modified: out/t.txt" in text
    assert f"{digest(before)} → {line('tampered')}" in text
    output.unlink()
    assert "output missing: out/t.txt" in why(built, "t")
    assert reasons(why_doc(built, "t"), "output_missing")[0]["subject"] == "out/t.txt"


def test_output_state_is_reported_even_when_the_key_changed(built):
    (built / "out" / "t.txt").unlink()
    doc = why_doc(built, "-p", "n=3", "t")
    assert {r["reason"] for r in doc["reasons"]} == {"command", "param", "output_missing"}


def test_upstream_stale_is_explained_down_to_its_cause(built):
    (built / "src" / "up.txt").write_text("up, edited\n")
    lines = why(built, "t").splitlines()
    at = lines.index("  upstream stale: up")
    assert lines[at + 1] == "    up: stale"
    assert lines[at + 2] == "      input changed: src/up.txt"
    assert lines[at + 3].strip() == f"{line('up')} → {line('up, edited')}"
    doc = why_doc(built, "t")
    assert [u["name"] for u in doc["upstream"]] == ["up"]
    assert doc["upstream"][0]["reasons"][0]["subject"] == "src/up.txt"


def test_code_module_change_is_named(built):
    # A record written when the target's code fingerprint held a module it no longer has
    # (python targets keep module -> digest under parts["code"]).
    db = sqlite3.connect(built / ".flowmake" / "state.db")
    parts = json.loads(db.execute("SELECT parts FROM records WHERE target = 't'").fetchone()[0])
    parts["code"] = {"pipeline.steps": "0" * 32}
    with db:
        db.execute("UPDATE records SET parts = ?, key = ? WHERE target = 't'",
                   (json.dumps(parts), "f" * 32))
    db.close()
    (built / "flow.lock").unlink()  # else its entry, still matching, makes `t` fresh
    text = why(built, "t")
    assert "code changed: pipeline.steps" in text
    assert f"{'0' * 32} → (none)" in text
    [reason] = reasons(why_doc(built, "t"), "code")
    assert reason["subject"] == "pipeline.steps" and reason["old"] == "0" * 32


def test_a_pattern_naming_several_targets_is_refused(built):
    result = flowmake(built, "why", "*")
    assert result.returncode == 2
    assert "'*' names 2 targets (up, t)" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_target(built):
    result = flowmake(built, "why", "tt")
    assert result.returncode == 2
    assert "unknown target 'tt'" in result.stderr


PY_FLOW = """
[flow]
cache = false

[targets.calc]
python  = "pipeline.steps:calc"
outputs = ["out/calc.json"]
"""


def test_python_code_change_names_the_module(tmp_path):
    (tmp_path / "flow.toml").write_text(textwrap.dedent(PY_FLOW))
    package = tmp_path / "pipeline"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "steps.py").write_text("from pipeline.helpers import base\n\n\n"
                                      "def calc():\n    return {'value': base() + 1}\n")
    (package / "helpers.py").write_text("def base():\n    return 41\n")
    result = flowmake(tmp_path, "build")
    assert result.returncode == 0, result.stderr
    assert "every part of the key matches" in why(tmp_path, "calc")

    (package / "helpers.py").write_text("def base():\n    return 1\n")
    text = why(tmp_path, "calc")
    assert "code changed: pipeline.helpers.base" in text  # the function that changed
    assert "pipeline.steps" not in text  # only what changed
    [reason] = reasons(why_doc(tmp_path, "calc"), "code")
    assert reason["subject"] == "pipeline.helpers.base" and reason["old"] != reason["new"]


def test_restorable_says_the_cache_will_serve_it(tmp_path):
    (tmp_path / "flow.toml").write_text(textwrap.dedent("""
        [params]
        n = 1

        [targets.w]
        cmd     = "echo ${params.n} > ${outputs}"
        outputs = ["out/w.txt"]
        """))
    for args in (["build"], ["-p", "n=2", "build"]):
        assert flowmake(tmp_path, *args).returncode == 0
    lines = why(tmp_path, "w").splitlines()
    assert lines[0] == "w: restorable"
    assert "  the artifact cache holds this key: a build restores it, runs nothing" in lines
    assert "  param params.n: 2 → 1" in lines
