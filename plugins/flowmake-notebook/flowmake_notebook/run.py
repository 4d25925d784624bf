"""Running a notebook top to bottom in a real Jupyter kernel (nbclient)."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from flowmake_notebook.errors import KernelUnavailable, NotebookFailed
from flowmake_notebook.params import INJECTED_TAG, injection_index, render
from flowmake_notebook.read import read_notebook

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
DEFAULT_KERNEL = "python3"


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class _Tracker:
    """nbclient's hooks: which cell runs, the failing cell's traceback, stream output."""

    def __init__(self, on_output: Callable[[str], object] | None) -> None:
        self.on_output = on_output
        self.index: int | None = None  # the cell running (or last run)
        self.traceback = ""

    def start(self, cell: Any, cell_index: int, **_: Any) -> None:
        self.index = cell_index

    def executed(self, cell: Any, **_: Any) -> None:
        if self.on_output is not None:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream":
                    self.on_output(output.get("text", ""))

    def error(self, cell: Any, execute_reply: Any, **_: Any) -> None:
        self.executed(cell)
        content = execute_reply.get("content", {}) if execute_reply else {}
        self.traceback = strip_ansi("\n".join(content.get("traceback") or []))


def run_notebook(path: str | os.PathLike[str], params: Mapping[str, Any], *,
                 executed: str | os.PathLike[str] | None = None,
                 cwd: str | os.PathLike[str], timeout: float | None = None,
                 kernel_name: str | None = None,
                 on_output: Callable[[str], object] | None = None) -> Any:
    """Run the notebook at ``path`` top to bottom in a fresh kernel; the executed notebook
    (an ``nbformat.NotebookNode``, outputs included) is returned.

    Args:
        path: the notebook (relative to the process's working folder, as ``executed``).
        params: injected as a new code cell of assignments right after the first code
            cell tagged ``parameters``, or at the top when there is none; no cell when
            empty.
        executed: where to keep the executed copy (with outputs, and the injected cell),
            written atomically, also when a cell failed (up to that cell).
        cwd: the kernel's working directory (the project root).
        timeout: seconds each cell may run (nbclient's per-cell timeout); None: no limit.
        kernel_name: the Jupyter kernel; default the notebook's own (its
            ``metadata.kernelspec.name``), else ``python3``.
        on_output: called with the text of each cell's stdout/stderr as the cell ends.

    Raises:
        ConfigError: the file is not a notebook, or a param cannot be rendered.
        KernelUnavailable: no such kernel, or it did not start.
        NotebookFailed: a cell raised, timed out, or the kernel died.
    """
    import nbformat
    from nbclient import NotebookClient

    name = os.fspath(path)
    nb, own_kernel = _load(nbformat, name)
    injected = _inject(nbformat, nb, params)
    kernel = kernel_name or own_kernel or DEFAULT_KERNEL
    tracker = _Tracker(on_output)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name=kernel,
                       resources={"metadata": {"path": os.fspath(cwd)}},
                       extra_arguments=_kernel_arguments(name, kernel),
                       on_cell_start=tracker.start, on_cell_executed=tracker.executed,
                       on_cell_error=tracker.error).execute()
    except BaseException as exc:
        failure = _failure(exc, name, kernel, tracker, injected, timeout)
        if tracker.index is not None and executed is not None:
            write_atomic(_text(nbformat, nb), executed)
        if failure is None:
            raise
        raise failure from None
    if executed is not None:
        write_atomic(_text(nbformat, nb), executed)
    return nb


def _text(nbformat: Any, nb: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nbformat.writes(nb)  # type: ignore[no-any-return]


def _load(nbformat: Any, name: str) -> tuple[Any, str | None]:
    """The notebook as a NotebookNode, and the name of its own kernel."""
    data = read_notebook(name)
    with warnings.catch_warnings():  # nbformat's about missing cell ids: not the user's doing
        warnings.simplefilter("ignore")
        nb = nbformat.reads(json.dumps(data), as_version=4)
    return nb, _kernel_of(data)


def _inject(nbformat: Any, nb: Any, params: Mapping[str, Any]) -> int | None:
    """Insert the parameters cell; its index in ``nb.cells``, None when nothing was."""
    if not params:
        return None
    cell = nbformat.v4.new_code_cell(render(params), metadata={"tags": [INJECTED_TAG]})
    if nb.nbformat_minor < 5:  # cell ids came with nbformat 4.5
        del cell["id"]
    index = injection_index(nb.cells)
    nb.cells.insert(index, cell)
    return index


def _kernel_arguments(name: str, kernel: str) -> list[str]:
    """Extra command-line arguments for the kernel: an ipykernel logs only its errors
    (not its start-up warnings, which would land in every target's output; the code's
    own warnings still reach the cell's outputs)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(kernel).argv
    except NoSuchKernel:
        raise KernelUnavailable(f"{name}: no Jupyter kernel named {kernel!r} (installed:"
                                f" {_installed_kernels()})", _KERNEL_HINT) from None
    return ["--IPKernelApp.log_level=ERROR"] if any("ipykernel" in a for a in argv) else []


def _kernel_of(data: dict[str, Any]) -> str | None:
    spec = data.get("metadata", {}).get("kernelspec")
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and name else None


def _failure(exc: BaseException, name: str, kernel: str, tracker: _Tracker,
             injected: int | None, timeout: float | None) -> Exception | None:
    """The error to raise for what nbclient raised; None: re-raise it as it is."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(exc, KernelUnavailable):  # found before the kernel starts
        return exc
    if isinstance(exc, NoSuchKernel):
        return KernelUnavailable(f"{name}: no Jupyter kernel named {kernel!r}"
                                 f" (installed: {_installed_kernels()})", _KERNEL_HINT)
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return None
    if tracker.index is None:
        return KernelUnavailable(f"{name}: kernel {kernel!r} did not start: {exc}", _KERNEL_HINT)
    cell = _cell_number(tracker.index, injected)
    if isinstance(exc, CellExecutionError):
        what = f"{exc.ename}: {exc.evalue}" if exc.evalue else exc.ename
        prefix = "" if cell is not None else "the injected parameters cell "
        return NotebookFailed(name, f"{prefix}failed: {what}", ename=exc.ename,
                              evalue=exc.evalue, traceback=tracker.traceback, cell=cell)
    if isinstance(exc, CellTimeoutError):
        return NotebookFailed(name, f"timed out after {timeout:g} s", ename="TimeoutError",
                              cell=cell)
    if isinstance(exc, DeadKernelError):
        return NotebookFailed(name, "failed: the kernel died", ename="DeadKernelError", cell=cell)
    return None


_KERNEL_HINT = ("install one (python -m ipykernel install --user --name NAME) or name an"
                " installed one (`jupyter kernelspec list`)")


def _cell_number(index: int, injected: int | None) -> int | None:
    """The 1-based position in the user's notebook of the executed notebook's cell
    ``index`` (None: the injected cell, which the user's notebook does not have)."""
    if injected is None or index < injected:
        return index + 1
    return None if index == injected else index


def _installed_kernels() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    names = sorted(KernelSpecManager().find_kernel_specs())
    return ", ".join(names) or "none"


def write_atomic(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    final = os.fspath(path)
    folder = os.path.dirname(final)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(final)}.flowmake-{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
