"""flowmake.errors: the exception tree, messages and exit codes."""

from __future__ import annotations

import pytest

from flowmake import errors
from flowmake.errors import (
    BuildFailed,
    ConfigError,
    CycleError,
    FlowmakeError,
    PluginError,
    UnknownParamError,
    UnknownTargetError,
    UsageError,
    suggest,
)


@pytest.mark.parametrize("cls", [ConfigError, UnknownTargetError, UnknownParamError, CycleError,
                                 PluginError, UsageError, BuildFailed])
def test_every_error_is_a_flowmake_error(cls):
    assert issubclass(cls, FlowmakeError)
    assert cls.__name__ in errors.__doc__


def test_the_tree_in_the_docstring_names_every_subclass_in_the_package():
    import importlib
    import pkgutil

    import flowmake

    for info in pkgutil.walk_packages(flowmake.__path__, "flowmake."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    found = {c.__name__ for c in subclasses(FlowmakeError)
             if c.__module__.partition(".")[0] == "flowmake"}  # not a plugin's (flowmake_notebook)
    assert {"StateError", "CannotAccept", "IndexUnusable"} <= found
    missing = sorted(n for n in found if n not in errors.__doc__)
    assert missing == []


def test_exit_codes():
    assert FlowmakeError("x").exit_code == 2
    assert ConfigError("x").exit_code == 2
    assert CycleError(["a", "b", "a"]).exit_code == 2
    assert BuildFailed(["a"], []).exit_code == 1


def test_config_error_formatting():
    err = ConfigError("unknown key", file="flow.toml", line=14, key="targets.train.deps",
                      hint="see docs")
    assert str(err) == "flow.toml:14: targets.train.deps: unknown key"
    assert (err.file, err.line, err.key, err.hint, err.detail) == (
        "flow.toml", 14, "targets.train.deps", "see docs", "unknown key")
    assert str(ConfigError("bad")) == "flow.toml: bad"


def test_unknown_target_and_param_messages():
    err = UnknownTargetError("clen", "clean")
    assert str(err) == "unknown target 'clen' (did you mean 'clean'?)"
    assert (err.name, err.suggestion) == ("clen", "clean")
    assert str(UnknownTargetError("zzz")) == "unknown target 'zzz'"
    param = UnknownParamError("sed", "seed")
    assert "unknown param 'sed' (did you mean 'seed'?)" in str(param)
    assert "[params]" in str(param)


def test_cycle_error_message():
    err = CycleError(["a", "b", "a"])
    assert err.path == ["a", "b", "a"]
    assert str(err) == "dependency cycle: a -> b -> a"


def test_plugin_error_and_build_failed():
    err = PluginError("no backend for s3://", plugin="flowmake-s3",
                      install_hint="pip install flowmake-s3")
    assert (err.plugin, err.hint) == ("flowmake-s3", "pip install flowmake-s3")
    failed = BuildFailed(["a", "b"], ["c"])
    assert (failed.failed, failed.skipped) == (["a", "b"], ["c"])
    assert str(failed) == "2 target(s) failed: a, b"


@pytest.mark.parametrize(("name", "choices", "expected"), [
    ("clen", ["clean", "train"], "clean"),
    ("trian", ["clean", "train"], "train"),
    ("xyz", ["clean", "train"], None),
    ("a", [], None),
])
def test_suggest(name, choices, expected):
    assert suggest(name, choices) == expected
    assert suggest(name, iter(choices)) == expected
