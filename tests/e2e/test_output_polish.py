"""What a user reads: reasons named once and rightly, the order of a build's lines, the
final lines of an interrupted or retried build, `status -q`, and times in JSON.

Everything through the real ``flowmake`` command (the ``project`` fixture).
"""

from __future__ import annotations

import json
import re
import signal
from datetime import datetime

PARAMS = """
[params]
ridge = 0.1

[targets.fit]
cmd     = "echo ${ridge} > ${outputs}"
params  = { ridge = "${params.ridge}", tag = "r${params.ridge}", seed = 7 }
outputs = ["out/fit.txt"]
"""


def reasons(project, *args):
    return {t["name"]: t["reasons"] for t in project.json("status", *args)["targets"]}


# -- 1. a param change is named once --------------------------------------------------


def test_a_project_param_change_is_named_once(project):
    project.flow(PARAMS, cache=False)
    project.build()
    found = reasons(project, "-p", "ridge=1.0")["fit"]
    params = [r for r in found if r.startswith("param ")]
    # Neither `ridge` (exactly the reference) nor `tag` (the reference inside a string)
    # repeats the change: it is named once, as `${params.ridge}` names it.
    assert params == ["param params.ridge: 0.1 → 1.0"]
    text = project.run("-p", "ridge=1.0", "status").stdout
    assert text.count("0.1 → 1.0") == 1, text
    run = project.run("-p", "ridge=1.0", "build").stdout
    assert run.count("0.1 → 1.0") == 1, run


def test_a_target_param_of_its_own_is_still_named(project):
    project.flow(PARAMS, cache=False)
    project.build()
    project.edit_flow("seed = 7", "seed = 8")
    assert reasons(project)["fit"] == ["param seed: 7 → 8"]
    # Both changed: each named once.
    project.edit_flow('tag = "r${params.ridge}"', 'tag = "x${params.ridge}"')
    assert reasons(project, "-p", "ridge=2")["fit"] == [
        "command changed", 'param seed: 7 → 8', 'param tag: "r0.1" → "x2"',
        "param params.ridge: 0.1 → 2"]


# -- 2. a shell command that starts with `python` is a command --------------------------


def test_a_python_shell_command_is_a_command_not_code(project):
    project.flow("""
        [targets.gen]
        cmd     = "python -c 'print(1)' > ${outputs}"
        outputs = ["out/gen.txt"]
    """, cache=False)
    project.build()
    project.edit_flow("print(1)", "print(2)")
    assert reasons(project)["gen"] == ["command changed"]
    why = project.run("why", "gen", check=True).stdout
    assert "command changed:" in why and "code changed" not in why
    assert project.json("why", "gen")["reasons"][0]["reason"] == "command"


def test_a_python_target_changing_function_is_code(project):
    project.flow("""
        [targets.t]
        python  = "steps:one"
        outputs = ["out/t.json"]
    """, {"steps.py": "def one():\n    return 1\n\n\ndef two():\n    return 2\n"}, cache=False)
    project.build()
    project.edit_flow("steps:one", "steps:two")
    assert reasons(project)["t"][0] == "code changed"


# -- 3. an interrupted build names what it interrupted --------------------------------

SLOW = """
[targets.quick]
cmd     = "echo q > ${outputs}"
outputs = ["out/quick.txt"]

[targets.a]
cmd     = "touch started-a; sleep 30; echo a > ${outputs}"
inputs  = ["out/quick.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd     = "touch started-b; sleep 30; echo b > ${outputs}"
inputs  = ["out/quick.txt"]
outputs = ["out/b.txt"]

[targets.c]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt", "out/b.txt"]
outputs = ["out/c.txt"]
"""


def test_an_interrupted_build_names_the_interrupted_targets(project):
    project.flow(SLOW, cache=False)
    proc = project.popen("build", "-j", "3")
    project.wait_for(lambda: project.exists("started-a") and project.exists("started-b"),
                     timeout=20, what="a and b to start")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    final = out.splitlines()[-3:]
    assert re.fullmatch(r"FAILED +a +[\d.]+s +\(interrupted\)", final[0]) or \
        re.fullmatch(r"FAILED +b +[\d.]+s +\(interrupted\)", final[0]), out
    assert sorted(line.split()[1] for line in final[:2]) == ["a", "b"], out
    assert all(line.endswith("(interrupted)") for line in final[:2]), out
    assert final[2].startswith("flowmake: interrupted: 1 built, 0 restored, 0 fresh, 2 failed,"
                               " 1 skipped"), out

    log = project.run("log", "1", check=True).stdout
    assert "no target ran" not in log, log
    assert "targets: 1 built, 2 failed, 1 skipped" in log
    failed = re.findall(r"^  ([^\s(]\S*) +failed ", log, re.M)
    if failed:  # the scheduler keeps the interrupted targets' lines: each is named
        assert sorted(failed) == ["a", "b"], log
    else:  # it does not: the log says what its counts hold beyond its lines
        assert "(2 failed without a line here: interrupted before they were recorded)" in log


