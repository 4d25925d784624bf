"""GitHub Actions (SPEC §8): `::error` workflow commands for failed targets and
configuration errors, and the Markdown job summary appended to GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import json
import re

FLOW = """
[targets.a]
cmd     = "echo a > ${outputs}"
outputs = ["out/a.txt"]

[targets.slow]
cmd     = "sleep 0.3; echo slow > ${outputs}"
outputs = ["out/slow.txt"]

[targets.bad]
cmd     = "sh bad.sh"
inputs  = ["out/a.txt"]
outputs = ["out/bad.txt"]

[targets.after]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/bad.txt"]
outputs = ["out/after.txt"]
"""

# 30 lines of output, the last ones with what GitHub's commands must have escaped.
BAD = "".join(f"echo line {i}\n" for i in range(1, 28)) + \
    "echo 'progress: 100%'\nprintf 'carriage\\rreturn\\n'\necho 'ValueError: empty, really'\nexit 3\n"

GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": None, "GITHUB_WORKSPACE": None}


def commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("::")]


def test_a_failed_target_is_an_error_annotation_on_stdout(project):
    project.flow(FLOW, {"bad.sh": BAD}, cache=False)
    result = project.run("build", "-k", env=GITHUB)
    assert result.returncode == 1
    [annotation] = commands(result.stdout)
    head, _, message = annotation.partition("::error title=flowmake%3A bad::")
    assert head == "" and message, annotation
    # %, CR and LF escaped as GitHub documents; the message is the error, then the end
    # of the output (its last 10 lines).
    assert "\r" not in message and "%0A" in message and "%25" in message
    lines = message.replace("%0D", "\r").replace("%25", "%").split("%0A")
    assert lines[0] == "exit code 3"
    assert lines[1:] == [f"line {i}" for i in range(21, 28)] + [
        "progress: 100%", "carriage\rreturn", "ValueError: empty, really"]
    assert commands(result.stderr) == []


def test_no_annotation_off_github_nor_for_a_success(project):
    project.flow(FLOW, {"bad.sh": BAD}, cache=False)
    result = project.run("build", "-k", env={"GITHUB_ACTIONS": None})
    assert result.returncode == 1 and commands(result.stdout + result.stderr) == []
    result = project.run("build", "a", env=GITHUB)
    assert result.returncode == 0 and commands(result.stdout + result.stderr) == []


def test_with_json_the_annotation_goes_to_stderr(project):
    project.flow(FLOW, {"bad.sh": BAD}, cache=False)
    result = project.run("build", "-k", "--json", env=GITHUB)
    assert result.returncode == 1
    assert json.loads(result.stdout)["result"] == "failed"  # stdout: the document alone
    assert [c.split("::")[1] for c in commands(result.stderr)] == ["error title=flowmake%3A bad"]


def test_a_config_error_is_an_annotation_with_file_and_line(project):
    project.flow('[targets.t]\ncmd = "true"\ntimeout = "soon"\n')
    result = project.run("build", env=GITHUB)
    assert result.returncode == 2
    assert result.stderr.startswith("flowmake: error: flow.toml:3: targets.t.timeout:")
    [annotation] = commands(result.stdout)
    assert re.fullmatch(r"::error file=flow\.toml,line=3,title=flowmake::targets\.t\.timeout: .+",
                        annotation), annotation

    # From above the project (-C), the file is named relative to the repository.
    result = project.run("-C", "proj", "status", "--json", cwd=project.root.parent,
                         env={**GITHUB, "GITHUB_WORKSPACE": str(project.root.parent)})
    assert result.returncode == 2 and result.stdout == ""  # --json: on stderr
    [annotation] = commands(result.stderr)
    assert annotation.startswith("::error file=proj/flow.toml,line=3,title=flowmake::")


def test_a_usage_error_is_an_annotation_without_a_file(project):
    project.flow(FLOW, {"bad.sh": BAD})
    result = project.run("build", "nosuch", env=GITHUB)
    assert result.returncode == 2
    assert commands(result.stdout) == ["::error title=flowmake::unknown target 'nosuch'"]


def test_the_step_summary_is_appended_as_markdown(project):
    project.flow(FLOW, {"bad.sh": BAD})
    summary = project.path("summary.md")
    summary.write_text("# an earlier step's summary\n")
    env = {**GITHUB, "GITHUB_STEP_SUMMARY": str(summary)}
    project.build("a", env=env)
    project.run("clean", "a", check=True)
    assert project.run("build", "-k", "-j", "2", env=env).returncode == 1
    with open(summary, encoding="utf-8", newline="") as f:  # a CR stays a CR
        text = f.read()
    assert text.startswith("# an earlier step's summary\n### ✅ flowmake build: success (run 1)")
    second = text[text.index("### ❌ flowmake build: failed (run 2)"):]
    assert "| built | restored | fresh | failed | skipped | time |" in second
    assert re.search(r"^\| 1 \| 1 \| 0 \| 1 \| 1 \| [\d.]+s \|$", second, re.M), second
    failure = second[second.index("#### ❌ `bad`: exit code 3"):]
    block = failure[failure.index("```text\n") + 8:failure.index("\n```\n")]
    assert block.split("\n") == [f"line {i}" for i in range(11, 28)] + [
        "progress: 100%", "carriage\rreturn", "ValueError: empty, really"]
    assert "last 20 lines of its output (10 before them)" in failure
    assert "**Restored from the cache (1):** `a`" in second
    assert "**Built (1):** `slow`" in second
    slowest = re.findall(r"^\| `(\S+)` \| (\w+) \| [\d.]+s \|$", second, re.M)
    assert slowest[0] == ("slow", "built")  # the slowest first
    assert sorted(slowest) == [("a", "restored"), ("bad", "failed"), ("slow", "built")]


def test_a_summary_for_a_no_op_build_too(project):
    project.flow(FLOW, {"bad.sh": BAD})
    project.build("a")
    project.build("a")  # the no-op fast path is saved
    summary = project.path("summary.md")
    project.build("a", env={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text()
    assert "flowmake build: success (run 3)" in text
    assert re.search(r"^\| 0 \| 0 \| 1 \| 0 \| 0 \| ", text, re.M)


def test_output_with_backtick_fences_cannot_close_the_block(project):
    project.flow("""
        [targets.md]
        cmd     = "printf 'before\\n```\\nafter\\n'; exit 1"
        outputs = ["out/md.txt"]
    """, cache=False)
    summary = project.path("summary.md")
    project.run("build", env={"GITHUB_STEP_SUMMARY": str(summary)})
    text = summary.read_text()
    assert "````text\nbefore\n```\nafter\n````\n" in text
