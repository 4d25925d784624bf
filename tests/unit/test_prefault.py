"""A resident spare's page faults taken before its command (resident/prefault.py), in a
real forked child of a process holding real objects, as a spare is its server's fork."""

from __future__ import annotations

import os
import resource

import pytest

from flowmake.resident import prefault

pytestmark = pytest.mark.skipif(prefault._LIBC is None, reason="Linux with ctypes only")


def in_child(body: str) -> str:
    """Run ``body`` (Python, with ``objects`` and ``faults()`` in scope) in a fork of
    this process after it made 200,000 strings; what it printed."""
    objects = [f"/some/project/out/l{i % 10}/t{i}.txt" for i in range(200_000)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            out: list[str] = []

            def faults() -> int:
                return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

            exec(body, {"objects": objects, "faults": faults, "out": out,
                        "prefault": prefault})
            os.write(write_end, "\n".join(out).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        text = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return text


@pytest.mark.skipif(tuple(map(int, os.uname().release.split(".")[:2])) < (5, 14),
                    reason="MADV_POPULATE_WRITE: Linux 5.14")
def test_after_populate_writing_the_servers_objects_takes_no_faults() -> None:
    out = in_child("""
before = faults()
done = prefault.populate(lambda: False)
taken = faults() - before
start = faults()
for item in objects:  # each string's count of references is written
    pass
out.append(f"{done} {taken} {faults() - start}")
""").split()
    done, taken, after = map(int, out)
    assert done > 8 << 20 and taken > 1000  # the pages were faulted in by populate
    assert after < 50  # not the ~2,000 pages the strings are on, page by page


def test_without_populate_the_same_walk_faults_page_by_page() -> None:
    after = int(in_child("""
start = faults()
for item in objects:
    pass
out.append(str(faults() - start))
"""))
    assert after > 500  # what populate saves (the strings fill ~2,000 pages)


def test_populate_changes_no_byte_of_what_it_faults_in() -> None:
    text = in_child("""
import hashlib
digest = lambda: hashlib.sha256("".join(objects).encode()).hexdigest()
first = digest()
prefault.populate(lambda: False)
out.append(str(first == digest() and len(objects) == 200_000))
""")
    assert text == "True"


def test_a_command_handed_over_stops_it_at_once() -> None:
    assert in_child("out.append(str(prefault.populate(lambda: True)))") == "0"

