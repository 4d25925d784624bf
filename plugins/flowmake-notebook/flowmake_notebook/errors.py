"""The errors this plugin raises, as flowmake's own (``flowmake.errors.FlowmakeError``).

    FlowmakeError
     ├── NotebookFailed      exit 1: a cell (or the called function's notebook) failed
     └── KernelUnavailable   exit 2: the kernel does not exist or does not start
A notebook that cannot be read is ``flowmake.errors.ConfigError`` naming its path.
"""

from __future__ import annotations

from flowmake.errors import FlowmakeError


class NotebookFailed(FlowmakeError):
    """A notebook failed while it ran: the message names the notebook, the cell (its
    1-based position among all the notebook's cells, markdown included), the exception's
    name and value, then the traceback as plain text (no ANSI colours)::

        notebooks/train.ipynb: cell 4 failed: ValueError: no rows
        ---------------------------------------------------------------------------
        ValueError                                Traceback (most recent call last)
        ...

    ``problem`` follows the cell: ``failed: ValueError: no rows``, ``timed out after 5
    s``.

    ``summary`` is the first line alone, for a one-line status; ``traceback`` the rest.
    ``cell`` is None when the failure is not in a cell (the injected parameters, a
    function the notebook does not define).
    """

    exit_code = 1  # the user's work failed, as a failed target (BuildFailed)

    def __init__(self, notebook: str, problem: str, *, cell: int | None = None,
                 ename: str = "", evalue: str = "", traceback: str = "") -> None:
        where = f"{notebook}: cell {cell}" if cell is not None else f"{notebook}:"
        self.summary = f"{where} {problem}"
        message = f"{self.summary}\n{traceback.rstrip()}" if traceback.strip() else self.summary
        super().__init__(message)
        self.notebook, self.cell = notebook, cell
        self.ename, self.evalue, self.traceback = ename, evalue, traceback


class KernelUnavailable(FlowmakeError):
    """The Jupyter kernel asked for is not installed, or did not start."""
