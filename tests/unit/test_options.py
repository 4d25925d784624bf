"""BuildOptions: every option of `flowmake build` reaches the build through it, with the
command line's defaults, as one frozen value."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from flowmake.cli.parser import build_parser
from flowmake.options import FIELD_OF_DEST, FIELDS, BuildOptions

NOT_BUILD_OPTIONS = {"help", "version", "command"}  # the top-level parser's own


def _build_dests() -> set[str]:
    """Every dest a `flowmake build` command line can set (its own and the global ones)."""
    parser = build_parser(["build"])
    dests = {a.dest for a in parser._actions} - NOT_BUILD_OPTIONS
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    dests |= {a.dest for a in sub.choices["build"]._actions} - NOT_BUILD_OPTIONS
    return dests


def test_every_build_dest_is_mapped_to_a_field():
    dests = _build_dests()
    assert dests == set(FIELD_OF_DEST), (dests ^ set(FIELD_OF_DEST))
    assert set(FIELD_OF_DEST.values()) <= FIELDS
    assert FIELDS - set(FIELD_OF_DEST.values()) == {"stream"}  # the Python API's alone


def test_the_defaults_are_the_command_lines():
    args = build_parser(["build"]).parse_args(["build"])
    assert BuildOptions.from_args(args) == BuildOptions()


EVERY_OPTION = ["-C", "proj", "-f", "other.toml", "--no-color", "-q", "-v", "-p", "n=1",
                "build", "-j", "3", "-k", "-n", "-B", "--no-cache", "--executor", "dask",
                "--scheduler", "tcp://h:1", "--no-record", "--junit", "r.xml", "--watch",
                "--json", "a", "b*"]


def test_from_args_maps_every_option():
    args = build_parser(EVERY_OPTION).parse_args(EVERY_OPTION)
    options = BuildOptions.from_args(args)
    assert options == BuildOptions(
        targets=("a", "b*"), params=("n=1",), directory="proj", file="other.toml",
        jobs=3, keep_going=True, force=True, dry_run=True, no_cache=True, executor="dask",
        scheduler="tcp://h:1", no_record=True, junit="r.xml", watch=True, json=True,
        quiet=True, verbose=True, no_color=True)
    defaults = BuildOptions()
    for field in FIELDS - {"stream"}:  # each option moved its field off the default
        assert getattr(options, field) != getattr(defaults, field), field


def test_global_options_after_the_command_count_too():
    argv = ["build", "-q", "-C", "proj", "-p", "x=1"]
    options = BuildOptions.from_args(build_parser(argv).parse_args(argv))
    assert (options.quiet, options.directory, options.params) == (True, "proj", ("x=1",))


def test_options_are_frozen_and_slotted():
    options = BuildOptions(targets=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.jobs = 2  # type: ignore[misc]
    assert not hasattr(options, "__dict__")
    assert dataclasses.replace(options, jobs=2).jobs == 2 and options.jobs is None
    assert hash(options) == hash(BuildOptions(targets=("a",)))
