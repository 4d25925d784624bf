"""`--help` through the real command: every argument of every subcommand says what it
does, each subcommand offers only the global options it uses, and `cache gc` without a
limit is refused rather than doing nothing."""

from __future__ import annotations

import re

import pytest


def _commands(project) -> list[str]:
    """The subcommands `flowmake --help` lists (under COMMAND)."""
    text = project.run("--help", check=True).stdout
    found = re.findall(r"^    ([a-z][a-z-]*)\b", text, re.M)
    assert {"build", "status", "log", "cache", "init"} <= set(found), text
    return found


def _entries(help_text: str) -> dict[str, str]:
    """Each argument of a help page: its invocation -> its help text ('' when none)."""
    entries: dict[str, str] = {}
    current = None
    for line in help_text.splitlines():
        if re.match(r"^  \S", line):
            invocation, _, text = line[2:].partition("  ")
            current = invocation.strip()
            entries[current] = text.strip()
        elif current is not None and re.match(r"^ {4,}\S", line):
            entries[current] = (entries[current] + " " + line.strip()).strip()
        else:
            current = None  # a blank line or a section title ends an entry
    return entries


def test_every_argument_of_every_subcommand_has_help(project):
    for command in _commands(project):
        page = project.run(command, "--help", check=True).stdout
        entries = _entries(page)
        assert entries, f"{command}: no arguments found in\n{page}"
        missing = [name for name, text in entries.items() if not text]
        assert not missing, f"`flowmake {command} --help`: no help for {missing}\n{page}"
        for option in ("-f FILE", "-C DIR", "--no-color"):
            assert any(name.startswith(option) for name in entries), (command, option)


@pytest.mark.parametrize(("command", "absent", "present"), [
    ("init", ["-v", "-p"], ["-q"]),
    ("list", ["-p", "-q", "-v"], []),
    ("log", ["-p", "-q"], ["-v"]),
    ("why", ["-q", "-v"], ["-p"]),
    ("build", [], ["-q", "-v", "-p"]),
])
def test_a_subcommand_offers_only_the_global_options_it_uses(project, command, absent, present):
    names = {name.split(",")[0].split()[0] for name in
             _entries(project.run(command, "--help", check=True).stdout)}
    assert not set(absent) & names, names
    assert set(present) <= names, names


def test_global_options_before_the_command_are_accepted_by_every_command(project):
    project.flow("""
        [params]
        n = 1

        [targets.t]
        cmd     = "echo ${params.n} > ${outputs}"
        outputs = ["out/t.txt"]
    """, cache=False)
    listed = project.run("-p", "n=2", "-q", "-v", "list", check=True)
    assert listed.stdout.split()[:2] == ["t", "cmd"]
    wrong = project.run("list", "-p", "n=2")
    assert wrong.returncode == 2 and "unrecognized arguments: -p" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    assert project.run("init", "-v").returncode == 2
    assert project.run("-v", "log", check=True).stdout.startswith("no builds recorded yet")


def test_log_help_says_a_number_is_a_run_id_and_dash_the_latest(project):
    page = " ".join(project.run("log", "--help", check=True).stdout.split())
    assert "a number is a build's run id" in page
    assert "- is the latest build" in page
    graph = _entries(project.run("graph", "--help", check=True).stdout)
    assert "html" in graph["--format {text,mermaid,dot,json,html}"]


def test_log_dash_is_the_latest_build(project):
    project.flow("""
        [targets.t]
        cmd     = "echo t > ${outputs}"
        outputs = ["out/t.txt"]
    """, cache=False)
    none = project.run("log", "-", check=2)
    assert none.stderr.startswith("flowmake: error: no build recorded yet")
    project.build()
    project.build("-B")
    assert project.run("log", "-", check=True).stdout.startswith("run 2: success")
    assert project.json("log", "-")["runs"][0]["run_id"] == 2


def test_cache_gc_without_a_limit_is_refused(project):
    project.flow("""
        [targets.t]
        cmd     = "echo t > ${outputs}"
        outputs = ["out/t.txt"]
    """)
    project.build()
    refused = project.run("cache", "gc", check=2)
    first = refused.stderr.splitlines()[0]
    assert first.startswith("flowmake: error: cache gc needs a limit")
    assert "--max-age" in first and "--max-size" in first
    assert refused.stdout == ""
    assert project.json("cache", "status")["entries"] == 1
    assert project.json("cache", "gc", "--max-age", "30", check=True)["entries"] == 1
