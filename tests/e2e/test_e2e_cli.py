"""The command line: selection, configuration errors, global options, clean and why."""

from __future__ import annotations

import json
import os
import re

import pytest

FITS = """
[targets.prep]
cmd = "echo prep > ${outputs}"
outputs = ["out/prep.txt"]

[targets.fit1]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/prep.txt"]
outputs = ["out/fit1.txt"]

[targets.fit2]
cmd = "echo fit2 > ${outputs}"
outputs = ["out/fit2.txt"]

[targets.other]
cmd = "echo other > ${outputs}"
outputs = ["out/other.txt"]
"""


def test_selection_by_glob_builds_the_matches_and_their_upstream(project):
    project.flow(FITS, cache=False)
    assert project.build("fit*") == {"prep": "built", "fit1": "built", "fit2": "built"}
    assert not project.exists("out/other.txt")
    states = project.states("other", "fit2")
    assert set(states) == {"other", "fit2"}
    assert states["other"]["state"] == "stale" and states["fit2"]["state"] == "fresh"


def test_unknown_target_is_a_usage_error_with_a_suggestion(project):
    project.flow(FITS, cache=False)
    for command in ("build", "status"):
        result = project.run(command, "fti1")
        assert result.returncode == 2
        assert "unknown target 'fti1'" in result.stderr
        assert "did you mean 'fit1'" in result.stderr
        assert "Traceback" not in result.stderr
    assert project.run("why", "nothing_like_it").returncode == 2
    assert not project.path("out").exists()


def test_flow_default_is_what_a_bare_build_selects(project):
    project.flow("[flow]\ndefault = [\"fit2\"]\n" + FITS, cache=False)
    assert project.build() == {"fit2": "built"}
    assert set(project.states()) == {"fit2"}


# (flow.toml, extra arguments, substrings of the error line)
BAD = {
    "invalid-toml": ('[targets.a]\ncmd = "x\n', [], ["flow.toml:2", "invalid TOML"]),
    "unknown-key": ('[targets.a]\ncmd = "true"\noutptus = ["x"]\n', [],
                    ["flow.toml:3", "targets.a.outptus", "unknown key", "did you mean 'outputs'"]),
    "cmd-and-python": ('[targets.a]\ncmd = "true"\npython = "m:f"\n', [],
                       ["flow.toml:1", "targets.a", "cmd", "python"]),
    "timeout-type": ('[targets.a]\ncmd = "sleep 1"\ntimeout = "x"\n', [],
                     ["flow.toml:3", "targets.a.timeout", "string"]),
    "inputs-type": ('[targets.a]\ncmd = "true"\ninputs = "a"\n', [],
                    ["flow.toml:3", "targets.a.inputs", "array"]),
    "unknown-ref": ('[params]\nlr = 1\n[targets.a]\ncmd = "echo ${params.lrr} ${params.lr}"\n',
                    [], ["flow.toml:4", "targets.a.cmd", "${params.lrr}"]),
    "shared-output": ('[targets.a]\ncmd = "true"\noutputs = ["x"]\n\n'
                      '[targets.b]\ncmd = "true"\noutputs = ["x"]\n', [],
                      ["flow.toml:7", "targets.b.outputs", "'x'", "'a'"]),
    "output-outside": ('[targets.a]\ncmd = "true"\noutputs = ["../x"]\n', [],
                       ["flow.toml:3", "targets.a.outputs", "../x", "outside"]),
    "unknown-dep": ('[targets.a]\ncmd = "true"\ndeps = ["nope"]\n', [],
                    ["flow.toml:3", "targets.a.deps", "'nope'"]),
    "missing-input": ('[targets.a]\ncmd = "true"\ninputs = ["missing.txt"]\n', [],
                      ["flow.toml", "targets.a.inputs", "missing.txt", "'a'"]),
    "unknown-param": ('[params]\nlr = 1\n[targets.a]\ncmd = "true"\n', ["-p", "lrr=2"],
                      ["unknown param 'lrr'", "did you mean 'lr'"]),
}


