"""flow.lock's kept entries (store/flowlock.LockFile over store/lockindex.py, SQLite):
read one by one, the file rewritten from its own text with the changed blocks spliced
in, always a full render of its entries, and parsed again whenever it is not what the
index says."""

from __future__ import annotations

import marshal
import os
import random
import sqlite3
from pathlib import Path

import pytest

from flowmake.store import flowlock, lockindex
from flowmake.store.db import Record

NAMES = [f"t{i}" for i in range(8)]


def record(name: str, version: int) -> Record:
    parts = f'{{"action": "make {name} v{version}", "outputs": ["{name}.txt"]}}'
    return Record(name, f"key-{name}-{version}", parts, f'{{"{name}.txt": "d{version}"}}',
                  1, 0.0, 0.0)


def fresh(tmp_path: Path) -> flowlock.LockFile:
    """What a new process's LockFile sees."""
    return flowlock.LockFile(tmp_path / "flow.lock", tmp_path / "state")


def check_file(tmp_path: Path) -> dict[str, flowlock.LockEntry]:
    """The file is a full render of its entries, and a new LockFile reads them."""
    entries = flowlock.read(tmp_path / "flow.lock")
    assert entries is not None
    assert (tmp_path / "flow.lock").read_text() == flowlock.render(entries)
    kept = fresh(tmp_path).entries()
    assert {n: (c.key, c.outputs_json) for n, c in kept.items()} == {
        n: (e.key, e.outputs_json) for n, e in entries.items()}
    return entries


@pytest.fixture
def lock(tmp_path: Path) -> flowlock.LockFile:
    (tmp_path / "state").mkdir()
    made = fresh(tmp_path)
    assert made.update({n: record(n, 0) for n in NAMES}, NAMES)
    return made


def no_whole_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing the file or reading every kept entry fails the test."""
    def refuse(*args: object) -> None:
        raise AssertionError("read whole")

    for reader in ("parse", "as_rendered", "parse_toml"):
        monkeypatch.setattr(flowlock, reader, refuse)
    monkeypatch.setattr(lockindex.Index, "rows", refuse)


def test_a_file_flowmake_wrote_is_read_without_tomllib(lock: flowlock.LockFile, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh clone's first build (no index) reads flowmake's own text by flowmake's own
    reader and keeps it as rendered (its next edit splices); a hand-edited file goes to
    tomllib and is not kept as rendered."""
    lock.close()
    (tmp_path / "state" / "lock.cache").unlink()

    def refuse(text: str) -> None:
        raise AssertionError("tomllib")

    with monkeypatch.context() as patched:
        patched.setattr(flowlock, "parse_toml", refuse)
        reader = fresh(tmp_path)
        assert sorted(reader.entries()) == NAMES
        assert reader.entries()["t3"].key == "key-t3-0"
        assert reader._current() is not None and reader._current().rendered
        reader.close()
    path = tmp_path / "flow.lock"
    path.write_text(path.read_text().replace('key = "key-t3-0"', 'key="key-t3-0"'))
    (tmp_path / "state" / "lock.cache").unlink()
    edited = fresh(tmp_path)
    assert edited.entries()["t3"].key == "key-t3-0"  # tomllib's reading
    assert edited._current() is not None and not edited._current().rendered
    edited.close()


def test_an_entry_is_read_alone_and_an_update_splices_the_file(tmp_path, lock, monkeypatch):
    no_whole_read(monkeypatch)
    reader = fresh(tmp_path)
    assert reader.entry("t3") is not None and reader.entry("t3").key == "key-t3-0"
    assert reader.entry("nothing") is None
    names = [n for n in NAMES if n != "t0"] + ["new", "a-first"]  # t0 removed, two added
    assert fresh(tmp_path).update({"t3": record("t3", 1), "new": record("new", 0),
                                   "a-first": record("a-first", 0)}, names)
    for version in (1, 2):  # the same entry again, by a new process each time
        assert fresh(tmp_path).update({"t7": record("t7", version)}, names)
    monkeypatch.undo()
    entries = check_file(tmp_path)
    assert sorted(entries) == sorted(names)
    assert (entries["t3"].key, entries["t7"].key) == ("key-t3-1", "key-t7-2")


