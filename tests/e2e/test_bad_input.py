"""flow.toml and command-line input that used to crash flowmake or be silently accepted.

Each case runs the real command: exit 2, one short ``flowmake: error:`` line naming the
file, line, key or path, and never a traceback. Bounds are in docs/reference.md ("Limits").
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

import pytest

SIMPLE = """
[targets.x]
cmd = "echo hi > ${outputs}"
outputs = ["out.txt"]
"""


def error_line(result) -> str:
    """The one ``flowmake: error:`` line of a refused command (exit 2, no traceback)."""
    where = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, where
    assert "Traceback" not in result.stderr, where
    errors = [line for line in result.stderr.splitlines() if line.startswith("flowmake: error:")]
    assert len(errors) == 1, where
    other = [line for line in result.stderr.splitlines()
             if line not in errors and not line.startswith("  hint:") and "usage:" not in line]
    assert not other, where
    return errors[0]


def refused(project, flow: str, *args: str, command: tuple[str, ...] = ("build",)) -> str:
    project.flow(flow)
    return error_line(project.run(*command, *args))


# -- 1, 2: numbers ------------------------------------------------------------------------

NUMBERS = {
    "request-nan": ('[targets.x]\ncmd = "true"\nresources = { cpu = nan }\n',
                    "flow.toml:3: targets.x.resources.cpu: must be a finite number, got nan"),
    "request-inf": ('[targets.x]\ncmd = "true"\nresources = { cpu = inf }\n',
                    "targets.x.resources.cpu: must be a finite number, got inf"),
    "request-negative": ('[targets.x]\ncmd = "true"\nresources = { gpu = -1 }\n',
                         "targets.x.resources.gpu: must not be negative"),
    "request-huge": ('[targets.x]\ncmd = "true"\nresources = { mem = 1e13 }\n',
                     "targets.x.resources.mem: must be at most 1e+12"),
    # A capacity no target uses is checked all the same.
    "capacity-nan": ('[flow.resources]\ncpu = nan\n[targets.x]\ncmd = "true"\n',
                     "flow.toml:2: flow.resources.cpu: must be a finite number, got nan"),
    "capacity-neg-inf": ('[flow.resources]\nmem_gb = -inf\n[targets.x]\ncmd = "true"\n',
                         "flow.resources.mem_gb: must be a finite number"),
    "timeout-nan": ('[targets.x]\ncmd = "true"\ntimeout = nan\n',
                    "flow.toml:3: targets.x.timeout: must be a finite number, got nan"),
    "timeout-inf": ('[targets.x]\ncmd = "true"\ntimeout = inf\n',
                    "targets.x.timeout: must be a finite number, got inf"),
    "timeout-1e308": ('[targets.x]\ncmd = "true"\ntimeout = 1e308\n',
                      "targets.x.timeout: must be at most 1,000,000, got 1e+308"),
    "timeout-zero": ('[targets.x]\ncmd = "true"\ntimeout = 0\n',
                     "targets.x.timeout: must be positive"),
    "retries-huge": ('[targets.x]\ncmd = "false"\nretries = 1000000000000000000\n',
                     "flow.toml:3: targets.x.retries: must be at most 100, got 1e+18"),
    "retries-2**70": ('[targets.x]\ncmd = "false"\nretries = 1180591620717411303424\n',
                      "targets.x.retries: must be at most 100"),
    "jobs-huge": ('[flow]\njobs = 9223372036854775807\n[targets.x]\ncmd = "true"\n',
                  "flow.toml:2: flow.jobs: must be at most 1,024"),
    "history-huge": ('[flow]\nhistory = 99999999999999999999\n[targets.x]\ncmd = "true"\n',
                     "flow.toml:2: flow.history: must be at most 1,000,000"),
}


@pytest.mark.parametrize("case", NUMBERS)
def test_numbers_out_of_bounds_are_config_errors_naming_the_key(project, case):
    flow, expected = NUMBERS[case]
    line = refused(project, flow)
    assert line.startswith("flowmake: error: flow.toml:") and expected in line, line
    assert not project.exists(".flowmake/state.db")  # refused before any run was recorded


def test_numbers_at_their_bounds_are_accepted(project):
    project.flow("""
        [flow]
        jobs = 1024
        history = 1000000

        [flow.resources]
        cpu = 1e12

        [targets.x]
        cmd = "echo ok > ${outputs}"
        outputs = ["out.txt"]
        timeout = 1000000
        retries = 100
        resources = { cpu = 1e12, gpu = 0 }
    """, cache=False)
    assert project.build() == {"x": "built"}


def test_a_huge_matrix_is_refused_before_it_is_expanded(project):
    values = "[" + ", ".join(map(str, range(1000))) + "]"
    started = time.monotonic()
    line = refused(project, f"""
        [targets.sweep]
        matrix = {{ a = {values}, b = {values} }}
        cmd = "echo ${{a}} ${{b}}"
    """, command=("list",))
    assert time.monotonic() - started < 10  # it took more than 30 s to expand
    assert "flow.toml:2: targets.sweep.matrix: expands to 1,000,000 instances" in line
    assert "at most 100,000" in line


def test_targets_in_all_are_bounded_too(project):
    # 1 + 100,000 targets: refused before the matrix is expanded.
    a = "[" + ", ".join(map(str, range(1000))) + "]"
    b = "[" + ", ".join(map(str, range(100))) + "]"
    line = refused(project, f"""
        [targets.one]
        cmd = "true"

        [targets.sweep]
        matrix = {{ a = {a}, b = {b} }}
        cmd = "true"
    """, command=("list",))
    assert "flow.toml:5: targets.sweep.matrix: the flow has more than 100,000 targets" in line


@pytest.mark.parametrize(("matrix", "expected"), [
    ("{ a = [[1], [2]] }", "targets.m.matrix.a: a matrix value must be a string, number or"
                           " boolean, got an array"),
    ("{ a = [{ x = 1 }] }", "targets.m.matrix.a: a matrix value must be"),
    ("{ a = [1, 1] }", "targets.m.matrix.a: the value '1' is listed twice"),
    ("{ a = [true, 'true'] }", "targets.m.matrix.a: the value 'true' is listed twice"),
])
def test_matrix_values_must_name_distinct_instances(project, matrix, expected):
    line = refused(project, f'[targets.m]\nmatrix = {matrix}\ncmd = "true"\n',
                   command=("list",))
    assert f"flow.toml:2: {expected}" in line


# -- 3: bytes that are not UTF-8 ---------------------------------------------------------


def test_a_param_value_that_is_not_utf8_is_a_usage_error(project):
    project.flow('[params]\nx = "a"\n[targets.t]\ncmd = "echo ${params.x}"\n')
    line = error_line(project.run("build", "-p", "x=\udcff"))  # the byte 0xff, as argv has it
    assert line == r"flowmake: error: command line: -p x=\xff: not valid UTF-8 text"
    assert not project.exists(".flowmake/state.db")  # no run recorded


@pytest.mark.parametrize("command", ["build", "status", "log", "why", "graph", "clean",
                                     "accept"])
def test_a_target_name_that_is_not_utf8_is_a_usage_error(project, command):
    project.flow(SIMPLE)
    line = error_line(project.run(command, "\udcff"))
    assert line == r"flowmake: error: '\xff': not valid UTF-8 text"


def test_a_project_folder_named_with_non_utf8_bytes_works(make_project):
    project = make_project("bad\udcffname")  # the folder's name holds the byte 0xff
    project.flow(SIMPLE)
    for args in (["status"], ["list"], ["build"], ["status"], ["log"], ["graph"]):
        result = project.run(*args)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    assert project.read("out.txt") == "hi\n"
    assert project.states()["x"]["state"] == "fresh"
    # From outside, with -C: the command line recorded in the history shows the byte.
    result = project.run("-C", str(project.root), "build", "-B", cwd=project.root.parent)
    assert result.returncode == 0, result.stderr
    [last, *_] = project.json("log")["runs"]
    shown = os.fsencode(shlex.quote(str(project.root))).decode("utf-8", "backslashreplace")
    assert last["command"] == f"flowmake -C {shown} build -B"
    assert "\\xff" in shown
    page = project.run("graph", "--format", "html", "-o", "graph.html", check=True)
    assert "Traceback" not in page.stderr
    assert "bad\ufffdname" in project.read("graph.html")


@pytest.mark.parametrize(("inputs", "shown"), [
    ('["src/*.txt"]', r"src/b\xff.txt"),   # matched by a glob
    ('["src"]', r"src/b\xff.txt"),         # inside an input folder
])
def test_an_input_file_named_with_non_utf8_bytes_is_an_error_naming_it(project, inputs, shown):
    project.flow(f"""
        [targets.t]
        cmd = "cat src/a.txt > ${{outputs}}"
        inputs = {inputs}
        outputs = ["out.txt"]
    """, {"src/a.txt": "a\n"})
    (project.root / "src" / "b\udcff.txt").write_text("b\n")
    for command in (["build"], ["status"], ["build", "-n"]):
        line = error_line(project.run(*command))
        assert line == f"flowmake: error: {shown}: the file name is not valid UTF-8"
    assert not project.exists("out.txt")


# -- 4: NUL bytes ------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ('outputs = ["a\\u0000b"]', "targets.x.outputs: a path cannot contain a NUL byte"),
    ('inputs = ["a\\u0000b"]', "targets.x.inputs: a path cannot contain a NUL byte"),
    ('inputs = { t = "\\u0000" }', "targets.x.inputs.t: a path cannot contain a NUL byte"),
    ('outputs = ["memory://b/\\u0000"]', "targets.x.outputs: a URL cannot contain a NUL byte"),
    ('cwd = "sub\\u0000"', "targets.x.cwd: a path cannot contain a NUL byte"),
    ('env = ["A\\u0000B"]', "targets.x.env: 'A\\x00B' is not an environment variable name"),
])
def test_a_nul_byte_in_a_path_is_a_config_error_naming_the_key(project, line, expected):
    result = refused(project, f'[targets.x]\ncmd = "true"\n{line}\n', command=("status",))
    assert f"flow.toml:3: {expected}" in result


def test_a_nul_byte_in_a_command_is_a_config_error(project):
    project.flow('[params]\nz = "\\u0000"\n[targets.x]\ncmd = "echo ${params.z}"\n')
    line = error_line(project.run("build"))
    assert line == "flowmake: error: flow.toml:4: targets.x.cmd: a command cannot contain a" \
                   " NUL byte"


# -- 5: long chains ----------------------------------------------------------------------


def chain(n: int) -> str:
    parts = ["[flow]\ncache = false\n"]
    for i in range(n):
        deps = f'deps = ["t{i - 1}"]\n' if i else ""
        parts.append(f'[targets.t{i}]\ncmd = "true"\n{deps}')
    return "\n".join(parts)


def check_chain(project, n: int) -> None:
    project.flow(chain(n))
    for args in (["status"], ["status", "--json"], ["graph"], ["graph", "--format", "json"],
                 ["build", "-n"], ["list"]):
        result = project.run(*args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    tree = project.run("status").stdout.splitlines()
    assert len(tree) == n
    assert tree[0] == f"t{n - 1}: stale (upstream stale: t{n - 2}; never built)"
    assert tree[-1] == "  " * (n - 1) + "└─ t0: stale (never built)"
    graph = project.run("graph").stdout.splitlines()
    assert len(graph) == n and graph[-1].endswith("└── t0")


def test_a_chain_of_1000_deps_has_a_status_and_a_graph(project):
    check_chain(project, 1000)


@pytest.mark.slow
def test_a_chain_of_5000_deps_has_a_status_and_a_graph(project):
    check_chain(project, 5000)


# -- 6: nesting --------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["[" * 500 + "]" * 500,
                                   "{ a = " * 500 + "1" + " }" * 500,
                                   "[" * 150 + "]" * 150])
def test_deeply_nested_toml_is_a_config_error(project, value):
    line = refused(project, f'[params]\np = {value}\n[targets.x]\ncmd = "true"\n',
                   command=("list",))
    assert "nested" in line and "100" in line
    assert line.startswith("flowmake: error: flow.toml")


def test_nesting_within_the_bound_works(project):
    project.flow(f'[params]\np = {"[" * 50 + "1" + "]" * 50}\n'
                 '[targets.x]\ncmd = "echo ${params.p} > ${outputs}"\noutputs = ["o.txt"]\n')
    project.build()
    assert project.read("o.txt") == "1\n"


def test_version_survives_a_deeply_nested_flow_file(project):
    project.flow("a = " + "[" * 800 + "]" * 800 + "\n")
    result = project.run("--version")
    assert result.returncode == 0 and "Traceback" not in result.stderr


# -- 7: graph -o -------------------------------------------------------------------------


def test_graph_output_into_a_directory_is_a_usage_error(project):
    project.flow(SIMPLE)
    project.path("site").mkdir()
    line = error_line(project.run("graph", "-o", "site"))
    assert line == "flowmake: error: -o site: is a directory"
    line = error_line(project.run("graph", "-o", "flow.toml/graph.txt"))
    assert line == "flowmake: error: -o flow.toml/graph.txt: cannot write: a parent of it is" \
                   " not a folder"


def test_graph_output_makes_missing_folders(project):
    project.flow(SIMPLE)
    project.run("graph", "-o", "new/deeper/graph.txt", check=True)
    assert project.read("new/deeper/graph.txt") == "x\n"


# -- 8: plugins --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "evil/x", "a b", "", "1st", "a..b", "x."])
def test_plugins_must_be_module_names(project, name):
    line = refused(project, f'[flow]\nplugins = ["{name}"]\n' + SIMPLE)
    assert line.startswith("flowmake: error: flow.toml:2: flow.plugins:")
    assert f"'{name}' is not a Python module name" in line
    result = project.run("--version")
    assert result.returncode == 0 and "Traceback" not in result.stderr


# -- 9: cycles of one, and outputs that are flowmake's own files -------------------------


@pytest.mark.parametrize(("lines", "key"), [
    ('deps = ["x"]', "targets.x.deps"),
    ('inputs = ["out.txt"]', "targets.x.inputs"),
    ('inputs = ["*.txt"]', "targets.x.inputs"),
])
def test_a_target_that_depends_on_itself_is_a_cycle(project, lines, key):
    line = refused(project, SIMPLE + lines + "\n", command=("status",))
    assert line.startswith(f"flowmake: error: flow.toml:4: {key}: dependency cycle: x -> x")


@pytest.mark.parametrize(("output", "expected"), [
    ("flow.toml", "'flow.toml' is the flow file itself"),
    (".flowmake/state.db", "would overwrite flowmake's state folder '.flowmake'"),
    (".flowmake", "would overwrite flowmake's state folder"),
    (".", "the project root itself cannot be an output"),
    ("sub/..", "the project root itself cannot be an output"),
])
def test_flowmakes_own_files_cannot_be_outputs(project, output, expected):
    line = refused(project, f'[targets.x]\ncmd = "true"\noutputs = ["{output}"]\n',
                   command=("clean", "--all"))
    assert line.startswith("flowmake: error: flow.toml:3: targets.x.outputs:")
    assert expected in line
    assert project.exists("flow.toml")


def test_the_file_given_with_f_cannot_be_an_output(project):
    project.write("other.toml", '[targets.x]\ncmd = "true"\noutputs = ["other.toml"]\n')
    line = error_line(project.run("-f", "other.toml", "clean", "--all"))
    assert "other.toml:3: targets.x.outputs: 'other.toml' is the flow file itself" in line
    assert project.exists("other.toml")


def test_the_cache_folder_cannot_hold_outputs(project):
    line = refused(project, '[flow]\ncache = "store"\n'
                            '[targets.x]\ncmd = "true"\noutputs = ["store/blobs"]\n')
    assert "targets.x.outputs: 'store/blobs' would overwrite the artifact cache" in line


# -- 10: -f, -C and -p -------------------------------------------------------------------


def test_f_names_what_it_really_is(project, tmp_path):
    project.flow(SIMPLE)
    assert error_line(project.run("-f", "/dev/null", "list")) == \
        "flowmake: error: /dev/null: not a regular file (a device, FIFO or socket)"
    assert error_line(project.run("-f", str(tmp_path), "list")) == \
        f"flowmake: error: {tmp_path}: is a directory, not a flow file"
    assert error_line(project.run("-f", "missing.toml", "list")) == \
        "flowmake: error: missing.toml: no such file"
    assert error_line(project.run("-C", "flow.toml", "list")) == \
        "flowmake: error: -C flow.toml: not a directory"


PARAM_FLOW = """
[params]
v = "default"

