"""`flowmake --version` reads a flow file's ``[flow] plugins`` without parsing its targets
(cli.main._flow_table): the same answer as parsing the whole file, whatever the layout."""

from __future__ import annotations

from typing import Any

import pytest

from flowmake.cli.main import _flow_table
from flowmake.config.flowfiles import tomllib

TARGETS = "".join(f'[targets.t{i}]\ncmd = "true"\n\n' for i in range(3))
MORE = "".join(f'[targets.u{i}]\ncmd = "true"\n[targets.u{i}.env]\nA = "1"\n' for i in range(3))

LAYOUTS = {
    "flow first": '[flow]\nplugins = ["a", "b"]\n\n' + TARGETS,
    "flow between targets": TARGETS + '[flow]  # settings\nplugins = ["a"]\n' + MORE,
    "a quoted name": '["flow"]\nplugins = ["a"]\n' + TARGETS,
    "flow last": TARGETS + '[ flow ]\nplugins = ["a"]\njobs = 2\n',
    "top-level keys too": 'name = "x"\n[flow]\nplugins = ["a"]\n' + TARGETS,
    "a dotted key": 'flow.plugins = ["a"]\n' + TARGETS,
    "no flow table": TARGETS,
    "a subtable of flow": '[flow]\nplugins = ["a"]\n[flow.env]\nX = "1"\n' + TARGETS,
    # a "[" starting a line inside the table's multi-line value: the cut is not valid
    # TOML by itself, so the whole file is parsed
    "a bracket starting a line": '[flow]\nplugins = [\n"a",\n]\nx = """\n[oops\n"""\n'
                                 + TARGETS,
}


@pytest.mark.parametrize("text", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_flow_table_is_the_whole_files(text: str) -> None:
    assert _flow_table(text, tomllib.loads).get("flow") == tomllib.loads(text).get("flow")


def test_the_targets_are_not_parsed() -> None:
    parsed: list[str] = []

    def loads(text: str) -> dict[str, Any]:
        parsed.append(text)
        return tomllib.loads(text)

    doc = _flow_table('[flow]\nplugins = ["a"]\n' + TARGETS * 100, loads)
    assert doc == {"flow": {"plugins": ["a"]}}
    assert len(parsed) == 1 and "targets" not in parsed[0]


def test_a_broken_target_does_not_hide_the_plugins() -> None:
    """(--version still names the project's plugins; a build names the broken line.)"""
    doc = _flow_table('[flow]\nplugins = ["a"]\n[targets.a]\ncmd = \n', tomllib.loads)
    assert doc == {"flow": {"plugins": ["a"]}}


def test_a_broken_flow_table_is_an_error() -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        _flow_table('[flow]\nplugins = ["a"\n' + TARGETS, tomllib.loads)
