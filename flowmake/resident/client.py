"""The ``flowmake`` command's first step: hand the command to the resident process.

Python's start and flowmake's imports cost 50-100 ms before a build does anything (make
starts in 2). A resident process for this environment (``server.py``) holds the imports
and forks a fresh child per command; this client sends the child its argv, cwd,
environment and its stdin/stdout/stderr (the descriptors themselves, SCM_RIGHTS), forwards
the signals it gets, and exits as the child did. Without a server (the first command, a
stale one, ``FLOWMAKE_RESIDENT=0``) the command runs here as always, and a server is
started in the background for the next one. docs/resident.md has the whole behaviour.

Only the standard library's C parts are imported here (``_socket``, ``_signal``,
``marshal``, ``resource``): the client's own cost is what every command pays.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.py imports enum (~3 ms)
import marshal
import os
import sys

from flowmake import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~10 ms to import: annotations only
    from typing import Any, NoReturn

ENV_SWITCH = "FLOWMAKE_RESIDENT"  # "0" (or off/no/false): run every command in-process
ENV_DIR = "FLOWMAKE_RESIDENT_DIR"  # where the sockets live (default: the user's runtime dir)
ENV_IDLE = "FLOWMAKE_RESIDENT_IDLE"  # seconds a server waits for a command before it exits
PROTOCOL = 1
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)  # to the child
# Frames from the server or the child: one type byte and a signed 32-bit value.
FRAME = 5
PID, EXIT, SIGNALED, REFUSED = b"P", b"X", b"K", b"R"
LIMITS = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
          "RLIMIT_NOFILE", "RLIMIT_AS")  # `ulimit`'s, as the child must have them
REFUSED_CODE = -1  # _wait's answer for REFUSED (an exit code is 0-255)
KEPT = ("LANG", "HOME", "PATH", "TMPDIR")
ENV_IMPORT_PATH = "FLOWMAKE_RESIDENT_IMPORT_PATH"  # the client's, for a server it starts
MAX_PATH = 96  # a socket's path, with room for the server's temporary suffix


def run() -> NoReturn:
    """The ``flowmake`` command (bin/flowmake): the resident process when there is one,
    else this process."""
    if _wanted():
        code = _delegate()
        if code is not None:
            os._exit(code)
    from flowmake.cli.main import run as run_here

    run_here()


def trace(message: str) -> None:
    """``FLOWMAKE_TRACE=resident``: a line on stderr for each way a command goes."""
    if "resident" in os.environ.get("FLOWMAKE_TRACE", ""):
        os.write(2, f"flowmake: resident: {message}\n".encode(errors="replace"))


def _wanted() -> bool:
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "off", "no", "false"):
        return False
    flags = sys.flags
    # An interpreter started with options of its own (-X importtime, -I, -O, -W, dev mode)
    # runs the command itself: a server started without them would not honour them.
    return (os.name == "posix" and not sys._xoptions and not sys.warnoptions
            and not (flags.isolated or flags.no_site or flags.ignore_environment
                     or flags.optimize or flags.dev_mode or flags.verbose or flags.inspect))


def key_parts(import_path: list[str]) -> tuple[Any, ...]:
    """What a server must share with this client to run its commands: flowmake's version
    and location, the interpreter, the import path (the client's but its first entry, the
    script's folder or the working folder, which the child is given) and the variables
    that shape an interpreter's start (PYTHON*, the locale's)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = sorted((k, v) for k, v in os.environ.items()
                 if k.startswith(("PYTHON", "LC_")) or k == "LANG")
    return (PROTOCOL, __version__, here, sys.version, sys.prefix, import_path, env,
            os.getuid(), _namespaces())


def _namespaces() -> tuple[str, ...]:
    """The Linux namespaces and control groups this process lives in: a server in another
    container that shares /tmp with this one must not run its commands, and a command
    started in a cgroup (a CI job's, `systemd-run --scope -p MemoryMax=...`) runs in it
    (empty elsewhere)."""
    found = []
    for kind in ("mnt", "pid", "net", "user"):
        try:
            found.append(os.readlink(f"/proc/self/ns/{kind}"))
        except OSError:
            pass
    try:
        with open("/proc/self/cgroup", "rb") as f:
            found.append(f.read().decode(errors="replace"))
    except OSError:
        pass
    return tuple(found)


def folder() -> str | None:
    """The folder of this user's sockets, made private; None when it is not ours alone
    (a server found there could be another user's)."""
    path = os.environ.get(ENV_DIR) or os.path.join(
        os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/flowmake-{os.getuid()}",
        "flowmake" if os.environ.get("XDG_RUNTIME_DIR") else "")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


# The socket's name: the key's bytes as a number, modulo the largest 32-bit prime (no
# hash module to load: zlib's import was 0.3 ms of every command). Two keys that share a
# name only share a socket: the server refuses a client of another key.
_NAME_PRIME = 4294967291


def socket_path(parts: tuple[Any, ...]) -> str | None:
    where = folder()
    if where is None:
        return None
    data = marshal.dumps(parts)
    name = int.from_bytes(data, "little") % _NAME_PRIME
    path = os.path.join(where, f"{name:08x}{len(data) % 4096:03x}.sock")
    return path if len(path) < MAX_PATH else None  # sun_path holds 108 bytes


def _delegate() -> int | None:
    """The command's exit code from the resident child, or None to run it here."""
    import _socket

    parts = key_parts(sys.path[1:])
    path = socket_path(parts)
    if path is None:
        trace("no private folder for sockets: in-process")
        return None
    request = _request(parts)  # made before connecting: the server waits for it (2 s)
    signals = _Forwarding()  # a Ctrl-C from now on goes to the child, once there is one
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as exc:
        conn.close()
        trace(f"no server at {path} ({exc.strerror}): in-process, starting one")
        start_server(path)
        return signals.here(None)
    try:
        code = _converse(conn, signals, *request)
    finally:
        conn.close()
    if code == REFUSED_CODE:  # a server retired (its code changed): start a fresh one
        start_server(path)
        return None
    return code


