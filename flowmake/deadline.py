"""A timer that is armed many times and starts one thread: the state store's and the
artifact cache's "commit what is queued within WRITE_SECONDS".

``threading.Timer`` starts a thread per arming, and ``Thread.start`` waits until the new
thread runs: ~0.1-1 ms of the caller's each time, which a build that commits per target
(a chain of targets) paid per target. Here the thread is started on the first ``arm`` and
then sleeps until the next deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Deadline:
    """Call ``action`` on a thread of its own ``seconds`` after ``arm`` (the first arm
    since the last call or ``cancel`` sets the time), unless ``cancel`` comes first.
    The action may still run just after a cancel that raced with it: it must do no harm
    then (commit an empty or a fresh queue)."""

    def __init__(self, seconds: float, action: Callable[[], None]) -> None:
        import threading

        self.seconds = seconds
        self._action = action
        self._cond = threading.Condition(threading.Lock())
        self._due: float | None = None
        self._thread: Any = None

    @property
    def armed(self) -> bool:
        return self._due is not None

    def arm(self) -> None:
        with self._cond:
            if self._due is not None:
                return
            self._due = time.monotonic() + self.seconds
            if self._thread is None:
                import threading

                self._thread = threading.Thread(target=self._run, name="flowmake-deadline",
                                                daemon=True)  # never holds the exit up
                self._thread.start()
            else:
                self._cond.notify()

    def cancel(self) -> None:
        with self._cond:
            self._due = None  # the thread sleeps until the next arm (no notify needed)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._due is None or self._due > time.monotonic():
                    self._cond.wait(None if self._due is None
                                    else max(0.0, self._due - time.monotonic()))
                self._due = None
            self._action()
