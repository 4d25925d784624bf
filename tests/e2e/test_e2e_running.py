"""Running targets: failures, -k, parallelism, timeouts, retries, the shell command line."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[")


def spans(folder: Path) -> dict[str, tuple[float, float]]:
    """{name: (start, end)} from files holding two `date +%s.%N` lines."""
    found = {}
    for path in sorted(folder.glob("*.txt")):
        start, end = path.read_text().split()
        found[path.stem] = (float(start), float(end))
    return found


def span_targets(n: int, sleep: float) -> str:
    return "".join(f"""
[targets.p{i}]
cmd = "date +%s.%N > ${{outputs}}; sleep {sleep}; date +%s.%N >> ${{outputs}}"
outputs = ["spans/p{i}.txt"]
""" for i in range(n))


def test_four_one_second_targets_run_side_by_side_at_j4(project):
    project.flow(span_targets(4, 1), cache=False)
    started = time.monotonic()
    assert project.build("-j", "4") == {f"p{i}": "built" for i in range(4)}
    elapsed = time.monotonic() - started
    found = spans(project.path("spans"))
    assert len(found) == 4
    assert all(end - start >= 1 for start, end in found.values())
    span = max(e for _, e in found.values()) - min(s for s, _ in found.values())
    assert span < 2, f"4 x sleep 1 at -j4 took {span:.2f}s of command time"
    assert elapsed < 6, f"the whole build took {elapsed:.2f}s"


def test_j1_runs_one_target_at_a_time(project):
    project.flow(span_targets(4, 0.3), cache=False)
    assert project.build("-j", "1") == {f"p{i}": "built" for i in range(4)}
    ordered = sorted(spans(project.path("spans")).values())
    assert len(ordered) == 4
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start >= end, f"overlap at -j1: {ordered}"


def test_flow_jobs_is_the_default_j(project):
    project.flow("[flow]\njobs = 1\n" + span_targets(3, 0.3), cache=False)
    project.build()
    ordered = sorted(spans(project.path("spans")).values())
    for (_, end), (start, _) in itertools.pairwise(ordered):
        assert start >= end, f"overlap with [flow] jobs = 1: {ordered}"


KEEP_GOING = """
[targets.bad]
cmd = "echo boom; exit 3"
outputs = ["out/bad.txt"]

[targets.after_bad]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/bad.txt"]
outputs = ["out/after_bad.txt"]

[targets.after_after]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/after_bad.txt"]
outputs = ["out/after_after.txt"]

[targets.good]
cmd = "echo good > ${outputs}"
outputs = ["out/good.txt"]

[targets.good2]
cmd = "cat ${inputs} > ${outputs}"
inputs = ["out/good.txt"]
outputs = ["out/good2.txt"]
"""


def test_keep_going_builds_independent_branches_and_skips_dependents(project):
    project.flow(KEEP_GOING, cache=False)
    doc = project.json("build", "-k", "-j", "1", check=1)
    assert doc["result"] == "failed"
    statuses = {t["name"]: t["status"] for t in doc["targets"]}
    assert statuses == {"bad": "failed", "after_bad": "skipped", "after_after": "skipped",
                        "good": "built", "good2": "built"}
    assert project.read("out/good2.txt") == "good\n"
    assert not project.exists("out/after_bad.txt")
    states = project.states()
    assert states["good2"]["state"] == "fresh"
    assert states["bad"]["state"] == "stale"
    assert states["after_after"]["state"] == "stale"


def test_failure_output_and_exit_code(project):
    project.flow(KEEP_GOING, cache=False)
    result = project.run("build", "bad")
    assert result.returncode == 1
    assert "boom" in result.stdout  # the failed command's captured output is shown
    assert "bad" in result.stdout and "exit code 3" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_without_keep_going_no_target_starts_after_a_failure(project):
    targets = "".join(f"""
