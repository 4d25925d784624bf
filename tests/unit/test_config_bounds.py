"""flowmake.config.values: the bounds on numbers, nesting and names, and the -p value rule."""

from __future__ import annotations

import pytest

from flowmake.config import load, matrix
from flowmake.config import values as config
from flowmake.errors import ConfigError

TARGET = '[targets.t]\ncmd = "true"\n'


def error_of(load_flow, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_flow(text)
    return info.value


# -- numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "key", "fragment"), [
    ("timeout = 1000000.5", "targets.t.timeout", "must be at most 1,000,000, got 1e+06"),
    ("timeout = -0.0", "targets.t.timeout", "must be positive"),
    ("timeout = nan", "targets.t.timeout", "must be a finite number, got nan"),
    ("timeout = -inf", "targets.t.timeout", "must be a finite number, got -inf"),
    ("retries = 101", "targets.t.retries", "must be at most 100, got 101"),
    ("retries = 1.5", "targets.t.retries", "expected an integer, got a number"),
    ("retries = true", "targets.t.retries", "expected an integer, got a boolean"),
    ("resources = { cpu = -0.5 }", "targets.t.resources.cpu", "must not be negative"),
    ("resources = { cpu = 1e12001 }", "targets.t.resources.cpu", "finite"),  # TOML: inf
])
def test_target_numbers_out_of_bounds(load_flow, line, key, fragment):
    error = error_of(load_flow, f"{TARGET}{line}\n")
    assert (error.key, error.line) == (key, 3)
    assert fragment in error.detail


def test_a_huge_integer_is_named_without_printing_it_whole(load_flow):
    error = error_of(load_flow, f"{TARGET}retries = {10**30}\n")
    assert error.detail == "must be at most 100, got 1e+30"
    assert config.number(10**5000) == "about 1e5000"


@pytest.mark.parametrize(("flow", "key"), [
    ("jobs = 0", "flow.jobs"), ("jobs = 1025", "flow.jobs"),
    ("history = 0", "flow.history"), ("history = 1000001", "flow.history"),
])
def test_flow_numbers_out_of_bounds(load_flow, flow, key):
    assert error_of(load_flow, f"[flow]\n{flow}\n{TARGET}").key == key


def test_the_bounds_themselves_are_accepted(load_flow):
    project = load_flow(f"""
[flow]
jobs = {config.MAX_JOBS}
history = {config.MAX_HISTORY}

[flow.resources]
cpu = {config.MAX_AMOUNT}
gpu = 0

{TARGET}timeout = {config.MAX_TIMEOUT}
retries = {config.MAX_RETRIES}
resources = {{ cpu = {config.MAX_AMOUNT} }}
""")
    t = project.targets["t"]
    assert (t.timeout, t.retries, t.resources) == (1e6, 100, {"cpu": 1e12})
    assert project.settings.jobs == 1024 and project.settings.history == 1_000_000


# -- matrices -------------------------------------------------------------------------


def test_matrix_at_the_bound_is_counted_without_expanding(load_flow, monkeypatch):
    monkeypatch.setattr(matrix, "MAX_INSTANCES", 6)  # where the expansion reads it
    project = load_flow('[targets.m]\nmatrix = { a = [1, 2, 3], b = ["x", "y"] }\ncmd = "true"\n')
    assert len(project.targets) == 6
    error = error_of(load_flow, '[targets.m]\nmatrix = { a = [1, 2, 3, 4], b = [1, 2] }\n'
                                'cmd = "true"\n')
    assert (error.key, error.detail) == ("targets.m.matrix",
                                         "expands to 8 instances; at most 6 are allowed")
    error = error_of(load_flow, '[targets.one]\ncmd = "true"\n'
                                '[targets.m]\nmatrix = { a = [1, 2, 3], b = [1, 2] }\n'
                                'cmd = "true"\n')
    assert error.key == "targets.m.matrix" and "more than 6 targets" in error.detail


def test_matrix_values_keep_their_types_and_labels(load_flow):
    project = load_flow('[targets.m]\nmatrix = { a = [1, 1.0, "1.5", true] }\ncmd = "true"\n')
    assert {n: t.params["a"] for n, t in project.targets.items()} == {
        "m[a=1]": 1, "m[a=1.0]": 1.0, "m[a=1.5]": "1.5", "m[a=true]": True}


