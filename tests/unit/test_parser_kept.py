"""The whole parser, made once and kept (a resident server's, for its forks:
``cli.parser.keep_parser``), parses every command line as the parser made for that line
does, however many lines it parsed before: same values, same errors, same help."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

import pytest

from flowmake.cli import parser

LINES = [
    ["build"], ["build", "-j", "3", "a", "b"], ["-q", "build", "-p", "n=1", "-p", "m=x"],
    ["build", "-k", "--no-cache", "-B", "--json"], ["build"], ["-v", "status", "a"],
    ["status", "--json"], ["clean", "--all"], ["list"], ["why", "a"],
    ["graph", "--format", "json"], ["log"], ["cache", "status"], ["metrics", "--history"],
    ["accept", "a"], ["init"], ["completion", "bash"], ["-C", "sub", "build", "x"],
    ["build", "status"], [], ["--version"],
    # errors: exit 2, one line
    ["build", "-j", "zero"], ["nosuch"], ["graph", "--format", "png"], ["build", "--nope"],
    ["why"], ["-p"],
    # help
    ["build", "--help"], ["--help"], ["status", "-h"],
]


@pytest.fixture
def kept() -> Iterator[None]:
    parser.keep_parser()
    yield
    parser._made.clear()


def outcome(argv: list[str]) -> tuple[Any, ...]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            found: Any = vars(parser.build_parser(argv).parse_args(argv))
        except SystemExit as stop:
            found = ("exit", stop.code)
    return found, out.getvalue(), err.getvalue()


def test_the_kept_parser_answers_every_line_as_a_parser_made_for_it(
        monkeypatch: pytest.MonkeyPatch, kept: None) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # the help's width
    expected = []
    saved = parser._made[:]
    parser._made.clear()
    for argv in LINES:
        expected.append(outcome(argv))
    parser._made[:] = saved
    for _ in range(2):  # the same parser, every line, twice: nothing of one stays for the next
        assert [outcome(argv) for argv in LINES] == expected


def test_the_kept_parser_is_the_one_returned(kept: None) -> None:
    assert parser.build_parser(["build"]) is parser.build_parser(["status"]) is parser._made[0]


def test_a_resident_server_keeps_the_whole_parser() -> None:
    from flowmake.resident import server

    try:
        server.preload()
        assert parser._made and parser.build_parser(["build"]) is parser._made[0]
    finally:
        parser._made.clear()
