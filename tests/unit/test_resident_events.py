"""The resident server's events name the child they are about, not a descriptor number
that a later child may be given (flowmake/resident/server.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from flowmake.resident import server


def test_an_event_of_a_finished_child_never_reaches_the_next_one() -> None:
    # One select() returned a child's end, its client's EOF and a new client: the new
    # child's fork got the numbers just closed, and the old client's EOF then found the
    # new child by number, with no report yet, and SIGKILLed it (CI saw this once in
    # sixteen concurrent first builds).
    state = server.State(path="/nonexistent.sock", listener=None, lock=None, inode=0,
                         files=[], idle=60.0)
    death, death_write = os.pipe()
    os.set_blocking(death, False)
    ours, theirs = socket.socketpair()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        new = server.Running(proc.pid, ours, death)
        state.running[death] = new
        finished = server.Running(proc.pid + 1, ours, death)  # the same numbers, gone
        server._event(state, "conn", finished)
        assert proc.poll() is None  # left alone
        server._event(state, "conn", new)  # its own client gone before a report
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for fd in (death, death_write):
            os.close(fd)
        ours.close()
        theirs.close()
        state.selector.close()
