"""The python-target worker: ``python -m flowmake.builtin.worker``, one process serving many jobs.

The pool (``flowmake/builtin/python_workers.py``) talks to it over its stdin and stdout:
each message is an 8-byte big-endian length followed by a pickle. A request is a dict
(the job's function, kwargs, inputs, outputs, root, plugins, and the path of the file
that captures its output); the reply is ``{"ok": bool, "error": str | None}``. A ``None``
request, or the end of stdin, stops the worker.

The protocol keeps private duplicates of the original pipes: fd 1 and 2 point at the
job's capture file while it runs (so ``print``, C-level writes and faulthandler's dump of
a segfault all land there and survive a crash) and at /dev/null between jobs.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import pickle
import struct
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, cast

from flowmake.errors import FlowmakeError

_HEADER = struct.Struct(">Q")
_FLOWMAKE_DIR = os.path.dirname(os.path.abspath(__file__))


# -- framing (shared with the pool) ------------------------------------------------------


def send(fd: int, message: Any) -> None:
    """Write one length-prefixed pickle to a file descriptor."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def recv(fd: int) -> Any:
    """Read one length-prefixed pickle; raises EOFError when the other side is gone."""
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return pickle.loads(_read_exact(fd, size))


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


# -- failures --------------------------------------------------------------------------


class JobFailed(Exception):
    """An expected failure with a message of its own (no traceback is useful)."""