def test_many_random_updates_keep_the_file_a_full_render(tmp_path, lock):
    rng = random.Random(17)
    names = list(NAMES)
    for step in range(40):
        if rng.random() < 0.3 and names:
            names.remove(rng.choice(names))  # gone from flow.toml
        changed: dict[str, Record | None] = {}
        for _ in range(rng.randint(0, 3)):
            name = rng.choice([*names, f"n{step}", "a", "zz"])
            if name not in names:
                names.append(name)
            changed[name] = record(name, step)
        if rng.random() < 0.2 and names:
            changed[rng.choice(names)] = None  # forgotten (`clean`)
        lf = fresh(tmp_path) if rng.random() < 0.5 else lock
        if rng.random() < 0.3:
            lf.entry(rng.choice(names or ["x"]))  # read one first, as the Checker does
        lf.update(changed, names)
        lock = lf
        entries = check_file(tmp_path)
        want = {n for n in names if n in entries}
        assert set(entries) == want


def test_a_file_edited_by_hand_is_parsed_again_and_compared(tmp_path, lock):
    path = tmp_path / "flow.lock"
    path.write_text(path.read_text().replace("key-t2-0", "key-t2-hand"))
    assert fresh(tmp_path).entry("t2").key == "key-t2-hand"  # the file is the truth
    again = fresh(tmp_path)
    assert again.update({"t4": record("t4", 1)}, NAMES)
    entries = check_file(tmp_path)
    assert entries["t2"].key == "key-t2-hand" and entries["t4"].key == "key-t4-1"


@pytest.mark.parametrize("way", ["splice", "whole"])
def test_a_file_replaced_just_after_a_write_is_read_again(tmp_path, lock, monkeypatch, way):
    """The index keeps the stat of the file it wrote, taken before its rename: a file
    another program put there right after (a checkout, a merge tool) is not taken for
    it, though its stat is the one a look after the write would see."""
    path = tmp_path / "flow.lock"
    real = flowlock._write_lock

    def then_replaced(target: Path, data: bytes | list[bytes]) -> tuple[int, int, int]:
        written = real(target, data)
        other = tmp_path / "other.lock"
        text = target.read_text()  # what was written, pieces or not
        other.write_text(text.replace("key-t5-0", "key-t5-them"))
        os.replace(other, target)
        return written

    monkeypatch.setattr(flowlock, "_write_lock", then_replaced)
    if way == "whole":
        path.write_text(path.read_text() + "\n# a comment of someone's\n")  # not a render
    assert fresh(tmp_path).update({"t1": record("t1", 9)}, NAMES)
    monkeypatch.undo()
    reader = fresh(tmp_path)
    assert reader.entry("t5").key == "key-t5-them"  # the file is the truth
    assert reader.entry("t1").key == "key-t1-9"


def test_a_hand_formatted_file_is_rewritten_whole_on_the_next_change(tmp_path, lock):
    path = tmp_path / "flow.lock"
    path.write_text(path.read_text() + "\n# a comment of someone's\n")
    assert not fresh(tmp_path).update({"t1": record("t1", 0)}, NAMES)  # nothing changed
    assert "someone's" in path.read_text()
    assert fresh(tmp_path).update({"t1": record("t1", 5)}, NAMES)
    assert "someone's" not in path.read_text()
    assert check_file(tmp_path)["t1"].key == "key-t1-5"


def test_an_edit_the_stat_does_not_show_is_caught_by_the_splice(tmp_path, lock):
    # same size, same inode, mtime put back: the index's stat still matches, but the
    # block of the entry being replaced is not the kept one: the file is parsed again
    path = tmp_path / "flow.lock"
    st = path.stat()
    with open(path, "r+", encoding="utf-8") as f:
        text = f.read()
        f.seek(0)
        f.write(text.replace('"d0"', '"e0"', 1))  # t0's output digest, same length
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert flowlock.signature(path) == (st.st_size, st.st_mtime_ns, st.st_ino)
    lf = fresh(tmp_path)
    assert lf.update({"t0": record("t0", 1)}, NAMES)
    assert check_file(tmp_path)["t0"].key == "key-t0-1"


