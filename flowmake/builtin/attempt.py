"""One run of a shell command for the local executor: its process group (a session of its
own, so a timeout or Ctrl-C stops everything it started), its output pipe and its pidfd."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from flowmake.builtin.shell import Direct, direct_start, merged_env, shell_argv
from flowmake.executor import Job, prepare_outputs

if TYPE_CHECKING:
    from flowmake.builtin.local_executor import CommandRunner

KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
EXIT_POLL = 0.005  # after EOF, how often to look for the exit of a command still running
READ_SIZE = 1 << 16


class Attempt:
    """One run of a shell command: its process group, its output pipe, its deadlines."""

    __slots__ = ("deadline", "fd", "kill_at", "partial", "pidfd", "pipe", "proc", "timed_out")

    def __init__(self, job: Job, runner: CommandRunner) -> None:
        prepare_outputs(job)
        command = job.command or ""
        preexec_fn = runner.preexec_fn
        proc = None
        if (direct := direct_start(command, job.cwd, job.env, runner.memo)) is not None:
            # gone since, not executable, no #!, a file that cannot be opened: sh says
            with contextlib.suppress(OSError):
                proc = _start_direct(direct, job.cwd, preexec_fn)
        if proc is None:
            env = None if job.env is None else merged_env(job.env, runner.memo)
            proc = _popen(shell_argv(command), job.cwd, env, preexec_fn)
        self.proc = proc
        # The command's output: stdout and stderr together, or stderr alone when stdout
        # goes to a file.
        pipe = proc.stdout if proc.stdout is not None else proc.stderr
        assert pipe is not None
        self.pipe = pipe
        self.fd: int | None = pipe.fileno()  # None after EOF
        # Readable when the process ends (Linux 5.3+): the loop learns of the exit at once
        # instead of polling for it after EOF.
        self.pidfd: int | None = _pidfd(self.proc.pid)
        self.deadline = time.monotonic() + job.timeout if job.timeout else None
        self.kill_at: float | None = None  # SIGTERM sent: SIGKILL at this time
        self.timed_out = False
        self.partial = b""  # an unfinished line, when streaming

    def terminate(self) -> None:
        """SIGTERM the group now; the loop sends SIGKILL if it outlives KILL_GRACE."""
        if self.kill_at is None:
            self.kill_at = time.monotonic() + KILL_GRACE
            self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def close_pipe(self) -> None:
        self.fd = None  # first: a closed fd's number may be reused (see _Loop._check_exits)
        self.pipe.close()

    def close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def exit_error(self, code: int, timeout: float | None) -> str | None:
        if self.kill_at is not None:
            self._signal(signal.SIGKILL)  # the leader is gone; nothing it started outlives it
        if self.timed_out:
            return f"timed out after {timeout:g}s"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return None if code == 0 else f"exit code {code}"


def _start_direct(direct: Direct, cwd: str,
                  preexec_fn: Callable[[], None] | None) -> subprocess.Popen[bytes]:
    """Start ``direct`` with its redirections' files opened here, as sh would open them."""
    files = {0: subprocess.DEVNULL, 1: subprocess.PIPE}
    opened: list[int] = []
    try:
        for fd, path, flags in direct.redirects:
            opened.append(os.open(os.path.join(cwd, path), flags, 0o666))
            files[fd] = opened[-1]
        return _popen(direct.argv, cwd, direct.env, preexec_fn, direct.executable,
                      stdin=files[0], stdout=files[1])
    finally:
        for fd in opened:  # the child has its own copies
            os.close(fd)


def _popen(argv: list[str], cwd: str, env: dict[str, str] | None,
           preexec_fn: Callable[[], None] | None, executable: str | None = None, *,
           stdin: int = subprocess.DEVNULL,
           stdout: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        argv, executable=executable, cwd=cwd, env=env, stdin=stdin, stdout=stdout,
        stderr=subprocess.STDOUT if stdout == subprocess.PIPE else subprocess.PIPE,
        start_new_session=True, preexec_fn=preexec_fn)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
        return None
