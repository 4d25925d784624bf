"""A spare's page faults taken before its command comes, not during it.

A fork shares its server's memory copy-on-write: the first write to each page (a count of
references going up is a write) stops the process for a fault that copies the page, and
fresh memory faults in the same way, page by page. An edit build of 10,000 targets took
~5,300 such faults, ~3 us each on this kind of VM: ~15 ms of its ~150. A spare waits for
its command with nothing to do, so it takes them first (``populate``):

- ``madvise(MADV_POPULATE_WRITE)`` (Linux 5.14) over each private writable mapping
  faults every page in, as writing to it would, in the kernel, without changing a byte;
- glibc's malloc is told to keep freed memory rather than give it back (its trim and
  mmap thresholds raised), and its heap is grown by ``HEAP_ROOM`` first, so that the
  command's allocations land on pages already faulted in.

At most the memory the process holds, and that room, is populated: a large mapping some
library reserved and never touched does not become memory.

The price is memory: the spare's pages become its own instead of its server's (about the
server's size again, while it waits). It stops as soon as a command is handed to it
(``interrupted``), so a command never waits for more than one ``STEP``. Anywhere this is
not available (not Linux, an older kernel, no glibc), it does nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

MADV_POPULATE_WRITE = 23  # <linux/mman.h>
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
KEEP_FREED = 256 << 20  # freed memory glibc keeps rather than trims
MMAP_FROM = 32 << 20  # allocations glibc serves from its heap rather than by mmap (its max)
HEAP_ROOM = 16 << 20  # the heap grown by this much, faulted in, for the command to use
STEP = 4 << 20  # populated at a time between looks for a command


def _libc() -> Any:
    """libc's madvise, mallopt, malloc and free through ctypes, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.madvise.restype = ctypes.c_int
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()  # loaded with the server (ctypes is ~5 ms to import), not in each spare


def populate(interrupted: Callable[[], bool]) -> int:
    """Fault this process's private writable memory in (see above); the bytes done.
    ``interrupted`` is asked between steps: True stops it (a command has come)."""
    libc = _LIBC
    if libc is None:
        return 0
    # mallopt answers 1 when it took the value (glibc), 0 when not (another libc's stub)
    if libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED) and libc.mallopt(M_MMAP_THRESHOLD,
                                                                   MMAP_FROM):
        room = libc.malloc(HEAP_ROOM)
        if room:
            libc.free(room)  # kept in the heap, which is populated below
    try:
        with open("/proc/self/maps") as f:
            maps = f.read().splitlines()
        with open("/proc/self/statm") as f:
            resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
    # at most what the process holds now, and the heap's room: a large mapping reserved
    # but never touched (some library's arena) is not made memory
    budget = resident + HEAP_ROOM
    done = 0
    for line in maps:
        fields = line.split()
        if len(fields) < 5 or fields[1] != "rw-p" or fields[-1] == "[stack]":
            continue
        low, high = (int(x, 16) for x in fields[0].split("-"))
        for start in range(low, high, STEP):
            if interrupted():
                return done
            length = min(STEP, high - start, budget - done)
            if length <= 0:
                return done
            if libc.madvise(start, length, MADV_POPULATE_WRITE) != 0:
                if done == 0:
                    return 0  # not this kernel's (EINVAL before 5.14): nothing to do
                break  # a mapping it cannot populate (changed meanwhile): the next
            done += length
    return done