def _error_line(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "no message on stderr"
    assert lines[0].startswith("flowmake: error: "), result.stderr
    assert all(line.startswith("  hint:") for line in lines[1:]), result.stderr
    return lines[0]


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configuration_is_exit_2_with_one_line(project, case):
    text, args, expected = BAD[case]
    # A target that would leave a trace if anything ran before the error.
    project.write("flow.toml", text + '\n[targets.canary]\ncmd = "touch ran"\n')
    line = _error_line(project.run("build", *args))
    for part in expected:
        assert part in line, f"{part!r} not in {line!r}"
    assert not project.exists("ran")
    assert not project.exists("x")


def test_missing_input_error_names_the_line(project):
    project.write("flow.toml", '[targets.a]\ncmd = "true"\ninputs = ["missing.txt"]\n')
    line = _error_line(project.run("build"))
    assert "flow.toml:3: targets.a.inputs" in line


def test_cycle_is_exit_2_and_shows_the_path(project):
    project.write("flow.toml", """
[targets.a]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["b.txt"]
outputs = ["a.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["a.txt"]
outputs = ["b.txt"]
""")
    line = _error_line(project.run("build"))
    assert re.search(r"\b(a -> b -> a|b -> a -> b)\b", line), line
    deps = _error_line(project.run("status"))
    assert "cycle" in deps


def test_bad_configuration_fails_every_command(project):
    project.write("flow.toml", '[targets.a]\ncmd = "true"\noutptus = ["x"]\n')
    for args in (["status"], ["list"], ["clean", "--all"]):
        line = _error_line(project.run(*args))
        assert "targets.a.outptus" in line


def test_missing_flow_toml(project):
    line = _error_line(project.run("build"))
    assert "flow.toml" in line
    assert "Traceback" not in project.run("status").stderr


def test_global_options_before_and_after_the_command(project, tmp_path):
    project.flow(FITS, cache=False)
    here = tmp_path  # the project is tmp_path/proj
    before = project.run("-C", "proj", "build", "--json", cwd=here, check=True)
    assert {t["status"] for t in json.loads(before.stdout)["targets"]} == {"built"}
    after = project.run("build", "-C", "proj", "--json", cwd=here, check=True)
    assert {t["status"] for t in json.loads(after.stdout)["targets"]} == {"fresh"}
    assert project.run("status", "--check", "-C", "proj", cwd=here).returncode == 0
    # -f names another flow file; -q keeps a successful build quiet.
    project.write("other.toml", '[targets.alt]\ncmd = "echo alt > ${outputs}"\n'
                                'outputs = ["out/alt.txt"]\n')
    quiet = project.run("-f", "other.toml", "-q", "build", check=True)
    assert quiet.stdout.strip() == ""
    assert project.read("out/alt.txt") == "alt\n"
    assert project.run("-C", "no-such-dir", "build", cwd=here).returncode == 2


def test_version_and_help(project):
    version = project.run("--version", check=True)
    assert re.search(r"flowmake \d+\.\d+", version.stdout)
    helped = project.run("--help", check=True)
    for command in ("build", "status", "clean", "list", "why"):
        assert command in helped.stdout
    build_help = project.run("build", "--help", check=True)
    assert "--keep-going" in build_help.stdout and "--dry-run" in build_help.stdout


def test_usage_errors_are_exit_2(project):
    project.flow(FITS, cache=False)
    assert project.run("build", "--no-such-option").returncode == 2
    assert project.run("no-such-command").returncode == 2
    assert project.run("build", "-j", "-1").returncode == 2
    assert project.run("build", "-p", "novalue").returncode == 2
    assert not project.path("out").exists()


def test_j_zero_is_rejected(project):
    project.flow(FITS, cache=False)
    result = project.run("build", "-j", "0")
    assert result.returncode == 2
    assert not project.path("out").exists()


# -- clean -----------------------------------------------------------------------------


@pytest.mark.slow
def test_clean_named_targets_dry_run_and_all(project):
    project.flow(FITS, cache=False)
    project.build()
    dry = project.run("clean", "-n", "fit1", check=True)
    assert "out/fit1.txt" in dry.stdout
    assert project.exists("out/fit1.txt")
    assert project.states()["fit1"]["state"] == "fresh"

    project.run("clean", "fit1", check=True)
    assert not project.exists("out/fit1.txt")
    assert project.exists("out/prep.txt") and project.exists("out/other.txt")
    states = project.states()
    assert states["fit1"]["state"] == "stale"
    assert states["prep"]["state"] == "fresh"

    project.run("clean", "--all", check=True)
    assert list(project.path("out").iterdir()) == []
    assert {s["state"] for s in project.states().values()} == {"stale"}
    assert set(project.build().values()) == {"built"}
    assert project.run("clean").returncode == 2  # neither targets nor --all


def test_clean_never_deletes_through_a_symlink_out_of_the_project(project, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text("precious\n")
    (outside / "target.txt").write_text("also precious\n")
    project.flow("""
        [targets.via_dir]
        cmd = "true"
        outputs = ["link/x.txt"]

        [targets.via_file]
        cmd = "true"
        outputs = ["out/file_link.txt"]
        """, cache=False)
    os.symlink(outside, project.path("link"))
    project.path("out").mkdir()
    os.symlink(outside / "target.txt", project.path("out/file_link.txt"))

    result = project.run("clean", "--all")
    assert result.returncode == 0, result.stderr
    assert (outside / "x.txt").read_text() == "precious\n"
    assert (outside / "target.txt").read_text() == "also precious\n"
    assert project.path("link").is_symlink()  # the folder link itself is left alone
    # A symlinked output is removed as a link, never what it points to.
    assert not os.path.lexists(project.path("out/file_link.txt"))


# -- why -------------------------------------------------------------------------------

WHY = """
[params]
lr = 0.1

[targets.a]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd = "cat ${inputs} > ${outputs}; echo ${params.lr} >> ${outputs}"
inputs = ["out/a.txt"]
outputs = ["out/b.txt"]
"""


def test_why_explains_command_param_and_input_changes(project):
    project.flow(WHY, {"src/a.txt": "x\n"}, cache=False)
    never = project.run("why", "a", check=True)
    assert "never built" in never.stdout
    project.build()
    fresh = project.run("why", "b", check=True)
    assert "fresh" in fresh.stdout

    param = project.run("why", "b", "-p", "lr=0.5", check=True)
    assert re.search(r"params?\.?lr\S*:? 0\.1 → 0\.5", param.stdout), param.stdout

    project.edit_flow('cmd = "cat ${inputs} > ${outputs}"\ninputs = ["src/a.txt"]',
                      'cmd = "cp ${inputs} ${outputs}"\ninputs = ["src/a.txt"]')
    command = project.run("why", "a", check=True)
    assert "command changed" in command.stdout
    assert "cat src/a.txt > out/a.txt" in command.stdout
    assert "cp src/a.txt out/a.txt" in command.stdout
    assert command.stdout.index("cat src/a.txt") < command.stdout.index("cp src/a.txt")

    project.write("src/a.txt", "y\n")
    changed = project.run("why", "a", check=True)
    assert "input changed: src/a.txt" in changed.stdout
    downstream = project.run("why", "b", check=True)
    assert "a" in downstream.stdout and "stale" in downstream.stdout