def test_a_cache_that_cannot_be_written_leaves_the_file_the_truth(tmp_path, lock,
                                                                   monkeypatch):
    lf = fresh(tmp_path)
    assert lf.entry("t1").key == "key-t1-0"
    real = lockindex.Index._db

    def busy(self: lockindex.Index) -> sqlite3.Connection:
        con = real(self)
        con.execute("PRAGMA query_only = ON")  # every write fails, as a busy or read-only one
        return con

    monkeypatch.setattr(lockindex.Index, "_db", busy)
    lf._index.close()
    assert lf.update({"t1": record("t1", 1), "new": record("new", 1)}, [*NAMES, "new"])
    assert lf.entry("t3").key == "key-t3-0" and lf.entry("new").key == "key-new-1"
    assert lf.entries()["t1"].key == "key-t1-1"  # not the rows the cache still holds
    assert lf.update({"t2": record("t2", 1)}, NAMES)  # "new" gone from flow.toml
    assert lf.update({"t3": record("t3", 1)}, NAMES)  # the same LockFile, the file re-read
    assert "new" not in flowlock.read(tmp_path / "flow.lock")
    assert fresh(tmp_path).update({"t4": record("t4", 1)}, NAMES)
    monkeypatch.undo()
    entries = check_file(tmp_path)
    assert [entries[f"t{i}"].key for i in range(1, 5)] == [f"key-t{i}-1" for i in range(1, 5)]


def test_no_change_leaves_the_file_untouched(tmp_path, lock):
    before = (tmp_path / "flow.lock").stat().st_mtime_ns
    assert not fresh(tmp_path).update({"t1": record("t1", 0)}, NAMES)
    assert not fresh(tmp_path).update({}, NAMES)
    assert (tmp_path / "flow.lock").stat().st_mtime_ns == before


def test_the_last_entry_removed_leaves_an_empty_lock(tmp_path, lock):
    assert fresh(tmp_path).update({}, [])
    assert check_file(tmp_path) == {}
    assert fresh(tmp_path).update({"t1": record("t1", 3)}, ["t1"])
    assert list(check_file(tmp_path)) == ["t1"]


def test_an_older_flowmake_s_kept_entries_are_replaced(tmp_path, lock):
    state = tmp_path / "state"
    (state / "lock.cache").write_bytes(marshal.dumps((1, 5, None, True, {})))  # format 1
    (state / "lock.cache-delta").write_bytes(marshal.dumps((1, 5, None, True, {})))
    (state / "lock.sig").write_text("(1, 2, 3)")
    assert fresh(tmp_path).entry("t5").key == "key-t5-0"  # parsed from the file
    assert not (state / "lock.cache-delta").exists() and not (state / "lock.sig").exists()
    no_whole_read_now = fresh(tmp_path)
    assert no_whole_read_now._current() is not None  # the new cache holds for the file


def _spliced(*args):
    """splice's answer with its pieces joined, as the file gets them written."""
    found = lockindex.splice(*args)
    return None if found is None else (b"".join(found[0]), found[1])


def test_splice_refuses_a_text_that_is_not_its_layout():
    layout = lockindex.Layout(["a", "b"], [2, 3])
    data = b"P\n" + b"AA\nBBB"
    assert _spliced(data, b"P\n", layout, {"b": b"xy"}, set(), {}) == (
        b"P\nAA\nxy", lockindex.Layout(["a", "b"], [2, 2]))
    assert _spliced(data + b"!", b"P\n", layout, {}, set(), {}) is None  # length
    assert _spliced(b"Q\n" + data[2:], b"P\n", layout, {}, set(), {}) is None
    assert _spliced(data, b"P\n", layout, {}, set(), {"a": b"AB"}) is None  # a block
    assert _spliced(data, b"P\n", layout, {"0": b"z", "c": b"cc"}, {"a", "b"},
                    {}) == (b"P\nz\ncc", lockindex.Layout(["0", "c"], [1, 2]))
    assert _spliced(data, b"P\n", layout, {}, {"a", "b"}, {}) == (
        b"P\n", lockindex.Layout([], []))


