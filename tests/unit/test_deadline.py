"""flowmake/deadline.py: a timer armed many times on one thread."""

from __future__ import annotations

import threading
import time

from flowmake.deadline import Deadline


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_it_fires_once_the_time_after_the_first_arm() -> None:
    fired: list[float] = []
    deadline = Deadline(0.1, lambda: fired.append(time.monotonic()))
    armed = time.monotonic()
    deadline.arm()
    time.sleep(0.05)
    deadline.arm()  # already armed: does not move the time
    assert wait_until(lambda: fired)
    assert 0.09 <= fired[0] - armed < 1.0
    time.sleep(0.2)
    assert len(fired) == 1 and not deadline.armed


def test_a_cancel_before_the_time_stops_it() -> None:
    fired: list[int] = []
    deadline = Deadline(0.05, lambda: fired.append(1))
    deadline.arm()
    deadline.cancel()
    time.sleep(0.2)
    assert fired == []


def test_many_arms_use_one_thread() -> None:
    fired: list[int] = []
    deadline = Deadline(0.01, lambda: fired.append(1))
    before = {t.ident for t in threading.enumerate()}
    for i in range(20):
        deadline.arm()
        assert wait_until(lambda i=i: len(fired) == i + 1)
    new = [t for t in threading.enumerate() if t.ident not in before]
    assert [t.name for t in new] == ["flowmake-deadline"] and new[0].daemon