def test_log_of_a_build_that_found_everything_fresh(project):
    project.flow("""
        [targets.t]
        cmd     = "echo t > ${outputs}"
        outputs = ["out/t.txt"]
    """, cache=False)
    project.build()
    assert project.build() == {"t": "fresh"}
    assert re.search(r"^  t +built ", project.run("log", "1", check=True).stdout, re.M)
    log = project.run("log", "2", check=True).stdout
    assert "(no target ran: everything was fresh)" in log and "without a line" not in log


# -- 4. plain lines in the order things happened -------------------------------------


def test_plain_lines_with_one_job_never_look_parallel(project):
    names = [f"t{i}" for i in range(6)]
    project.flow("".join(f"""
        [targets.{n}]
        cmd     = "echo {n} > ${{outputs}}"
        outputs = ["out/{n}.txt"]
    """ for n in names), cache=False)
    out = project.run("build", "-j", "1", check=True).stdout
    events = [line.split()[:2] for line in out.splitlines() if line.startswith(("run ", "ok "))]
    running = None
    for verb, name in events:
        if verb == "run":
            assert running is None, f"run {name} before ok {running}:\n{out}"
            running = name
        else:
            assert name == running, out
            running = None
    assert len(events) == 12


# -- 5. --json: the summary once on stderr -------------------------------------------


def test_json_build_prints_its_summary_once(project):
    project.flow("""
        [targets.bad]
        cmd = "echo oops; exit 3"
    """, cache=False)
    result = project.run("build", "--json", check=1)
    assert json.loads(result.stdout)["result"] == "failed"
    assert result.stderr.count("flowmake: failed:") == 1, result.stderr


# -- 6. status -q ----------------------------------------------------------------------

TWO = """
[targets.a]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["src.txt"]
outputs = ["out/a.txt"]

[targets.b]
cmd     = "echo b > ${outputs}"
outputs = ["out/b.txt"]

[targets.top]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt", "out/b.txt"]
outputs = ["out/top.txt"]
"""


def test_quiet_status_prints_only_what_is_not_fresh(project):
    project.flow(TWO, {"src.txt": "1\n"}, cache=False)
    project.build()
    quiet = project.run("-q", "status", check=True)
    assert quiet.stdout == "" and quiet.stderr == ""
    project.write("src.txt", "2\n")
    quiet = project.run("status", "-q", check=True)
    assert quiet.stdout.splitlines() == [
        "a: stale (input changed: src.txt)", "top: stale (upstream stale: a)"], quiet.stdout
    assert quiet.stderr == ""
    check = project.run("status", "-q", "--check", check=1)
    assert check.stdout == "" and check.stderr == ""
    # Without -q: the whole tree, fresh ones included.
    assert "b: fresh" in project.run("status", check=True).stdout


# -- 7, 8. the final table's run id; retries said -----------------------------------

RETRY = """
[targets.flaky]
cmd     = "test -f marker || {{ touch marker; exit 1; }}; echo ok > ${{outputs}}"
outputs = ["out/flaky.txt"]
retries = 2
"""


def test_a_retried_target_says_so_in_plain_lines(project):
    project.flow(RETRY.format(), cache=False)
    out = project.run("build", check=True).stdout
    assert re.search(r"^ok +flaky +[\d.]+s, after 2 attempts$", out, re.M), out
    project.path("marker").unlink()
    out = project.run("build", "-B", check=True).stdout
    assert "after 2 attempts" in out
    out = project.run("build", "-B", check=True).stdout  # the marker is there: one attempt
    assert "attempts" not in out, out


def test_the_live_view_ends_with_the_run_id_and_says_retries(project):
    project.flow(RETRY.format(), cache=False)
    project.build()  # run 1
    project.path("marker").unlink()
    code, screen = project.terminal("build", "-B", env={"NO_COLOR": None, "TERM": "xterm"})
    assert code == 0, screen
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"ok +flaky +[\d.]+s, after 2 attempts", text), text
    header = next(line for line in text.splitlines() if "result" in line and "built" in line)
    row = text.splitlines()[text.splitlines().index(header) + 2]
    cells = [re.split(r"[\s│┃]+", line.strip()) for line in (header, row)]
    assert cells[0][:2] == ["run", "result"] and cells[1][:2] == ["2", "success"], text


# -- 11. times in JSON are ISO 8601 ----------------------------------------------------


def _iso(value):
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def test_json_times_are_iso_8601_beside_the_epoch_fields(project):
    project.flow(TWO, {"src.txt": "1\n"}, cache=False)
    project.build()
    recorded = project.json("why", "a")["recorded"]
    built = _iso(recorded["built"])
    assert abs(built.timestamp() - recorded["built_at"]) < 0.01  # the old field stays
    graph = json.loads(project.run("graph", "--format", "json", check=True).stdout)
    nodes = {n["name"]: n for n in graph["nodes"]}
    last = nodes["a"]["last_built"]
    assert abs(_iso(last["built"]).timestamp() - last["at"]) < 0.01
    started = _iso(project.json("log")["runs"][0]["started"])
    assert abs(started.timestamp() - built.timestamp()) < 60