[targets.t]
cmd = "echo ${params.v} > ${outputs}"
outputs = ["out.txt"]
"""


@pytest.mark.parametrize("value", ["[1,", "{a = ", '"open', "'open", "1.2.3", "+x", "-v",
                                   "trueish", "1e", "[" * 1000 + "]" * 1000])
def test_a_param_that_starts_like_a_toml_literal_must_be_one(project, value):
    project.flow(PARAM_FLOW, cache=False)
    line = error_line(project.run("build", "-p", f"v={value}"))
    assert line.startswith("flowmake: error: command line: -p v:")
    assert not project.exists("out.txt")


@pytest.mark.parametrize(("value", "written"), [
    ("hello", "hello"), ("data/x.csv", "data/x.csv"), ("hello world", "hello world"),
    ("s3://bucket/key", "s3://bucket/key"), ('"1.2.3"', "1.2.3"), ("[1, 2]", "1 2"),
    ("0.5", "0.5"), ("", ""), ("é", "é"),
])
def test_other_param_values_are_strings_as_written(project, value, written):
    project.flow(PARAM_FLOW, cache=False)
    project.build("-p", f"v={value}")
    assert project.read("out.txt") == written + "\n"


def test_the_hint_says_how_to_quote(project):
    project.flow(PARAM_FLOW)
    result = project.run("build", "-p", "v=1.2.3")
    assert error_line(result) == \
        "flowmake: error: command line: -p v: '1.2.3' starts like a TOML value but is not one"
    assert """  hint: for the string, quote it: -p 'v="1.2.3"'""" in result.stderr.splitlines()


# -- 11: other values --------------------------------------------------------------------


@pytest.mark.parametrize(("flow", "expected"), [
    ('[flow]\ncache = ""\n' + SIMPLE, "flow.toml:2: flow.cache: empty path"),
    ('[flow]\ncache = "."\n' + SIMPLE, "flow.cache: the project root itself cannot be"),
    ('[targets.x]\ncmd = "true"\nenv = [""]\n', "targets.x.env: '' is not an environment"),
    ('[targets.x]\ncmd = "true"\nenv = ["A=B"]\n', "targets.x.env: 'A=B' is not an environ"),
    ('[targets.x]\ncmd = "true"\ncwd = "../elsewhere"\n', "targets.x.cwd: '../elsewhere' is"
                                                          " outside the project root"),
    ('[flow]\njobs = 1979-05-27\n' + SIMPLE, "flow.jobs: expected an integer, got a date"),
])
def test_other_values_are_checked(project, flow, expected):
    assert expected in refused(project, flow, command=("list",))


def test_status_json_of_a_refused_flow_prints_no_document(project):
    project.flow('[targets.x]\ncmd = "true"\ntimeout = nan\n')
    result = project.run("status", "--json")
    error_line(result)
    assert result.stdout == ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stdout)


def test_bounds_are_documented():
    readme = (Path(__file__).parents[2] / "docs" / "reference.md").read_text(encoding="utf-8")
    for text in ("1,000,000 (about 11.5 days", "0 to 100", "1 to 1024", "1 to 1,000,000",
                 "100,000 instances", "100 deep", "dotted module names"):
        assert text in readme
