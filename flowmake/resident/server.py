"""The resident process: flowmake imported once per environment, a forked child per command.

Started by a client that found none (``client.start_server``), in a session of its own.
It holds nothing of any project, only imported code, so a child is the command run in a
fresh process minus the imports: it cannot give a stale answer about a project. It does
check its own code: a module file changed since it was imported (an upgrade, an edit of
an editable install) and it refuses the command (the client runs it) and retires.

It exits after ``FLOWMAKE_RESIDENT_IDLE`` seconds without a command (default 1,200), on
SIGTERM, or when retired, once its running children have ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import pkgutil
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flowmake import fastpath, warm
from flowmake.resident import child as child_process
from flowmake.resident import prefault
from flowmake.resident.client import ENV_IDLE, REFUSED, SIGNALED, key_parts

DEFAULT_IDLE = 1200.0
SKIPPED = ("flowmake.api", "flowmake.testing", "flowmake.resident", "flowmake.__main__")
# What flowmake's modules import only when used, as a build, status or report does
# (measured: the modules new in a fork after each command).
OTHERS = ("rich.console", "rich.live", "rich.progress_bar", "rich.table", "rich.text",
          "platform", "tomli_w", "importlib.metadata", "sysconfig", "html", "zipfile",
          "importlib.resources.readers", "concurrent.futures", "json", "difflib")
REQUEST_LIMIT = 64 * 1024 * 1024


@dataclass
class Running:
    pid: int
    conn: socket.socket
    death: int  # the pipe's read end: EOF when the child has ended, its report written first
    report: bytes = b""  # marshal of (exit code, files read whole): the child has finished


@dataclass
class Spare:
    """A child forked before it is needed (``_fork_spare``), waiting on ``control`` for a
    client's connection and request: the next command starts without the fork's cost
    (~2-3 ms for a server holding a 10,000-target project, page tables copied)."""

    pid: int
    control: socket.socket  # the server's end; closing it ends the spare
    death: int  # as Running's: the child's pipe, its report, then EOF


@dataclass
class State:
    path: str
    listener: socket.socket | None
    lock: int | None
    inode: int  # the socket file's, to remove it only while it is still this server's
    files: list[tuple[str, int, int]]
    idle: float
    key: tuple[Any, ...] = field(default_factory=lambda: key_parts(sys.path))  # clients
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    running: dict[int, Running] = field(default_factory=dict)  # by death fd
    last: float = field(default_factory=time.monotonic)
    spare: Spare | None = None
    dropped: list[int] = field(default_factory=list)  # spares told to end, to reap


def main(path: str) -> None:
    lock = _take_lock(path)
    if lock is None:
        return  # another server for this environment is starting or running
    os.chdir("/")
    preload()
    files = module_files()
    listener = _listen(path)
    state = State(path, listener, lock, os.stat(path).st_ino, files, _idle())
    signal.signal(signal.SIGTERM, lambda *_: _stop(state))
    try:
        _fork_spare(state)
        serve(state)
    finally:
        _retire(state)


def _stop(state: State) -> None:
    _retire(state)
    if not state.running:
        raise SystemExit(0)


def _idle() -> float:
    try:
        return max(0.1, float(os.environ.get(ENV_IDLE, DEFAULT_IDLE)))
    except ValueError:
        return DEFAULT_IDLE


def _take_lock(path: str) -> int | None:
    fd = os.open(path[:-len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def preload() -> None:
    """Import what any command may need: every flowmake module but the API's and this
    package's, and what they import when used (OTHERS)."""
    import flowmake

    for found in pkgutil.walk_packages(flowmake.__path__, "flowmake."):
        if not found.name.startswith(SKIPPED):
            with contextlib.suppress(Exception):
                importlib.import_module(found.name)
    for name in OTHERS:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    from flowmake.cli.parser import keep_parser

    keep_parser()  # each fork parses its command line with it
    with contextlib.suppress(Exception):  # a build's environment (store/provenance.py):
        import platform  # cached once here, no `uname -p` process in each build's thread

        platform.platform()
    with contextlib.suppress(Exception):  # and the installed distributions, listed once
        from flowmake.store.provenance import keep_distributions

        keep_distributions()


def module_files() -> list[tuple[str, int, int]]:
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                found.append((path, st.st_mtime_ns, st.st_size))
    return found


def _changed(files: list[tuple[str, int, int]]) -> bool:
    for path, mtime, size in files:
        try:
            st = os.stat(path)
        except OSError:
            return True
        if st.st_mtime_ns != mtime or st.st_size != size:
            return True
    return False


