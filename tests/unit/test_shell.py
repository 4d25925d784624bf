"""Which commands start without a shell, and with what (flowmake.builtin.shell)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flowmake.builtin.shell import Redirect, direct_start, plain_command


@pytest.mark.parametrize(("command", "argv"), [
    ("cp in/a.txt out/a.txt", ["cp", "in/a.txt", "out/a.txt"]),
    ("  cp\tin/a.txt   out/a.txt  ", ["cp", "in/a.txt", "out/a.txt"]),
    ("tool --level=3 -o out.bin", ["tool", "--level=3", "-o", "out.bin"]),  # "=" after word 1
    ("gzip -k data.csv", ["gzip", "-k", "data.csv"]),
    ("cp a\u00a0b c", ["cp", "a\u00a0b", "c"]),  # a no-break space is no word break for sh
])
def test_a_plain_command_is_its_words(command: str, argv: list[str]) -> None:
    plain = plain_command(command)
    assert plain is not None and plain.argv == argv and plain.redirects == ()


READ, TRUNCATE = os.O_RDONLY, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


@pytest.mark.parametrize(("command", "argv", "redirects"), [
    ("cat a b > c", ["cat", "a", "b"], [(1, "c", TRUNCATE)]),
    ("cat a b >c", ["cat", "a", "b"], [(1, "c", TRUNCATE)]),
    ("sort < in.txt >> log", ["sort"], [(0, "in.txt", READ), (1, "log", APPEND)]),
    ("sort <in.txt >>log", ["sort"], [(0, "in.txt", READ), (1, "log", APPEND)]),
    ("> out.txt cat a", ["cat", "a"], [(1, "out.txt", TRUNCATE)]),  # before the command
    ("cat a > o1 b", ["cat", "a", "b"], [(1, "o1", TRUNCATE)]),  # o2 stays an argument
    ("cat a > x > y", ["cat", "a"], [(1, "x", TRUNCATE), (1, "y", TRUNCATE)]),  # in order
    ("tool --x=1 > a=b", ["tool", "--x=1"], [(1, "a=b", TRUNCATE)]),
])
def test_plain_redirections_are_opened_by_flowmake(command: str, argv: list[str],
                                                   redirects: list[tuple[int, str, int]]) -> None:
    assert plain_command(command) == (argv, tuple(Redirect(*r) for r in redirects))


@pytest.mark.parametrize("command", [
    "", "   ",
    "a | b", "a && b", "a || b", "a; b", "a &", "(a)", "{ a; }",
    "echo $HOME", "echo ${X}", "echo `date`", "echo $(date)",  # expansions
    "cat *.txt", "cat a?.txt", "cat [ab].txt", "cat ~/x", "echo a{b,c}",  # globs, tilde, braces
    "echo 'q'", 'echo "q"', "echo a\\ b",  # quoting
    "cmd # comment", "! cmd", "a\nb",
    "FOO=1 cmd", "X=y",  # assignments
    "cd sub", "exit 3", "true", "false", "echo hi", "printf x", "test -f a", "[ -f a ]",
    "export X", "set -e", "exec cmd", ". ./env.sh", ": nothing", "if", "while", "for",
    "kill 1", "read x", "umask 022", "wait", "type ls", "command -v ls", "pwd",
    # redirections that are not plain: descriptors, here-documents, duplicates, a missing
    # file, a redirection alone, an angle within a word, one before a built-in
    "cat a 2> err", "cat a 2>err", "cat a >&2", "cat a 1>&2", "cat a >| b", "cat <<EOF",
    "cat <<< x", "cat <> f", "cat a >", "cat a >> ", "cat <", "> out", "cat a>b",
    "cat a > >b", "cat a > b<c", "> out echo hi", "< in cd x", "X=1 > f cmd",
])
def test_anything_a_shell_would_interpret_goes_to_sh(command: str) -> None:
    assert plain_command(command) is None


def test_the_program_is_found_once_on_path_and_argv0_is_kept(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PWD", str(tmp_path))
    direct = direct_start("cp a b", str(tmp_path), None, {})
    assert direct is not None
    assert direct.argv == ["cp", "a", "b"]
    assert direct.executable == shutil.which("cp") and os.path.isabs(direct.executable)
    assert direct.env is None  # PWD already names the folder: flowmake's environment as is


def test_pwd_is_what_sh_would_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    monkeypatch.setenv("PWD", "/")
    other = direct_start("cp a b", str(real / "sub"), {"FM_X": "1"}, {})
    assert other is not None and other.env is not None
    assert other.env["PWD"] == str(real / "sub") and other.env["FM_X"] == "1"
    via_link = direct_start("cp a b", str(tmp_path / "link" / "sub"), None, {})
    assert via_link is not None and via_link.env is not None
    assert via_link.env["PWD"] == str((real / "sub").resolve())  # the physical path
    monkeypatch.setenv("PWD", str(tmp_path / "link" / "sub"))  # a logical PWD that fits
    kept = direct_start("cp a b", str(real / "sub"), None, {})
    assert kept is not None and kept.env is None


def test_sh_keeps_what_cannot_be_found_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert direct_start("no-such-program-here x", str(tmp_path), None, {}) is None  # sh says so
    monkeypatch.setenv("PATH", f"bin{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert direct_start("cp a b", str(tmp_path), None, {}) is None  # relative to the command's cwd
    script = direct_start("./run.sh x", str(tmp_path), None, {})
    assert script is not None and script.executable == f"{tmp_path}/./run.sh"


def test_an_environment_is_made_once_a_build_per_folder_and_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PWD", "/")  # not the folder: every start needs PWD set
    memo: dict[tuple[str, ...], object] = {}
    first = direct_start("cp a b", str(tmp_path), None, memo)
    again = direct_start("cat a", str(tmp_path), None, memo)
    other = direct_start("cp a b", str(tmp_path), {"FM_X": "1"}, memo)
    changed = direct_start("cp a b", str(tmp_path), {"FM_X": "2"}, memo)
    assert first is not None and again is not None and other is not None and changed is not None
    assert first.env is again.env and first.env is not None  # the same dict, made once
    assert first.env["PWD"] == str(tmp_path.resolve()) and "FM_X" not in first.env
    assert other.env is not None and other.env["FM_X"] == "1"
    assert changed.env is not None and changed.env["FM_X"] == "2"
