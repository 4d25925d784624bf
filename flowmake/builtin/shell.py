"""How a target's command line becomes the argv of a process.

A command with nothing for a shell to do (no quoting, expansion, operator, reserved word
or built-in; only words separated by blanks) is executed directly, as GNU make does: the
result is that of ``sh -c`` without starting ``sh`` first (measured here: ~1.1 ms a
target, a third of the cost of a small ``cp`` target). So is one with plain file
redirections besides (``cat a b > c``, ``sort < a >> b``: ``<``, ``>`` or ``>>`` and one
plain word), which make hands to sh: flowmake opens the files as sh would (left to right,
relative to the command's folder, created with mode 0666 less the umask) and starts the
program with them as its stdin or stdout (measured: 1.8 ms a target instead of 3.0).
Everything else, and a direct start that fails for any reason (a file that cannot be
opened, a program that cannot be started), goes through ``/bin/sh -c``, so what a command
means, and what it says when it fails, never depends on this shortcut.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any, NamedTuple

# As make and ninja: an absolute path, so that starting a command does not try each PATH
# entry in turn (measured: ~0.5 ms a target with PATH's nine folders here).
SHELL = "/bin/sh"

# Characters that make a command need a shell: quoting, expansion, globbing, operators,
# comments, tilde, and a newline (GNU make's list, plus a few more to be safe). ``<`` and
# ``>`` are looked at word by word (``plain_command``).
_SPECIAL = frozenset("\"'\\$`*?[]{}()|&;#~!^\n\r")
_ANGLES = frozenset("<>")
# The plain redirections: the descriptor they replace and how sh opens their file.
_REDIRECTS = {
    "<": (0, os.O_RDONLY),
    ">": (1, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ">>": (1, os.O_WRONLY | os.O_CREAT | os.O_APPEND),
}
# First words the shell itself handles: reserved words and built-ins (POSIX and dash's),
# including those that also exist as programs but behave differently as built-ins.
_SHELL_WORDS = frozenset({
    ".", ":", "[", "[[", "alias", "bg", "break", "case", "cd", "command", "continue", "do",
    "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc",
    "fg", "fi", "for", "function", "getopts", "hash", "if", "in", "jobs", "kill", "let",
    "local", "newgrp", "printf", "pwd", "read", "readonly", "return", "select", "set", "shift",
    "test", "then", "time", "times", "trap", "true", "type", "typeset", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while",
})


class Redirect(NamedTuple):
    """A plain redirection: descriptor ``fd`` (0 or 1) becomes ``path``, opened with
    ``flags`` (``os.open``'s)."""

    fd: int
    path: str
    flags: int


class Plain(NamedTuple):
    """A command a shell has nothing to do for: its words, and its redirections in order."""

    argv: list[str]
    redirects: tuple[Redirect, ...]


def plain_command(command: str) -> Plain | None:
    """``command`` as words and redirections, or None when it needs a shell."""
    if not command or not _SPECIAL.isdisjoint(command):
        return None
    # Only space and tab separate words for sh (str.split would also split at, say, a
    # no-break space).
    words = [word for word in command.replace("\t", " ").split(" ") if word]
    argv: list[str] = []
    redirects: list[Redirect] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if _ANGLES.isdisjoint(word):
            argv.append(word)
            continue
        op = ">>" if word.startswith(">>") else word[:1]
        path = word[len(op):]
        if not path and i < len(words):  # "> out": the file is the next word
            path = words[i]
            i += 1
        # "2>", "<<", "<>", "a>b", a missing file: sh's business
        if op not in _REDIRECTS or not path or not _ANGLES.isdisjoint(path):
            return None
        fd, flags = _REDIRECTS[op]
        redirects.append(Redirect(fd, path, flags))
    if not argv or argv[0] in _SHELL_WORDS or "=" in argv[0]:  # "=": an assignment
        return None
    return Plain(argv, tuple(redirects))


def shell_argv(command: str) -> list[str]:
    return [SHELL, "-c", command]


class Direct(NamedTuple):
    """How to start a command without a shell: what sh would have run, and with what."""

    executable: str  # found on PATH once; argv[0] stays as written, as sh passes it
    argv: list[str]
    env: dict[str, str] | None  # None: flowmake's own environment as it is
    redirects: tuple[Redirect, ...] = ()  # paths relative to the command's folder


def direct_start(command: str, cwd: str, env: Mapping[str, str] | None,
                 memo: dict[tuple[str, ...], Any]) -> Direct | None:
    """How to start ``command`` in ``cwd`` (``env``: variables added to flowmake's own)
    without a shell, or None when it needs one or its program is not on PATH (then sh
    says so, as usual). ``memo`` keeps what was looked up (programs on PATH, PWDs, the
    environments made: shared, never changed) for one build."""
    plain = plain_command(command)
    if plain is None:
        return None
    argv = plain.argv
    inherited = os.environ.get("PWD")
    if (pwd := memo.get(("PWD", cwd, inherited or ""))) is None:
        pwd = memo["PWD", cwd, inherited or ""] = _sh_pwd(cwd, inherited)
    full = (None if env is None and pwd == inherited
            else merged_env({**(env or {}), "PWD": pwd}, memo))
    path = (full or os.environ).get("PATH", os.defpath)
    where = ("PATH", argv[0], path, cwd if "/" in argv[0] else "")
    if where not in memo:
        memo[where] = _which(*where[1:])
    executable = memo[where]
    return None if executable is None else Direct(executable, argv, full, plain.redirects)


def merged_env(extra: Mapping[str, str], memo: dict[tuple[str, ...], Any]) -> dict[str, str]:
    """flowmake's environment with ``extra`` over it, made once a build for each ``extra``
    (kept in ``memo``: shared, never changed), not copied out of os.environ per command."""
    known = ("ENV", *(f"{k}={v}" for k, v in extra.items()))
    if (env := memo.get(known)) is None:
        env = memo[known] = {**os.environ, **extra}
    return env


def _which(name: str, path: str, cwd: str) -> str | None:
    """The program sh would find for ``name``. Looked up once a build rather than by
    trying each PATH folder at every start (measured: ~80 µs a start with 11 folders); a
    program removed since fails to start, and sh then runs the command instead."""
    if "/" in name:
        return os.path.join(cwd, name)
    if not all(os.path.isabs(folder) for folder in path.split(os.pathsep)):
        return None  # a relative folder is relative to the command's cwd: sh's business
    found = shutil.which(name, path=path)
    return None if found is None else os.path.abspath(found)


def _sh_pwd(cwd: str, inherited: str | None) -> str:
    """The PWD that sh exports in ``cwd``: the inherited one if it names that folder (a
    path through a symlink stays as it is), else the physical path."""
    if inherited and os.path.isabs(inherited):
        try:
            if os.path.samefile(inherited, cwd):
                return inherited
        except OSError:
            pass
    return os.path.realpath(cwd)
