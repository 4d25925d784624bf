"""A forked child of the resident process: becomes the client's command, runs it, ends.

It takes the client's descriptors as 0, 1 and 2, its working folder, environment, umask,
argv, first import-path entry and ignored signals, so the command runs as it would in the
client's own process; then tells the client its exit code (first to the server, through
the pipe whose end also tells it the child ended, with the files the command read whole,
which the server then keeps decoded: flowmake/warm.py) and exits without tearing down.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import marshal
import os
import resource
import signal
import socket
import sys
import time
import traceback
from typing import Any, NoReturn

from flowmake import fastpath, warm
from flowmake.resident.client import EXIT, PID, REFUSED

_STANDARD = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD)


def run(request: Any, fds: list[int], conn: socket.socket, death: int) -> NoReturn:
    try:
        argv = adopt(request, fds)
    except Exception:  # a folder gone, a malformed request: the client runs it itself
        with contextlib.suppress(OSError):
            conn.sendall(REFUSED + bytes(4))
        fastpath.dismiss()
        os._exit(0)
    try:
        conn.sendall(PID + os.getpid().to_bytes(4, "little", signed=True))
    except OSError:
        fastpath.dismiss()
        os._exit(1)  # the client is gone before it started
    finish(command(argv), conn, death)


def adopt(request: Any, fds: list[int]) -> list[str]:
    warm.forked = True
    _parts, argv, cwd, env, first_path, umask, targets, ignored, limits, (nice, cpus) = request
    # Each of these can fail (a hard limit above ours, a nice value below): refused then.
    for resource_id, soft, hard in limits:
        resource.setrlimit(resource_id, (soft, hard))
    if nice is not None and nice != os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    if cpus is not None and set(cpus) != os.sched_getaffinity(0):
        os.sched_setaffinity(0, cpus)
    for fd, target in zip(fds, targets, strict=True):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
        else:
            os.set_inheritable(fd, True)
    for target in {0, 1, 2} - set(targets):
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, target)
        os.close(null)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    os.umask(umask)
    sys.argv[:] = argv
    sys.path.insert(0, first_path)
    importlib.invalidate_caches()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in _STANDARD:
        signal.signal(signum, signal.SIG_DFL)
    for signum in ignored:
        signal.signal(signum, signal.SIG_IGN)
    sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
    return list(argv)


def command(argv: list[str]) -> int:
    """The command as ``flowmake.cli.main.run`` runs it, its exit code."""
    from flowmake.cli.main import main

    try:
        return main(argv[1:])
    except SystemExit as stop:
        return exit_code(stop)
    except KeyboardInterrupt:  # outside the command's own handling: as Python ends on it
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise
    except BaseException:
        traceback.print_exc()
        return 1


def exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code & 0xFF
    print(stop.code, file=sys.stderr)
    return 1


def finish(code: int, conn: socket.socket, death: int) -> NoReturn:
    """Python's exit without the teardown: threads ended and joined, atexit run, output
    flushed; then the code, to the server first (it then knows the client has it
    coming)."""
    _join_threads()
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    if not _flush():
        code = 120  # as Python's exit when flushing stdout fails
    with contextlib.suppress(OSError):  # and the files it read, for the server to keep
        os.write(death, marshal.dumps((code, warm.read_here)))
    with contextlib.suppress(OSError):
        conn.sendall(EXIT + code.to_bytes(4, "little", signed=True))
    warm.run_at_end()  # what waits no longer holds the client up (the stat helpers' exits)
    fastpath.dismiss()  # the helpers its spare forked that no check used
    os._exit(code)


def _join_threads() -> None:
    """Wait for the non-daemon threads as Python's exit does: first the hooks that tell
    them to end (an idle ThreadPoolExecutor's workers wait for work until
    ``concurrent.futures`` says the interpreter is exiting), then a join of each."""
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # what Python's own exit calls
    if shutdown is not None:
        shutdown()
        return
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()


def _flush() -> bool:
    ok = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            ok = False
    return ok