def _listen(path: str) -> socket.socket:
    """Bound under a temporary name and renamed into place: a client never finds a
    socket that does not accept yet."""
    temp = f"{path}.{os.getpid()}"
    with contextlib.suppress(OSError):
        os.unlink(temp)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(temp)
    listener.listen(64)
    os.rename(temp, path)
    return listener


def _retire(state: State) -> None:
    """Take no more commands: the socket goes (if it is still ours), the lock is let go
    (a new server may start), the running children are still seen to the end."""
    if state.listener is not None:
        with contextlib.suppress(OSError):
            if os.stat(state.path).st_ino == state.inode:
                os.unlink(state.path)
        with contextlib.suppress(KeyError, ValueError):
            state.selector.unregister(state.listener)
        state.listener.close()
        state.listener = None
    if state.lock is not None:
        os.close(state.lock)
        state.lock = None
    _drop_spare(state)


def serve(state: State) -> None:
    assert state.listener is not None
    state.selector.register(state.listener, selectors.EVENT_READ, None)
    check = min(60.0, max(1.0, state.idle / 10))  # how often an idle server looks at its code
    while state.listener is not None or state.running:
        left = state.last + state.idle - time.monotonic()
        if left <= 0 and not state.running:
            break
        events = state.selector.select(1.0 if state.running else min(left, check))
        for key, _ in events:
            if key.data is None:
                if state.listener is not None:
                    _accept(state)
            else:
                _event(state, *key.data)
        _reap_quietly(state)
        if not events and state.listener is not None and _changed(state.files):
            _retire(state)  # upgraded, edited or removed under it: no client will be served


def _accept(state: State) -> None:
    assert state.listener is not None
    try:
        conn, _ = state.listener.accept()
    except OSError:
        return
    state.last = time.monotonic()
    try:
        request, fds = _receive(conn)
    except (OSError, ValueError, EOFError, TypeError):
        conn.close()
        return
    stale = threading.active_count() > 1 or _changed(state.files)
    if stale:
        _retire(state)  # its code is not what a client would import: a new one starts
    if stale or not _acceptable(state, conn, request):
        _close_all(fds)
        with contextlib.suppress(OSError):
            conn.sendall(REFUSED + bytes(4))
        conn.close()
        return
    _fork(state, conn, request, fds)


def _acceptable(state: State, conn: socket.socket, request: Any) -> bool:
    if not isinstance(request, tuple) or not request:
        return False
    with contextlib.suppress(OSError, AttributeError):
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            return False
    return bool(request[0] == state.key)


def _receive(conn: socket.socket) -> tuple[Any, list[int]]:
    import marshal

    conn.settimeout(2.0)  # a client sends its request as soon as it connects
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    if len(data) < 4:
        raise EOFError
    size = int.from_bytes(data[:4], "little")
    if size > REQUEST_LIMIT:
        raise ValueError("request too large")
    while len(data) < 4 + size:
        more = conn.recv(min(1 << 20, 4 + size - len(data)))
        if not more:
            raise EOFError
        data += more
    conn.settimeout(None)
    return marshal.loads(data[4:4 + size]), list(fds)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _fork(state: State, conn: socket.socket, request: Any, fds: list[int]) -> None:
    spare = state.spare
    if spare is not None and _hand_over(spare, conn, request, fds):
        state.spare = None
        pid, death_read = spare.pid, spare.death
    else:
        _drop_spare(state)  # one gone meanwhile (killed), if any: a fork as before
        death_read, death_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: this server's descriptors go, the command runs
            try:
                os.close(death_read)
                _leave_server(state)
            finally:
                child_process.run(request, fds, conn, death_write)
        os.close(death_write)
    _close_all(fds)
    os.set_blocking(death_read, False)
    running = Running(pid, conn, death_read)
    state.running[death_read] = running
    # The events name the Running itself, not its descriptor's number: one select() can
    # return a child's end and its client's EOF together with a new client, whose fork
    # gets the very numbers just closed (an event of the old child then found the new
    # one by number, unreported, and SIGKILLed it).
    state.selector.register(conn, selectors.EVENT_READ, ("conn", running))
    state.selector.register(death_read, selectors.EVENT_READ, ("death", running))


