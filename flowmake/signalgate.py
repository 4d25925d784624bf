"""Ctrl-C and SIGTERM held over the scheduler's steps that must happen together."""

from __future__ import annotations

import signal
import threading
from types import TracebackType
from typing import Any


class SignalGate:
    """Ctrl-C and SIGTERM, held over statements that must happen together (a job
    submitted and put on the running list; a job's record and its outcome): inside
    ``with gate:`` a signal waits, and is delivered at the end of the block, so that an
    interrupt lands between two jobs' steps, never inside one.

    ``install`` puts the gate in front of the Python-level handlers in place (on the main
    thread: the only one that runs them); ``uninstall`` puts them back. Entering the gate
    costs a counter, not a system call."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.depth = 0
        self.caught: tuple[int, Any] | None = None
        self.saved: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            handler = signal.getsignal(sig)
            if callable(handler):
                self.saved[sig] = handler  # first: uninstall restores it whatever happens
                signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.caught = self.caught or (signum, frame)
        else:
            self.saved[signum](signum, frame)  # Python's raises KeyboardInterrupt

    def __enter__(self) -> None:
        self.depth += 1

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.depth -= 1
        if not self.depth and self.caught is not None:  # delivered as if it came now
            (signum, frame), self.caught = self.caught, None
            self.saved[signum](signum, frame)