def test_non_ascii_names_and_values_are_spliced_by_their_bytes(tmp_path, lock):
    names = [*NAMES, "zürich", "ёлка"]
    assert fresh(tmp_path).update({"zürich": record("zürich", 0), "ёлка": record("ёлка", 0)},
                                  names)
    assert fresh(tmp_path).update({"t1": record("t1", 1), "ёлка": record("ёлка", 2)}, names)
    entries = check_file(tmp_path)
    assert (entries["ёлка"].key, entries["t1"].key) == ("key-ёлка-2", "key-t1-1")


def test_entries_preloaded_together_are_those_read_one_by_one(tmp_path, lock, monkeypatch):
    no_whole_read(monkeypatch)
    alone = {n: fresh(tmp_path).entry(n) for n in [*NAMES, "absent"]}
    together = fresh(tmp_path)
    calls: list[str] = []
    real_row = lockindex.Index.row
    monkeypatch.setattr(lockindex.Index, "row",
                        lambda self, name: calls.append(name) or real_row(self, name))
    together.preload([*NAMES, "absent"])
    assert {n: together.entry(n) for n in [*NAMES, "absent"]} == alone
    assert calls == []  # every one, the absent one too, answered from the preload
    assert together.update({"t3": record("t3", 1)}, NAMES)  # a splice from what it read
    monkeypatch.undo()
    assert check_file(tmp_path)["t3"].key == "key-t3-1"


def test_a_flow_whose_targets_hold_the_files_names_is_not_searched_for_removals(tmp_path,
                                                                                 lock):
    """The layout keeps the stamp of the compiled flow its names are all targets of: an
    update against that same flow takes no set of the names (only the entries ``changed``
    removes go); another stamp (flow.toml parsed again) looks for removed targets."""
    assert fresh(tmp_path).update({"t1": record("t1", 1)}, NAMES, within=11)
    assert fresh(tmp_path)._index.layout().within == 11

    class Unwalked(dict):  # the targets, which the update must not walk
        def __iter__(self):
            raise AssertionError("the targets walked")

    targets = Unwalked.fromkeys(NAMES)
    assert fresh(tmp_path).update({"t2": record("t2", 1), "t3": None}, targets, within=11)
    with pytest.raises(AssertionError, match="walked"):  # as another flow's would be
        fresh(tmp_path).update({"t2": record("t2", 2)}, targets, within=10)
    entries = check_file(tmp_path)
    assert "t3" not in entries and entries["t2"].key == "key-t2-1"
    assert fresh(tmp_path)._index.layout().within == 11
    # t7 gone from flow.toml: a new compiled flow, the file's names compared with it
    assert fresh(tmp_path).update({"t1": record("t1", 2)}, NAMES[:7], within=12)
    entries = check_file(tmp_path)
    assert "t7" not in entries and entries["t1"].key == "key-t1-2"
    assert fresh(tmp_path)._index.layout().within == 12
    # no stamp known (a flow that could not be compiled to a file): compared as before
    assert fresh(tmp_path).update({"t4": None}, NAMES[:7])
    assert fresh(tmp_path)._index.layout().within is None
    assert "t4" not in check_file(tmp_path)


def test_a_layout_kept_before_the_stamp_reads_as_none(tmp_path, lock):
    db = sqlite3.connect(tmp_path / "state" / "lock.cache")
    names, sizes, _ = fresh(tmp_path)._index.layout()
    db.execute("UPDATE meta SET layout = ?", (marshal.dumps((names, sizes)),))
    db.commit()
    db.close()
    assert fresh(tmp_path)._index.layout() == lockindex.Layout(names, sizes, None)
    assert fresh(tmp_path).update({"t5": record("t5", 3)}, NAMES, within=5)
    assert check_file(tmp_path)["t5"].key == "key-t5-3"
