"""Plain redirections opened by flowmake (``cat a > b`` without ``sh``) end as ``sh -c``
would have left them: the same files with the same bytes and modes, the same exit code,
the same output, real processes each time."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from flowmake.builtin import shell
from flowmake.builtin.local_executor import CommandRunner
from flowmake.executor import Job

# The commands flowmake starts itself (proved below by taking sh away).
DIRECT = [
    "cat a b > out.txt",
    "cat a >out.txt",
    "cat a >> log.txt",
    "sort < b > sorted.txt",
    "> first.txt cat a",
    "cat a > o1 b",
    "cat a > x > y",
    "cat < a > a",  # sh truncates a before cat reads it: so must flowmake
    "cat a missing > partial.txt",  # cat fails after writing: exit 1, its stderr kept
    "ls -d a missing >> listed.txt",
]
# The ones it hands to sh after all: a file that cannot be opened, a program not on PATH.
VIA_SH = [
    "cat a > nowhere/out.txt",
    "cat a > folder",
    "cat < missing > out.txt",
    "no-such-program-here a > out.txt",
]


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*")) if p.is_file()}


def project(root: Path) -> Path:
    root.mkdir()
    (root / "a").write_text("alpha\n")
    (root / "b").write_text("zulu\nbravo\n")
    (root / "log.txt").write_text("kept\n")
    (root / "listed.txt").write_text("kept\n")
    (root / "folder").mkdir()
    return root


def by_flowmake(root: Path, command: str, runner: CommandRunner) -> tuple[bool, str, str | None]:
    job = Job(name="t", root=str(root), cwd=str(root), command=command)
    result = runner.run(job, None)
    return result.ok, result.output, result.error


def by_sh(root: Path, command: str) -> tuple[bool, str, str | None]:
    done = subprocess.run(["/bin/sh", "-c", command], cwd=root, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    code = done.returncode
    return code == 0, done.stdout.decode(), None if code == 0 else f"exit code {code}"


@pytest.mark.parametrize("command", DIRECT + VIA_SH)
def test_a_redirection_ends_as_sh_would_leave_it(tmp_path: Path, command: str) -> None:
    old = os.umask(0o027)  # the mode of a new file is 0666 less the umask, for both
    try:
        mine = by_flowmake(project(tmp_path / "flowmake"), command, CommandRunner())
        theirs = by_sh(project(tmp_path / "sh"), command)
    finally:
        os.umask(old)
    assert tree(tmp_path / "flowmake") == tree(tmp_path / "sh")
    assert mine == theirs  # ok, output (a program's messages, or sh's), error
    assert (tmp_path / "flowmake" / "out.txt").exists() == (tmp_path / "sh" / "out.txt").exists()


@pytest.mark.parametrize("command", DIRECT)
def test_those_commands_start_without_sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         command: str) -> None:
    monkeypatch.setattr(shell, "SHELL", str(tmp_path / "no-shell-here"))
    ok, output, error = by_flowmake(project(tmp_path / "p"), command, CommandRunner())
    assert error is None or error.startswith("exit code"), error  # started: no sh needed
    if command == "cat a b > out.txt":
        assert (ok, output) == (True, "")
        assert (tmp_path / "p" / "out.txt").read_text() == "alpha\nzulu\nbravo\n"


def test_a_redirected_command_still_streams_its_errors(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    lines: list[str] = []
    job = Job(name="t", root=str(root), cwd=str(root), command="ls -d a missing > out.txt")
    result = CommandRunner().run(job, lambda name, line: lines.append(line))
    assert not result.ok and "missing" in result.output and "missing" in "".join(lines)
    assert (root / "out.txt").read_text() == "a\n"  # stdout to the file, stderr to the log