def _leave_server(state: State) -> None:
    """In a child: close what is the server's (its socket, lock, selector, the other
    children's connections and pipes); the server's SIGTERM handler is not the child's."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    state.selector.close()
    if state.listener is not None:
        state.listener.close()
    if state.lock is not None:
        os.close(state.lock)
    for other in state.running.values():
        other.conn.close()
        os.close(other.death)


def _fork_spare(state: State) -> None:
    """Fork the child for the next command now, between commands (after the last one's
    files are kept: the spare sees them decoded, as a fork made at the request would)."""
    if state.spare is not None or state.listener is None:
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    death_read, death_write = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to spare: a command forks its own, as before
        for fd in (death_read, death_write):
            os.close(fd)
        ours.close()
        theirs.close()
        return
    if pid == 0:
        try:
            ours.close()
            os.close(death_read)
            _leave_server(state)
            # Before its command comes: the stat check's helpers forked (a fork in the
            # command would make its written pages copy-on-write again), then its own
            # page faults taken (prefault.py), until the command is handed over.
            fastpath.stand_by(close=(theirs.fileno(), death_write))
            prefault.populate(lambda: bool(select.select([theirs], [], [], 0)[0]))
            request, fds, conn = _wait_for_command(theirs)
        except BaseException:  # the server ended it (EOF), or a signal: end quietly
            fastpath.dismiss()
            os._exit(0)
        child_process.run(request, fds, conn, death_write)
    theirs.close()
    os.close(death_write)
    state.spare = Spare(pid, ours, death_read)


def _wait_for_command(control: socket.socket) -> tuple[Any, list[int], socket.socket]:
    """In a spare: the command the server hands over (``_hand_over``); EOFError when
    the server ends it instead."""
    import marshal

    data, fds, _, _ = socket.recv_fds(control, 1 << 16, 4)
    if len(data) < 4 or not fds:
        raise EOFError  # dropped by its server
    size = int.from_bytes(data[:4], "little")
    while len(data) < 4 + size:
        more = control.recv(min(1 << 20, 4 + size - len(data)))
        if not more:
            raise EOFError
        data += more
    control.close()
    return marshal.loads(data[4:4 + size]), list(fds[1:]), socket.socket(fileno=fds[0])


def _hand_over(spare: Spare, conn: socket.socket, request: Any, fds: list[int]) -> bool:
    """Give the spare the client's connection, descriptors and request; False if it is
    gone (then nothing was handed over)."""
    import marshal

    payload = marshal.dumps(request)
    data = len(payload).to_bytes(4, "little") + payload
    try:
        sent = socket.send_fds(spare.control, [data], [conn.fileno(), *fds])
        if sent < len(data):
            spare.control.sendall(data[sent:])
    except OSError:
        return False
    spare.control.close()
    return True


def _drop_spare(state: State) -> None:
    """End the spare (its control socket closed: it exits); reaped later."""
    spare, state.spare = state.spare, None
    if spare is not None:
        spare.control.close()
        os.close(spare.death)
        state.dropped.append(spare.pid)


def _event(state: State, kind: str, running: Running) -> None:
    if state.running.get(running.death) is not running:
        return  # an event of a child already finished, from the same select()
    _read_report(running)
    if kind == "conn":
        # The client sends nothing after its request: this is its end. Gone before the
        # child said how it ended (kill -9): the child ends as abruptly.
        with contextlib.suppress(OSError, KeyError, ValueError):
            state.selector.unregister(running.conn)
        if not running.report:
            with contextlib.suppress(OSError):
                os.kill(running.pid, signal.SIGKILL)
        return
    _finish(state, running, os.waitpid(running.pid, 0)[1])


def _read_report(running: Running) -> None:
    """What the child wrote in its pipe so far: its report, once it has finished."""
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(running.death, 1 << 16):
            running.report += chunk


def _reap_quietly(state: State) -> None:
    """A child whose pipe is still held (by a process it forked) is reaped here, and the
    spares told to end."""
    for pid in list(state.dropped):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        state.dropped.remove(pid)
    for running in list(state.running.values()):
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(running.pid, os.WNOHANG)
            if pid:
                _read_report(running)
                _finish(state, running, status)


def _finish(state: State, running: Running, status: int) -> None:
    if os.WIFSIGNALED(status) and not running.report:
        with contextlib.suppress(OSError):
            running.conn.sendall(SIGNALED + os.WTERMSIG(status).to_bytes(4, "little"))
    for fileobj in (running.conn, running.death):
        with contextlib.suppress(KeyError, ValueError):
            state.selector.unregister(fileobj)
    running.conn.close()
    os.close(running.death)
    del state.running[running.death]
    _keep_what_was_read(running.report)
    _drop_spare(state)  # forked before these files were kept: a new one sees them
    _fork_spare(state)
    state.last = time.monotonic()


def _keep_what_was_read(report: bytes) -> None:
    """Decode the files the child read whole (its report: exit code, [(path, kind)]) so
    the next fork finds them decoded; then freeze them out of the cyclic collector's
    passes (a fork's collections would touch, hence copy, every page they are on)."""
    import gc
    import marshal

    try:
        _code, read = marshal.loads(report)
        for path, kind in read:
            warm.keep(path, kind)
    except (EOFError, ValueError, TypeError):
        return
    gc.freeze()


__all__ = ["main", "module_files", "preload"]
