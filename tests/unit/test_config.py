"""flowmake.config.load: loading flow.toml into a Project (matrix, interpolation, errors)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from flowmake.config import load as config
from flowmake.config import values
from flowmake.errors import ConfigError, UnknownParamError
from flowmake.model import Call, Shell

from .helpers import line_of

# -- the happy path -------------------------------------------------------------------


def test_load_reads_settings_params_and_targets(load_flow, tmp_path):
    project = load_flow("""
        [flow]
        default = ["report"]
        jobs = 3
        cache = false
        history = 7

        [flow.resources]
        cpu = 2

        [params]
        lr = 0.01

        [targets.report]
        help = "the report"
        cmd = "make-report > ${outputs}"
        outputs = ["reports/out.txt"]
        timeout = 10
        retries = 2
        always = true
        env = ["HOME"]
        resources = { cpu = 1 }
    """)
    assert project.root.resolve() == tmp_path.resolve()
    assert project.settings.default == ("report",)
    assert project.settings.jobs == 3
    assert project.settings.cache is None
    assert project.settings.history == 7
    assert project.settings.resources == {"cpu": 2}
    assert project.params == {"lr": 0.01}
    t = project.targets["report"]
    assert t.kind == "cmd"
    assert t.help == "the report"
    assert t.action == Shell("make-report > reports/out.txt")
    assert [o.path for o in t.outputs] == ["reports/out.txt"]
    assert (t.timeout, t.retries, t.always, t.env) == (10.0, 2, True, ("HOME",))
    assert t.resources == {"cpu": 1}


def test_default_settings_when_flow_table_is_absent(load_flow):
    project = load_flow("""
        [targets.a]
        cmd = "true"
    """)
    s = project.settings
    assert s.default == () and s.jobs is None and s.cache == ".flowmake/cache"
    assert s.executor == "local" and s.remote is None and s.remote_readonly is False


def test_targets_keep_declared_order(load_flow):
    project = load_flow("""
        [targets.zeta]
        cmd = "true"
        [targets.alpha]
        cmd = "true"
        [targets.mid]
        cmd = "true"
    """)
    assert list(project.targets) == ["zeta", "alpha", "mid"]


def test_python_target_with_table_inputs_outputs_and_version(load_flow):
    project = load_flow("""
        [targets.train]
        python = "pipeline.model:train"
        inputs = { df = "data/clean.parquet" }
        outputs = { model = "models/model.pkl", metrics = "reports/metrics.json" }
        version = 3
    """)
    t = project.targets["train"]
    assert t.kind == "python"
    assert t.action == Call("pipeline.model:train", "3")
    assert [(i.name, i.path) for i in t.inputs] == [("df", "data/clean.parquet")]
    assert [(o.key, o.path) for o in t.outputs] == [
        ("model", "models/model.pkl"), ("metrics", "reports/metrics.json")]


def test_paths_are_normalised_and_urls_kept(load_flow):
    project = load_flow("""
        [targets.a]
        cmd = "true"
        inputs = ["./data//raw.csv", "s3://bucket/x.csv", "src/**/*.py"]
        outputs = ["out/./a/../b.txt"]
    """)
    t = project.targets["a"]
    assert [i.path for i in t.inputs] == ["data/raw.csv", "s3://bucket/x.csv", "src/**/*.py"]
    assert [(i.url, i.glob) for i in t.inputs] == [(False, False), (True, False), (False, True)]
    assert [o.path for o in t.outputs] == ["out/b.txt"]


def test_absolute_output_inside_root_becomes_relative(load_flow, tmp_path):
    inside = tmp_path / "out" / "x.txt"
    project = load_flow(f"""
        [targets.a]
        cmd = "true"
        outputs = ["{inside}"]
    """)
    assert [o.path for o in project.targets["a"].outputs] == ["out/x.txt"]


# -- matrix ---------------------------------------------------------------------------


def test_matrix_expands_to_sorted_key_instance_names(load_flow):
    project = load_flow("""
        [targets.sweep]
        matrix = { lr = [0.1, 0.01], depth = [3, 5] }
        cmd = "fit --lr ${lr} --depth ${depth} --out ${outputs}"
        outputs = ["models/fit-${lr}-${depth}.pkl"]
    """)
    names = list(project.targets)
    assert sorted(names) == sorted([
        "sweep[depth=3,lr=0.1]", "sweep[depth=3,lr=0.01]",
        "sweep[depth=5,lr=0.1]", "sweep[depth=5,lr=0.01]",
    ])
    t = project.targets["sweep[depth=3,lr=0.1]"]
    assert t.matrix == "sweep"
    assert t.params == {"depth": 3, "lr": 0.1}
    assert t.action.command == "fit --lr 0.1 --depth 3 --out models/fit-0.1-3.pkl"
    assert [o.path for o in t.outputs] == ["models/fit-0.1-3.pkl"]


def test_matrix_names_format_booleans_and_strings(load_flow):
    project = load_flow("""
        [targets.m]
        matrix = { flag = [true, false], name = ["a"] }
        cmd = "run ${flag} ${name}"
        outputs = ["o-${flag}-${name}.txt"]
    """)
    assert set(project.targets) == {"m[flag=true,name=a]", "m[flag=false,name=a]"}
    t = project.targets["m[flag=true,name=a]"]
    assert t.params["flag"] is True
    assert t.action.command == "run true a"
    assert t.outputs[0].path == "o-true-a.txt"


def test_plain_target_has_no_matrix(load_flow):
    project = load_flow("""
        [targets.a]
        cmd = "true"
    """)
    assert project.targets["a"].matrix is None


# -- interpolation --------------------------------------------------------------------


def test_whole_string_reference_keeps_the_toml_type(load_flow):
    project = load_flow("""
        [params]
        lr = 0.01
        seed = 42
        tags = ["a", "b"]
        on = true

        [targets.train]
        python = "m:f"
        params = { lr = "${params.lr}", seed = "${params.seed}", tags = "${params.tags}", on = "${params.on}" }
    """)
    params = project.targets["train"].params
    assert params == {"lr": 0.01, "seed": 42, "tags": ["a", "b"], "on": True}
    assert type(params["lr"]) is float and type(params["seed"]) is int
    assert params["on"] is True


def test_reference_inside_a_longer_string_is_formatted(load_flow):
    project = load_flow("""
        [params]
        lr = 0.01
        on = false
        tags = ["a", "b"]

        [targets.t]
        python = "m:f"
        params = { label = "lr=${params.lr}", mode = "on:${params.on}", t = "[${params.tags}]" }
    """)
    assert project.targets["t"].params == {"label": "lr=0.01", "mode": "on:false", "t": "[a b]"}


def test_double_dollar_is_a_literal_dollar(load_flow):
    project = load_flow("""
        [targets.t]
        cmd = "echo $$HOME and $${notaref} costs $$5"
    """)
    assert project.targets["t"].action.command == "echo $HOME and ${notaref} costs $5"


def test_inputs_and_outputs_are_shell_quoted(load_flow):
    project = load_flow("""
        [targets.t]
        cmd = "cat ${inputs} > ${outputs}"
        inputs = ["data/my file.csv", "data/plain.csv"]
        outputs = ["out/it's.txt"]
    """)
    command = project.targets["t"].action.command
    assert command == (f"cat {shlex.quote('data/my file.csv')} data/plain.csv > "
                       f"{shlex.quote(chr(39).join(['out/it', 's.txt']))}")
    # What the shell sees is the exact list of paths.
    assert shlex.split(command.split(" > ")[0]) == ["cat", "data/my file.csv", "data/plain.csv"]
    assert shlex.split(command.split(" > ")[1]) == ["out/it's.txt"]


def test_named_inputs_and_outputs(load_flow):
    project = load_flow("""
        [targets.t]
        cmd = "join ${inputs.left} ${inputs.right} -o ${outputs.table}"
        inputs = { left = "a.csv", right = "b c.csv" }
        outputs = { table = "out/t.csv" }
    """)
    assert project.targets["t"].action.command == "join a.csv 'b c.csv' -o out/t.csv"


def test_inputs_relative_to_cwd(load_flow):
    project = load_flow("""
        [targets.t]
        cwd = "sub"
        cmd = "tool ${inputs} ${outputs}"
        inputs = ["sub/in.txt", "other/x.txt"]
        outputs = ["sub/out/o.txt"]
    """)
    t = project.targets["t"]
    assert t.action.command == "tool in.txt ../other/x.txt out/o.txt"
    assert t.action.cwd == "sub"
    assert t.action.text == "cd sub && tool in.txt ../other/x.txt out/o.txt"


def test_cwd_dot_is_the_project_root(load_flow):
    project = load_flow("""
        [targets.t]
        cwd = "."
        cmd = "tool ${outputs}"
        outputs = ["out/o.txt"]
    """)
    t = project.targets["t"]
    assert t.action.cwd == ""
    assert t.action.command == "tool out/o.txt"


def test_the_commented_example_flow_loads(tmp_path):
    example = Path(__file__).resolve().parents[2] / "flow.toml.example"
    (tmp_path / "flow.toml").write_text(example.read_text())
    project = config.load(tmp_path / "flow.toml")
    assert project.targets  # every key of the contract, and it is all valid


def test_own_params_and_project_params_in_cmd(load_flow):
    project = load_flow("""
        [params]
        seed = 7

        [targets.t]
        cmd = "run --n ${n} --seed ${params.seed}"
        params = { n = 10 }
    """)
    t = project.targets["t"]
    assert t.action.command == "run --n 10 --seed 7"
    assert t.params == {"n": 10}
    assert t.project_params == {"seed": 7}


def test_only_referenced_project_params_are_recorded(load_flow):
    project = load_flow("""
        [params]
        lr = 0.01
        seed = 42
        unused = "x"

        [targets.clean]
        cmd = "clean"

        [targets.train]
        python = "m:train"
        params = { lr = "${params.lr}" }

        [targets.fit]
        cmd = "fit --seed ${params.seed} -o ${params.seed}.out"
    """)
    assert project.targets["clean"].project_params == {}
    assert project.targets["train"].project_params == {"lr": 0.01}
    assert project.targets["fit"].project_params == {"seed": 42}


def test_project_params_in_paths(load_flow):
    project = load_flow("""
        [params]
        version = 2

        [targets.t]
        cmd = "true"
        outputs = ["out/v${params.version}.txt"]
        inputs = ["${params.version}"]
    """)
    t = project.targets["t"]
    assert t.outputs[0].path == "out/v2.txt"
    assert t.inputs[0].path == "2"  # a whole reference to a number becomes a path string
    assert t.project_params == {"version": 2}


# -- overrides ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("n=3", ("n", 3)),
    ("lr=0.1", ("lr", 0.1)),
    ("name=abc", ("name", "abc")),
    ("flag=true", ("flag", True)),
    ("flag=false", ("flag", False)),
    ('s="quoted"', ("s", "quoted")),
    ("xs=[1, 2]", ("xs", [1, 2])),
    (" spaced = 4", ("spaced", 4)),
    ("path=data/x.csv", ("path", "data/x.csv")),
])
def test_parse_override_reads_a_toml_literal(text, expected):
    name, value = values.parse_override(text)
    assert (name, value) == expected
    assert type(value) is type(expected[1])


@pytest.mark.parametrize("text", ["novalue", "=3", ""])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        values.parse_override(text)


def test_overrides_replace_project_params(load_flow):
    project = load_flow("""
        [params]
        lr = 0.01
        epochs = 3

        [targets.t]
        cmd = "train --lr ${params.lr}"
    """, overrides=dict([values.parse_override("lr=0.5")]))
    assert project.params == {"lr": 0.5, "epochs": 3}
    t = project.targets["t"]
    assert t.action.command == "train --lr 0.5"
    assert t.project_params == {"lr": 0.5}


def test_override_of_an_unknown_param_suggests(load_flow):
    with pytest.raises(UnknownParamError) as info:
        load_flow("""
            [params]
            seed = 1
            [targets.t]
            cmd = "true"
        """, overrides={"sed": 2})
    assert info.value.name == "sed"
    assert info.value.suggestion == "seed"
    assert info.value.exit_code == 2


def test_find_file(tmp_path):
    (tmp_path / "flow.toml").write_text("")
    (tmp_path / "other.toml").write_text("")
    assert config.find_file(tmp_path, None) == (tmp_path / "flow.toml").resolve()
    assert config.find_file(tmp_path, "other.toml") == (tmp_path / "other.toml").resolve()
    with pytest.raises(ConfigError, match="no such file"):
        config.find_file(tmp_path, "missing.toml")
    (tmp_path / "flow.toml").unlink()
    with pytest.raises(ConfigError, match=r"no flow\.toml"):
        config.find_file(tmp_path, None)


# -- errors: every one names the key and its line ---------------------------------------


def _error(write_flow, text: str) -> tuple[ConfigError, Path]:
    path = write_flow(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    return info.value, path


ERROR_CASES = [
    # (id, flow.toml, expected key, text on the offending line, message fragment)
    ("unknown-target-key", """
        [targets.t]
        cmd = "true"
        dep = ["x"]
     """, "targets.t.dep", "dep =", "did you mean 'deps'"),
    ("unknown-flow-key", """
        [flow]
        job = 2
        [targets.t]
        cmd = "true"
     """, "flow.job", "job =", "did you mean 'jobs'"),
    ("deps-not-a-list", """
        [targets.clean]
        cmd = "true"

        [targets.train]
        cmd = "true"
        deps = "clean"
     """, "targets.train.deps", "deps =", "expected an array of strings, got a string"),
    ("deps-item-not-a-string", """
        [targets.t]
        cmd = "true"
        deps = ["a", 3]
     """, "targets.t.deps", "deps =", "expected an array of strings"),
    ("timeout-string", """
        [targets.t]
        cmd = "true"
        timeout = "1h"
     """, "targets.t.timeout", "timeout =", "expected a number of seconds, got a string"),
    ("timeout-negative", """
        [targets.t]
        cmd = "true"
        timeout = -1
     """, "targets.t.timeout", "timeout =", "must be positive"),
    ("retries-negative", """
        [targets.t]
        cmd = "true"
        retries = -1
     """, "targets.t.retries", "retries =", "must not be negative"),
    ("always-not-bool", """
        [targets.t]
        cmd = "true"
        always = "yes"
     """, "targets.t.always", "always =", "expected true or false, got a string"),
    ("jobs-bool", """
        [flow]
        jobs = true
     """, "flow.jobs", "jobs =", "expected an integer, got a boolean"),
    ("jobs-zero", """
        [flow]
        jobs = 0
     """, "flow.jobs", "jobs =", "must be at least 1"),
    ("resource-negative", """
        [flow.resources]
        cpu = -2
     """, "flow.resources.cpu", "cpu =", "must not be negative"),
    ("cmd-not-string", """
        [targets.t]
        cmd = ["echo", "hi"]
     """, "targets.t.cmd", "cmd =", "expected a string, got an array"),
    ("bad-python-function", """
        [targets.t]
        python = "pipeline.steps.clean"
     """, "targets.t.python", "python =", "expected 'module:function'"),
    ("both-cmd-and-python", """
        [targets.ok]
        cmd = "true"

        [targets.both]
        cmd = "true"
        python = "m:f"
     """, "targets.both", "[targets.both]", "exactly one of 'cmd' or 'python'"),
    ("neither-cmd-nor-python", """
        [targets.none]
        help = "nothing to run"
     """, "targets.none", "[targets.none]", "exactly one of 'cmd' or 'python'"),
    ("target-not-a-table", """
        [targets]
        t = "echo"
     """, "targets.t", "t =", "expected a table, got a string"),
    ("bad-target-name", """
        [targets."bad name"]
        cmd = "true"
     """, "targets.bad name", "[targets.", "letters, digits"),
    ("unknown-reference", """
        [params]
        seed = 1

        [targets.t]
        cmd = "run ${sed}"
     """, "targets.t.cmd", "cmd =", "unknown reference '${sed}'"),
    ("unknown-project-param-suggests", """
        [params]
        seed = 1

        [targets.t]
        cmd = "run ${params.sed}"
     """, "targets.t.cmd", "cmd =", "did you mean '${params.seed}'?"),
    ("unknown-reference-in-param-subtable", """
        [targets.t]
        python = "m:f"

        [targets.t.params]
        a = 1
        x = "${params.nope}"
     """, "targets.t.params.x", "x =", "unknown reference"),
    ("unknown-reference-in-output", """
        [targets.t]
        cmd = "true"
        outputs = ["out/${missing}.txt"]
     """, "targets.t.outputs", "outputs =", "unknown reference '${missing}'"),
    ("inputs-in-python-params", """
        [targets.t]
        python = "m:f"
        inputs = ["a"]
        params = { p = "${inputs}" }
     """, "targets.t.params.p", "params =", "unknown reference '${inputs}'"),
    ("inline-table-output-not-a-path", """
        [targets.t]
        cmd = "true"
        outputs = { model = 3 }
     """, "targets.t.outputs.model", "outputs =", "expected a path, got an integer"),
    ("output-outside-root", """
        [targets.t]
        cmd = "true"
        outputs = ["../escape.txt"]
     """, "targets.t.outputs", "outputs =", "outside the project root"),
    ("output-is-root", """
        [targets.t]
        cmd = "true"
        outputs = ["."]
     """, "targets.t.outputs", "outputs =", "project root itself"),
    ("output-glob", """
        [targets.t]
        cmd = "true"
        outputs = ["out/*.txt"]
     """, "targets.t.outputs", "outputs =", "cannot be a glob"),
    ("empty-path", """
        [targets.t]
        cmd = "true"
        inputs = [""]
     """, "targets.t.inputs", "inputs =", "empty path"),
    ("cwd-outside-root", """
        [targets.t]
        cmd = "true"
        cwd = "../elsewhere"
     """, "targets.t.cwd", "cwd =", "outside the project root"),
    ("duplicate-outputs", """
        [targets.a]
        cmd = "true"
        outputs = ["data/x.csv"]

        [targets.b]
        cmd = "true"
        outputs = ["data/y.csv", "./data/x.csv"]
     """, "targets.b.outputs", "outputs = [\"data/y.csv\"", "also an output of target 'a'"),
    ("duplicate-outputs-within-matrix", """
        [targets.m]
        matrix = { n = [1, 2] }
        cmd = "true"
        outputs = ["same.txt"]
     """, "targets.m.outputs", "outputs =", "also an output of target 'm[n=1]'"),
    ("matrix-not-table", """
        [targets.m]
        cmd = "true"
        matrix = [1, 2]
     """, "targets.m.matrix", "matrix =", "expected a table of arrays"),
    ("matrix-value-not-array", """
        [targets.m]
        cmd = "true"
        matrix = { lr = 0.1 }
     """, "targets.m.matrix.lr", "matrix =", "expected an array, got a number"),
    ("matrix-empty-values", """
        [targets.m]
        cmd = "true"
        matrix = { lr = [] }
     """, "targets.m.matrix.lr", "matrix =", "at least one value"),
    ("matrix-empty", """
        [targets.m]
        cmd = "true"
        matrix = {}
     """, "targets.m.matrix", "matrix =", "at least one key"),
    ("default-unknown-target", """
        [flow]
        default = ["reprot"]

        [targets.report]
        cmd = "true"
     """, "flow.default", "default =", "did you mean 'report'"),
    ("params-not-a-table", """
        params = 3
        [targets.t]
        cmd = "true"
     """, "params", "params =", "expected a table, got an integer"),
    ("version-wrong-type", """
        [targets.t]
        python = "m:f"
        version = [1]
     """, "targets.t.version", "version =", "expected a string, got an array"),
    ("key-after-multiline-string", """
        [targets.t]
        cmd = \"\"\"
        [targets.fake]
        deps = 1
        \"\"\"
        help = "h"
        deps = "not a list"
     """, "targets.t.deps", "deps = \"not", "expected an array of strings"),
    ("dotted-keys-under-targets", """
        [targets]
        t.cmd = "true"
        t.retries = "two"
     """, "targets.t.retries", "t.retries", "expected an integer, got a string"),
    ("inline-target-table", """
        [targets]
        a = { cmd = "true" }
        b = { cmd = "true", deps = 5 }
     """, "targets.b.deps", "b = {", "expected an array of strings, got an integer"),
]


@pytest.mark.parametrize(("text", "key", "needle", "fragment"),
                         [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_config_errors_name_key_and_line(write_flow, text, key, needle, fragment):
    error, path = _error(write_flow, text)
    assert error.key == key
    assert error.line == line_of(path, needle)
    assert fragment in error.detail
    assert error.file == "flow.toml"
    assert str(error).startswith(f"flow.toml:{error.line}: {key}: ")
    assert error.exit_code == 2


def test_overlapping_outputs_are_rejected(write_flow):
    error, path = _error(write_flow, """
        [targets.a]
        cmd = "rm -rf models && mkdir models && echo a > models/a.txt"
        outputs = ["models"]

        [targets.b]
        cmd = "echo b > ${outputs}"
        outputs = ["models/b.txt"]
    """)
    assert error.key == "targets.b.outputs"
    assert error.line == line_of(path, 'outputs = ["models/b.txt"]')


def test_negative_history_is_rejected(write_flow):
    error, path = _error(write_flow, """
        [flow]
        history = -1
    """)
    assert error.key == "flow.history"
    assert error.line == line_of(path, "history =")


def test_invalid_toml_reports_the_parser_line(write_flow):
    error, path = _error(write_flow, """
        [targets.t]
        cmd = "true"
        help = "unterminated
    """)
    assert error.line == line_of(path, "help =")
    assert "invalid TOML" in error.detail
    assert "(at line" not in error.detail  # the position moved into .line


def test_redeclared_table_is_invalid_toml_with_line(write_flow):
    error, _ = _error(write_flow, """
        [targets.a]
        cmd = "x"
        [targets.a]
        cmd = "y"
    """)
    assert "invalid TOML" in error.detail
    assert error.line == 3


def test_not_utf8(tmp_path):
    path = tmp_path / "flow.toml"
    path.write_bytes(b'[targets.t]\ncmd = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(path)


def test_unknown_top_level_key_names_key_and_line(write_flow):
    error, path = _error(write_flow, """
        [targets.t]
        cmd = "true"

        [flw]
        jobs = 2
    """)
    assert error.key == "flw"
    assert error.line == line_of(path, "[flw]")
    assert "did you mean 'flow'" in error.detail


def test_unknown_top_level_plain_key(write_flow):
    error, path = _error(write_flow, """
        # a comment
        version = 2

        [targets.t]
        cmd = "true"
    """)
    assert error.key == "version"
    assert error.line == line_of(path, "version = 2")
    assert str(error).startswith(f"flow.toml:{error.line}: version: unknown key")


def test_config_error_str_without_line_or_key():
    err = ConfigError("boom", key="targets.t.deps")
    assert str(err) == "flow.toml: targets.t.deps: boom"
    err = ConfigError("boom", file="x.toml", line=4)
    assert str(err) == "x.toml:4: boom"

