"""flow.lock's kept entries (store/flowlock.LockFile): a base and a journal of the entries
changed since, read back by a later process as the file's entries; the file always a
full render of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowmake.store import flowlock
from flowmake.store.db import Record


def record(name: str, version: int) -> Record:
    parts = f'{{"action": "make {name} v{version}", "outputs": ["{name}.txt"]}}'
    return Record(name, f"key-{name}-{version}", parts, f'{{"{name}.txt": "d{version}"}}',
                  1, 0.0, 0.0)


def kept(tmp_path: Path) -> dict[str, flowlock.Cached]:
    """What a new process's LockFile reads (the kept entries, if they still hold)."""
    return flowlock.LockFile(tmp_path / "flow.lock", tmp_path / "state").entries()


@pytest.fixture
def lock(tmp_path: Path) -> flowlock.LockFile:
    (tmp_path / "state").mkdir()
    made = flowlock.LockFile(tmp_path / "flow.lock", tmp_path / "state")
    names = [f"t{i}" for i in range(8)]
    assert made.update({n: record(n, 0) for n in names}, names)
    return made


def test_journaled_updates_read_back_as_the_file_s_entries(tmp_path, lock, monkeypatch):
    monkeypatch.setattr(flowlock, "_JOURNAL_MAX", 4)
    state = tmp_path / "state"
    base = (state / "lock.cache").stat().st_mtime_ns
    names = [f"t{i}" for i in range(1, 8)] + ["new"]  # t0 removed, "new" added
    assert lock.update({"t3": record("t3", 1), "new": record("new", 0)}, names)
    assert (state / "lock.cache").stat().st_mtime_ns == base  # 3 changes (t0, t3, new): journaled
    for version in (1, 2):  # the same entry again: still journaled
        lock = flowlock.LockFile(tmp_path / "flow.lock", state)
        assert lock.update({"t5": record("t5", version)}, names)
    assert (state / "lock.cache").stat().st_mtime_ns == base
    entries = flowlock.read(tmp_path / "flow.lock")
    assert entries is not None and sorted(entries) == sorted(names)
    assert (tmp_path / "flow.lock").read_text() == flowlock.render(entries)
    assert {n: c.key for n, c in kept(tmp_path).items()} == {n: e.key for n, e in entries.items()}
    assert lock.update({"t6": record("t6", 1)}, names)  # a 5th entry changed: a new base
    assert (state / "lock.cache").stat().st_mtime_ns != base
    assert not (state / "lock.cache-delta").exists()
    assert kept(tmp_path)["t6"].key == "key-t6-1" and kept(tmp_path)["t5"].key == "key-t5-2"


def test_a_file_edited_by_hand_is_parsed_again_and_compared(tmp_path, lock):
    path = tmp_path / "flow.lock"
    path.write_text(path.read_text().replace("key-t2-0", "key-t2-hand"))
    assert kept(tmp_path)["t2"].key == "key-t2-hand"  # the file is the truth
    again = flowlock.LockFile(path, tmp_path / "state")
    assert again.update({"t4": record("t4", 1)}, [f"t{i}" for i in range(8)])
    entries = flowlock.read(path)
    assert entries is not None and entries["t2"].key == "key-t2-hand"
    assert path.read_text() == flowlock.render(entries)


def test_no_change_leaves_the_file_untouched(tmp_path, lock):
    before = (tmp_path / "flow.lock").stat().st_mtime_ns
    names = [f"t{i}" for i in range(8)]
    assert not flowlock.LockFile(tmp_path / "flow.lock", tmp_path / "state").update(
        {"t1": record("t1", 0)}, names)
    assert (tmp_path / "flow.lock").stat().st_mtime_ns == before