# -- nesting --------------------------------------------------------------------------


def test_too_deep_names_the_key_and_never_recurses():
    assert config.too_deep({"a": [[1]], "b": {"c": 2}}) is None
    deep: list = []
    for _ in range(10_000):  # far past Python's recursion limit
        deep = [deep]
    assert config.too_deep({"params": {"p": deep}}) == "params.p"
    at_bound: object = 1
    for _ in range(config.MAX_NESTING):
        at_bound = [at_bound]
    assert config.too_deep(at_bound) is None
    assert config.too_deep([at_bound]) is not None


def test_nesting_in_flow_toml_names_the_key(load_flow):
    value = "[" * 120 + "]" * 120
    error = error_of(load_flow, f"[params]\np = {value}\n{TARGET}")
    assert (error.key, error.line) == ("params.p", 2)
    assert error.detail == "arrays or tables nested more than 100 deep"


# -- names, paths ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "ok"), [
    ("myproj.flow_plugins", True), ("_x", True), ("a.b.c", True), ("../evil", False),
    ("/abs", False), ("a/b", False), ("", False), ("a.", False), (".a", False),
    ("1a", False), ("a b", False), ("é", False), (3, False),
])
def test_is_module_name(name, ok):
    assert config.is_module_name(name) is ok


@pytest.mark.parametrize(("cache", "output", "refused"), [
    ('"store"', "store/x", True), ('"store"', "store", True), ('"store/sub"', "store", True),
    ('"store"', "stores/x", False), ('"../elsewhere"', "elsewhere/x", False),
    ("false", ".flowmake-not/x", False),
])
def test_outputs_keep_out_of_the_cache_folder(load_flow, cache, output, refused):
    text = f'[flow]\ncache = {cache}\n{TARGET}outputs = ["{output}"]\n'
    if refused:
        assert "artifact cache" in error_of(load_flow, text).detail
    else:
        assert [o.path for o in load_flow(text).targets["t"].outputs] == [output]


# -- -p values ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("v=hello world", "hello world"), ("v=", ""), ("v=a=b", "a=b"), ("v=inf", float("inf")),
    ("v=1979-05-27", __import__("datetime").date(1979, 5, 27)), ("v=x[1", "x[1"),
    ("v=.5", ".5"), ("v=tru", "tru"),
])
def test_parse_override_other_values(text, expected):
    assert config.parse_override(text) == ("v", expected)


@pytest.mark.parametrize("text", ["v=[1,", "v={", 'v="a', "v='a", "v=1.2.3", "v=-x", "v=+",
                                  "v=truex", "v=false!", "v=  [", "v=0x"])
def test_parse_override_refuses_broken_literals(text):
    with pytest.raises(ConfigError, match=r"-p v: '.*' starts like a TOML value"):
        config.parse_override(text)


def test_parse_override_refuses_undecodable_bytes_and_deep_values():
    with pytest.raises(ConfigError, match=r"-p v=\\xff: not valid UTF-8"):
        config.parse_override("v=\udcff")
    with pytest.raises(ConfigError, match="nested more than 100 deep"):
        config.parse_override("v=" + "[" * 101 + "]" * 101)
    with pytest.raises(ConfigError, match="nested more than 100 deep"):
        config.parse_override("v=" + "[" * 5000 + "]" * 5000)  # tomllib's RecursionError


def test_printable_shows_undecodable_bytes_as_escapes():
    assert config.printable("plain é") == "plain é"
    assert config.printable("bad\udcffname") == r"bad\xffname"
    assert config.is_text("é") and not config.is_text("\udcff")


# -- find_file ------------------------------------------------------------------------


def test_find_file_says_what_the_path_is(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match="is a directory, not a flow file") as info:
        load.find_file(tmp_path, "sub")
    assert info.value.file == "sub"
    with pytest.raises(ConfigError, match="not a regular file"):
        load.find_file(tmp_path, "/dev/null")
    (tmp_path / "flow.toml").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        load.find_file(tmp_path, None)