[targets.t{i}]
cmd = "date +%s.%N > starts/t{i}; echo ok > ${{outputs}}"
outputs = ["out/t{i}.txt"]
""" for i in range(4))
    project.flow("""
        [targets.bad]
        cmd = "sleep 0.2; date +%s.%N > failed_at; exit 1"
        outputs = ["out/bad.txt"]
        """ + targets, {"starts/.keep": ""}, cache=False)
    doc = project.json("build", "-j", "1", check=1)
    assert doc["result"] == "failed"
    statuses = {t["name"]: t["status"] for t in doc["targets"]}
    assert statuses["bad"] == "failed"
    failed_at = float(project.read("failed_at"))
    started = {p.name: float(p.read_text()) for p in project.path("starts").glob("t*")}
    assert all(when < failed_at for when in started.values()), (started, failed_at)
    not_started = {f"t{i}" for i in range(4)} - set(started)
    assert not_started, "every target ran before the failure: the test proves nothing"
    assert {statuses[n] for n in not_started} == {"skipped"}
    assert {statuses[n] for n in started} <= {"built"}


def test_timeout_kills_the_whole_process_group(project):
    project.flow("""
        [targets.hang]
        cmd = "sleep 30 & echo $$! > child.pid; wait; echo never > ${outputs}"
        outputs = ["out/hang.txt"]
        timeout = 1
        """, cache=False)
    project.track_pid_file("child.pid")
    started = time.monotonic()
    result = project.run("build")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert elapsed < 8, f"a 1 s timeout took {elapsed:.1f}s"
    assert "timed out" in result.stdout + result.stderr
    assert not project.exists("out/hang.txt")
    child = int(project.read("child.pid"))
    project.wait_for(lambda: not project.pid_alive(child), timeout=5, what=f"background child {child} to die")
    assert project.states()["hang"]["state"] == "stale"


def test_timeout_in_json(project):
    project.flow("""
        [targets.hang]
        cmd = "sleep 10"
        timeout = 0.5
        """, cache=False)
    doc = project.json("build", check=1)
    (target,) = doc["targets"]
    assert target["status"] == "failed"
    assert "timed out" in target.get("error", "")


RETRY = """
[targets.flaky]
cmd = "n=$$(cat count.txt 2>/dev/null || echo 0); n=$$((n+1)); echo $$n > count.txt; echo attempt $$n; test $$n -gt 2 && echo ok > ${outputs}"
outputs = ["out/flaky.txt"]
retries = RETRIES
"""


def test_retries_until_success(project):
    project.flow(RETRY.replace("RETRIES", "2"), cache=False)
    result = project.run("build", check=True)
    assert project.read("count.txt").strip() == "3"
    assert project.read("out/flaky.txt") == "ok\n"
    assert "attempt 3" in result.stdout
    assert project.states()["flaky"]["state"] == "fresh"


def test_retries_exhausted_fails(project):
    project.flow(RETRY.replace("RETRIES", "1"), cache=False)
    doc = project.json("build", check=1)
    assert {t["name"]: t["status"] for t in doc["targets"]} == {"flaky": "failed"}
    assert project.read("count.txt").strip() == "2"
    assert not project.exists("out/flaky.txt")


def test_dollar_dollar_reaches_the_shell_as_one_dollar(project):
    project.flow("""
        [targets.d]
        cmd = 'echo "$$FM_DOLLAR" "$${FM_DOLLAR}x" "$$$$" > ${outputs}'
        outputs = ["out/d.txt"]
        """, cache=False)
    project.build(env={"FM_DOLLAR": "val"})
    first, second, pid = project.read("out/d.txt").split()
    assert (first, second) == ("val", "valx")
    assert pid.isdigit()  # $$$$ -> $$, the shell's pid


def test_paths_with_spaces_and_quotes_are_shell_quoted(project):
    project.flow("""
        [targets.spaced]
        cmd = "cat ${inputs} > ${outputs}"
        inputs = ["in dir/my file.txt", "it's.txt"]
        outputs = ["out dir/deep er/res ult.txt"]

        [targets.next]
        cmd = "wc -l < ${inputs} > ${outputs}"
        inputs = ["out dir/deep er/res ult.txt"]
        outputs = ["more/a b/c.txt"]
        """, {"in dir/my file.txt": "one\n", "it's.txt": "two\n"}, cache=False)
    assert project.build() == {"spaced": "built", "next": "built"}
    assert project.read("out dir/deep er/res ult.txt") == "one\ntwo\n"
    assert project.read("more/a b/c.txt").strip() == "2"
    assert project.build() == {"spaced": "fresh", "next": "fresh"}


def test_parent_folders_of_outputs_are_created(project):
    project.flow("""
        [targets.deep]
        cmd = "echo x > ${outputs.one} && echo y > ${outputs.two}"
        outputs = { one = "a/b/c/d.txt", two = "e/f.txt" }
        """, cache=False)
    project.build()
    assert project.read("a/b/c/d.txt") == "x\n"
    assert project.read("e/f.txt") == "y\n"


def test_cwd_runs_the_command_in_the_subfolder(project):
    project.flow("""
        [targets.insub]
        cwd = "sub"
        cmd = "cat ${inputs} > ${outputs}; pwd >> ${outputs}; echo ${inputs} ${outputs} >> ${outputs}"
        inputs = ["sub/in.txt", "top.txt"]
        outputs = ["sub/out/res.txt"]
        """, {"sub/in.txt": "data\n", "top.txt": "top\n"}, cache=False)
    assert project.build() == {"insub": "built"}
    data, top, pwd, refs = project.read("sub/out/res.txt").splitlines()
    assert (data, top) == ("data", "top")
    assert Path(pwd).resolve() == project.path("sub").resolve()
    assert refs == "in.txt ../top.txt out/res.txt"
    assert project.build() == {"insub": "fresh"}


def test_json_stdout_is_only_the_document_even_when_targets_print(project):
    project.flow("""
        [targets.noisy]
        cmd = "echo to-stdout; echo to-stderr >&2; echo '{not json'; echo x > ${outputs}"
        outputs = ["out/noisy.txt"]

        [targets.broken]
        cmd = "echo broken-out; exit 1"
        """, cache=False)
    result = project.run("build", "-k", "--json")
    assert result.returncode == 1
    doc = json.loads(result.stdout)  # nothing else on stdout
    assert doc["result"] == "failed"
    assert {t["name"]: t["status"] for t in doc["targets"]} == {"noisy": "built",
                                                               "broken": "failed"}
    assert "to-stdout" in result.stderr and "to-stderr" in result.stderr
    assert "broken-out" in result.stderr
    assert "to-stdout" not in result.stdout
    again = project.run("build", "noisy", "-v", "--json")
    assert json.loads(again.stdout)["targets"][0]["status"] == "fresh"


def test_no_ansi_escapes_without_a_terminal(project):
    project.flow("""
        [targets.ok]
        cmd = "echo fine > ${outputs}"
        outputs = ["out/ok.txt"]

        [targets.bad]
        cmd = "echo nope; exit 1"
        """, cache=False)
    runs = [
        project.run("build", "-k"),                                   # NO_COLOR=1
        # Pipes, and no NO_COLOR: plain all the same.
        project.run("build", "-k", "-v", env={"NO_COLOR": None, "TERM": "xterm-256color"}),
        project.run("why", "bad", env={"NO_COLOR": None}),
        project.run("build", "nope", env={"NO_COLOR": None}),
    ]
    assert [r.returncode for r in runs] == [1, 1, 0, 2]
    for result in runs:
        assert not ANSI.search(result.stdout), result.stdout
        assert not ANSI.search(result.stderr), result.stderr
    assert "FAILED" in runs[0].stdout or "failed" in runs[0].stdout



def test_no_ansi_escapes_on_a_terminal_with_no_color(project):
    project.flow("""
        [targets.ok]
        cmd = "echo fine > ${outputs}"
        outputs = ["out/ok.txt"]
        """, cache=False)
    code, out = project.terminal("build", "-B")  # NO_COLOR=1
    assert code == 0 and "ok" in out
    assert not ANSI.search(out), out
    code, out = project.terminal("--no-color", "build", "-B", env={"NO_COLOR": None})
    assert code == 0 and "ok" in out
    assert not ANSI.search(out), out
    # The check can see escapes: a terminal without NO_COLOR gets the live view.
    code, out = project.terminal("build", "-B", env={"NO_COLOR": None, "TERM": "xterm"})
    assert code == 0
    assert ANSI.search(out)


SHOW = """#!/bin/sh
# what a command sees: its folder, its arguments, its environment
out="$1"; shift
{ echo "pwd=$PWD"; echo "args=$*"; env | grep -v '^_=' | sort; } > "$out"
"""


def test_a_command_without_shell_syntax_sees_what_it_would_under_sh(project):
    # "./show ..." has nothing for a shell to do, so it is started directly (as make does);
    # ": ; ./show ..." must go through sh. Both must see the same folder, PWD, arguments
    # and environment.
    project.flow("""
        [targets.direct]
        cwd = "sub"
        cmd = "../show ../out/direct.txt a  b"
        outputs = ["out/direct.txt"]
        env = ["FM_SEEN"]

        [targets.shell]
        cwd = "sub"
        cmd = ": ; ../show ../out/shell.txt a  b"
        outputs = ["out/shell.txt"]
        env = ["FM_SEEN"]
        """, {"show": SHOW, "sub/.keep": ""}, cache=False)
    project.path("show").chmod(0o755)
    assert project.build(env={"FM_SEEN": "yes"}) == {"direct": "built", "shell": "built"}
    direct, shell = project.read("out/direct.txt"), project.read("out/shell.txt")
    assert direct == shell
    assert f"pwd={project.path('sub').resolve()}\n" in direct
    assert "args=a b\n" in direct and "FM_SEEN=yes\n" in direct


def test_a_direct_command_fails_as_it_would_under_sh(project):
    project.flow("""
        [targets.exit3]
        cmd = "./exit3"

        [targets.missing]
        cmd = "no-such-program-anywhere --flag"

        [targets.no_hashbang]
        cmd = "./plain out/plain.txt"
        outputs = ["out/plain.txt"]
        """, {"exit3": "#!/bin/sh\necho about to fail\nexit 3\n",
              "plain": 'echo "ran by sh" > "$1"\n'}, cache=False)
    for name in ("exit3", "plain"):
        project.path(name).chmod(0o755)
    result = project.run("build", "-k", "--json", check=1)
    targets = {t["name"]: t for t in json.loads(result.stdout)["targets"]}
    assert targets["exit3"]["status"] == "failed" and "exit code 3" in targets["exit3"]["error"]
    assert targets["missing"]["status"] == "failed"
    assert "exit code 127" in targets["missing"]["error"]  # as sh reports it
    assert "no-such-program-anywhere" in result.stderr and "not found" in result.stderr
    assert "about to fail" in result.stderr
    assert targets["no_hashbang"]["status"] == "built"  # no #!: sh runs it, as it would
    assert project.read("out/plain.txt") == "ran by sh\n"