def user_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` with flowmake's and importlib's frames left out.

    Chained exceptions (``raise ... from``) keep their chain, each filtered the same way.
    """
    te = traceback.TracebackException.from_exception(exc)
    seen = set()
    current: traceback.TracebackException | None = te
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [f for f in current.stack if _is_user_frame(f.filename)])
        current = current.__cause__ or current.__context__
    return "".join(te.format())


def _is_user_frame(filename: str) -> bool:
    if filename.startswith("<frozen importlib"):
        return False
    return not os.path.abspath(filename).startswith(_FLOWMAKE_DIR + os.sep)


def _summary(exc: BaseException) -> str:
    """``ValueError: bad value``: the last line of the exception, for the one-line error."""
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


# -- one job ---------------------------------------------------------------------------

_plugins: dict[tuple[tuple[str, ...], str], Any] = {}


def plugins_for(job: dict[str, Any]) -> Any:
    """The plugin manager for a project, loaded once per worker (pluggy only when needed)."""
    key = (tuple(job["plugins"]), job["root"])
    if key not in _plugins:
        from flowmake.plugin.manager import Plugins

        _plugins[key] = Plugins(job["plugins"], job["root"])
    return _plugins[key]


@contextmanager
def _open(job: dict[str, Any], path: str, mode: str) -> Iterator[IO[bytes]]:
    """A local path (relative to the root) as a plain file, a URL through its backend."""
    if "://" in path:
        backend = plugins_for(job).backend_class(path)({})
        with backend.open(path, mode) as f:
            yield f
    else:
        with open(os.path.join(job["root"], path), mode) as f:
            yield f


def resolve(function: str) -> Callable[..., Any]:
    """Import ``module:function`` (``function`` may be dotted: ``Class.method``)."""
    module_name, _, attr = function.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except BaseException as exc:
        sys.stderr.write(user_traceback(exc))
        raise JobFailed(f"cannot import '{module_name}': {_summary(exc)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise JobFailed(f"module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise JobFailed(f"'{function}' is not callable")
    return cast("Callable[..., Any]", obj)


def load_inputs(job: dict[str, Any]) -> dict[str, Any]:
    """Table-form inputs, each loaded by the format of its extension."""
    values: dict[str, Any] = {}
    for name, path in job["inputs"]:
        if name in job["kwargs"]:
            raise JobFailed(f"'{name}' is both a param and an input name")
        fmt = plugins_for(job).format_for(path)
        try:
            with _open(job, path, "rb") as f:
                values[name] = fmt.load(f)
        except Exception as exc:
            sys.stderr.write(user_traceback(exc))
            raise JobFailed(f"cannot load input '{name}' ({path}): {_summary(exc)}") from None
    return values


def assign_outputs(outputs: list[tuple[str | None, str]], value: Any) -> list[tuple[str, Any]]:
    """Which value goes to which output path, by the rules of SPEC §1 (outputs)."""
    keys = [key for key, _ in outputs if key is not None]
    if keys:
        if not isinstance(value, dict):
            raise JobFailed(f"returned {type(value).__name__}, expected a dict with keys"
                            f" {', '.join(repr(k) for k in keys)}")
        missing = [k for k in keys if k not in value]
        extra = sorted(str(k) for k in value if k not in keys)
        problems = []
        if missing:
            problems.append(f"missing key(s) {', '.join(repr(k) for k in missing)}")
        if extra:
            problems.append(f"unexpected key(s) {', '.join(repr(k) for k in extra)}")
        if problems:
            raise JobFailed("returned dict does not match the outputs table: "
                            + "; ".join(problems))
        return [(path, value[key]) for key, path in outputs if key is not None]
    if len(outputs) != 1:
        raise JobFailed(f"returned a value but declares {len(outputs)} outputs: declare one"
                        " output, a table of outputs (and return a dict), or return None")
    return [(outputs[0][1], value)]


def save_outputs(job: dict[str, Any], value: Any) -> None:
    """Save the return value; every local file is written to a temporary file first and
    renamed into place only when all of them were written (so a failure leaves none)."""
    outputs = job["outputs"]
    if value is None:
        missing = [p for _, p in outputs
                   if "://" not in p and not os.path.exists(os.path.join(job["root"], p))]
        if missing:
            raise JobFailed(f"returned None and did not write {', '.join(missing)}")
        return
    if not outputs:
        return  # nowhere to save it: a target without outputs returns for nobody
    pairs = assign_outputs(outputs, value)
    temps: list[tuple[str, str]] = []
    try:
        for path, item in pairs:
            fmt = plugins_for(job).format_for(path)
            if "://" in path:
                _dump(job, fmt, item, path, path)
                continue
            final = os.path.join(job["root"], path)
            tmp = os.path.join(os.path.dirname(final),
                               f".{os.path.basename(final)}.flowmake-{os.getpid()}.tmp")
            temps.append((tmp, final))
            _dump(job, fmt, item, path, tmp)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _dump(job: dict[str, Any], fmt: Any, value: Any, shown: str, path: str) -> None:
    try:
        if "://" in path:
            with _open(job, path, "wb") as f:
                fmt.dump(value, f)
        else:
            with open(path, "wb") as f:
                fmt.dump(value, f)
    except Exception as exc:
        sys.stderr.write(user_traceback(exc))
        raise JobFailed(f"cannot save output {shown} as {fmt.NAME}: {_summary(exc)}") from None


def run_job(job: dict[str, Any]) -> None:
    """Import, load, call, save; raises JobFailed with the message the user sees."""
    os.chdir(job["cwd"])
    if job["root"] not in sys.path:
        sys.path.insert(0, job["root"])
    function = resolve(job["function"])
    kwargs = dict(job["kwargs"])
    kwargs.update(load_inputs(job))
    bound = job.get("bound")  # a plugin kind's runner takes its job first
    try:
        value = function(**kwargs) if bound is None else function(bound, **kwargs)
    except SystemExit as exc:
        sys.stderr.write(user_traceback(exc))
        raise JobFailed(f"called sys.exit({exc.code!r})") from None
    except BaseException as exc:
        raise _failed(exc) from None
    save_outputs(job, value)


def _failed(exc: BaseException) -> JobFailed:
    """The one-line error of an exception the function raised; its traceback goes to the
    log. A FlowmakeError with a ``summary`` (a notebook's failing cell) gives that line,
    and its whole message (the cell's traceback) is the log's."""
    summary = getattr(exc, "summary", None)
    if isinstance(summary, str) and summary and isinstance(exc, FlowmakeError):
        sys.stderr.write(str(exc).rstrip("\n") + "\n")
        return JobFailed(summary)
    sys.stderr.write(user_traceback(exc))
    return JobFailed(_summary(exc))


# -- the loop --------------------------------------------------------------------------


def serve(request: dict[str, Any], null_fd: int) -> dict[str, Any]:
    """Run one job with fd 1 and 2 captured in its file; the reply to send back."""
    fd = os.open(request["capture"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    saved_env = dict(os.environ)
    if request["job"].get("env"):
        os.environ.update(request["job"]["env"])
    try:
        run_job(request["job"])
        return {"ok": True, "error": None}
    except JobFailed as exc:
        return {"ok": False, "error": str(exc)}
    except Exception as exc:  # a plugin (format, backend) that failed outside the guards
        sys.stderr.write(user_traceback(exc))
        return {"ok": False, "error": _summary(exc)}
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        _flush()
        os.dup2(null_fd, 1)
        os.dup2(null_fd, 2)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _die_with_parent() -> None:
    """On Linux, be killed when the process that started us dies (flowmake, or a Dask
    worker), so that no orphan goes on writing outputs that nobody will record."""
    if not sys.platform.startswith("linux") or len(sys.argv) < 2:
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(sys.argv[1]):  # the parent died before prctl took effect
        os._exit(1)


def main() -> None:
    _die_with_parent()
    proto_in, proto_out = os.dup(0), os.dup(1)
    null_fd = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null_fd, fd)
    faulthandler.enable()  # a segfault's Python traceback goes to fd 2: the capture file
    while True:
        try:
            request = recv(proto_in)
        except EOFError:
            request = None
        if request is None:
            # Nothing is buffered (replies go out with os.write): skip the interpreter's
            # teardown, which takes longer than the jobs with pandas and friends loaded.
            os._exit(0)
        send(proto_out, serve(request, null_fd))


if __name__ == "__main__":
    main()