def _request(parts: tuple[Any, ...]) -> tuple[bytes, list[int]]:
    fds = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass  # closed: the child gets /dev/null there
    umask = os.umask(0o022)
    os.umask(umask)
    payload = marshal.dumps((parts, sys.argv, os.getcwd(), dict(os.environ), sys.path[0],
                             umask, fds, _ignored(), _limits(), _scheduling()))
    return len(payload).to_bytes(4, "little") + payload, fds


def _limits() -> list[tuple[int, int, int]]:
    """This process's resource limits (``ulimit``), for the child to take."""
    import resource

    found = [getattr(resource, name) for name in LIMITS if hasattr(resource, name)]
    return [(r, *resource.getrlimit(r)) for r in found]


def _scheduling() -> tuple[int | None, list[int] | None]:
    """This process's nice value and the CPUs it may run on (`nice`, `taskset`)."""
    try:
        nice: int | None = os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        nice = None
    try:
        cpus: list[int] | None = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = None
    return nice, cpus


def _ignored() -> list[int]:
    """The forwarded signals this process was started ignoring (``nohup``, a shell's
    background job): the child ignores them too, and they are not forwarded."""
    return [s for s in FORWARDED if _signal.getsignal(s) == _signal.SIG_IGN]


class _Forwarding:
    """The signals to pass on to the child, held from before the request is sent: one
    that comes before the child is known waits for it (``pending``)."""

    def __init__(self) -> None:
        self.child: int | None = None
        self.pending: list[int] = []
        self.saved: dict[int, Any] = {}
        for signum in FORWARDED:
            handler = _signal.getsignal(signum)
            if handler != _signal.SIG_IGN:
                self.saved[signum] = _signal.SIG_DFL if handler is None else handler
                _signal.signal(signum, self.forward)

    def forward(self, signum: int, frame: Any) -> None:
        if self.child is not None:
            try:
                os.kill(self.child, signum)
            except OSError:
                pass
        else:
            self.pending.append(signum)

    def started(self, pid: int) -> None:
        self.child = pid
        for signum in self.pending:
            self.forward(signum, None)

    def here(self, code: int | None) -> int | None:
        """The command runs in this process after all: its own handlers back (``forward``
        would swallow a Ctrl-C), and a signal that came meanwhile ends it unstarted."""
        for signum, handler in self.saved.items():
            _signal.signal(signum, handler)
        if self.pending:
            _die_by(self.pending[0])
        return code


def _converse(conn: Any, signals: _Forwarding, data: bytes, fds: list[int]) -> int | None:
    import _socket

    try:
        fd_bytes = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
        sent = conn.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd_bytes)])
        if sent < len(data):
            conn.sendall(data[sent:])
    except OSError:
        return signals.here(None)  # the server went away: this process runs the command
    return _wait(conn, signals)


def _wait(conn: Any, signals: _Forwarding) -> int | None:
    buffer = b""
    while True:
        try:
            chunk = conn.recv(64)
        except OSError:
            chunk = b""
        if not chunk:  # both ends closed with no exit frame
            if signals.child is None:
                trace("the server closed the connection: in-process")
                return signals.here(None)  # never started: run it here
            _lost(signals.child)
        buffer += chunk
        while len(buffer) >= FRAME:
            kind, value = buffer[:1], int.from_bytes(buffer[1:FRAME], "little", signed=True)
            buffer = buffer[FRAME:]
            if kind == REFUSED:
                trace("refused by the server: in-process")
                return signals.here(REFUSED_CODE)
            if kind == PID:
                trace(f"run by process {value}")
                signals.started(value)
            elif kind == EXIT:
                return value
            elif kind == SIGNALED:
                _die_by(value)


def _die_by(signum: int) -> NoReturn:
    """End as the child ended, killed by ``signum`` (a shell tells Ctrl-C from exit 130)."""
    sys.stdout.flush()
    try:
        _signal.signal(signum, _signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
        pass
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def _lost(pid: int) -> NoReturn:
    os.write(2, f"flowmake: error: the resident process running this command (pid {pid}) "
                f"ended without its exit status\n  hint: see `flowmake log`; set "
                f"{ENV_SWITCH}=0 to run commands in-process\n".encode())
    os._exit(1)


def start_server(path: str) -> None:
    """Start a server for this environment, detached (its own session, stdio on
    /dev/null), for the next command; two starting at once leave one (a lock)."""
    boot = ("import marshal, os, sys; "
            f"sys.path[:] = marshal.loads(bytes.fromhex(os.environ.pop({ENV_IMPORT_PATH!r}))); "
            "from flowmake.resident.server import main; main(sys.argv[1])")
    devnull = os.devnull
    # The server keeps only what shapes its start: the commands get their own environment.
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("PYTHON", "LC_", "FLOWMAKE_RESIDENT")) or k in KEPT}
    env[ENV_IMPORT_PATH] = marshal.dumps(sys.path[1:]).hex()
    try:
        os.posix_spawn(sys.executable, [sys.executable, "-c", boot, path],
                       env, setsid=True, file_actions=[
                           (os.POSIX_SPAWN_OPEN, 0, devnull, os.O_RDONLY, 0),
                           (os.POSIX_SPAWN_OPEN, 1, devnull, os.O_WRONLY, 0),
                           (os.POSIX_SPAWN_DUP2, 1, 2)])
    except (OSError, AttributeError):
        pass  # no server then: every command runs in-process, as before
