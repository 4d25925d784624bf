"""fastpath.changed: which saved paths' stats differ, in one process or several."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flowmake import fastpath


def nothing_hashed() -> fastpath.Seen:
    """A command that hashed none of the paths and began now: aged paths are saved."""
    return fastpath.Seen(lambda path: None, time.time_ns())


@pytest.mark.parametrize("count", [10, fastpath.PARALLEL_MIN + 500])
def test_changed_names_every_differing_path(tmp_path: Path, count: int) -> None:
    files = []
    for i in range(count):
        path = tmp_path / f"f{i}"
        path.write_text("x")
        files.append(str(path))
    saved = fastpath._stats(files)
    assert fastpath.changed(files, saved) == []
    picked = [0, count // 2, count - 1]
    for i in picked[:2]:
        Path(files[i]).write_text("longer")
    os.unlink(files[picked[2]])
    assert fastpath.changed(files, saved) == picked
    assert fastpath.changed(files[:-1], saved) is None  # not the saved list


def test_an_untrusted_entry_never_matches(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    saved = fastpath._stats([str(path)])
    assert fastpath.changed([str(path)], fastpath.UNTRUSTED) == [0]
    assert fastpath.changed([str(path)], saved) == []


def _snapshot(tmp_path: Path) -> tuple[str, str, dict[str, str]]:
    """A saved snapshot of two targets: t0 reads p and q, t1 reads p (all aged)."""
    files = {}
    for name in ("p", "q"):
        path = tmp_path / name
        path.write_text(name)
        os.utime(path, (1_000_000_000, 1_000_000_000))
        files[name] = str(path)
    flow = tmp_path / "flow.toml"
    flow.write_text("")
    os.utime(flow, (1_000_000_000, 1_000_000_000))
    snapshot = str(tmp_path / "noop.marshal")
    assert fastpath.save(snapshot, str(flow), [], [], [], [], [[files["p"], files["q"]],
                         [files["p"]]], ["t0", "t1"], 10, {"t0": [], "t1": []}, ["t0", "t1"],
                         nothing_hashed(), None)
    return snapshot, str(flow), files


def test_update_restats_only_the_cone_and_distrusts_a_shared_changed_path(
        tmp_path: Path) -> None:
    snapshot, flow, files = _snapshot(tmp_path)
    checked = fastpath.check(snapshot, flow, [], [])
    assert checked is not None and checked[2] == []
    _, saved, _ = checked
    # p changes after the check: t1 (outside the cone) was not checked against it
    Path(files["p"]).write_text("p2")
    os.utime(files["p"], (1_000_000_500, 1_000_000_500))
    assert fastpath.update(snapshot, saved, {0}, {0: [files["p"], files["q"]]},
                           nothing_hashed(), None)
    _, again, differ = fastpath.check(snapshot, flow, [], []) or (None, None, None)
    assert differ == [0]  # p: saved UNTRUSTED, so t1 is checked next time
    assert fastpath.owners(again, differ) == {0, 1}


def test_update_saves_nothing_when_a_cone_target_has_other_paths(tmp_path: Path) -> None:
    snapshot, flow, files = _snapshot(tmp_path)
    checked = fastpath.check(snapshot, flow, [], [])
    assert checked is not None
    extra = tmp_path / "new.py"
    extra.write_text("")
    assert not fastpath.update(snapshot, checked[1], {0},
                               {0: [files["p"], files["q"], str(extra)]}, nothing_hashed(), None)


def _stat(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def test_a_path_changed_after_it_was_hashed_is_not_saved_as_it_is_now(tmp_path: Path) -> None:
    """The stat a save keeps is the one the command's digest was made at, not the one
    at the save: a file edited between the two (aged past the racy window) would look
    fresh to the next no-op with content no key holds."""
    snapshot, flow, files = _snapshot(tmp_path)
    hashed = {files["p"]: _stat(files["p"]), files["q"]: _stat(files["q"])}
    Path(files["q"]).write_text("q, edited after the command hashed it")
    os.utime(files["q"], (1_000_000_700, 1_000_000_700))
    seen = fastpath.Seen(hashed.get, time.time_ns())
    keyed = [[files["p"], files["q"]], [files["p"]]]
    args = (snapshot, flow, [], [], [], [], keyed, ["t0", "t1"], 10, {"t0": [], "t1": []},
            ["t0", "t1"])
    assert not fastpath.save(*args, seen, None)  # refused: the next build checks everything
    hashed[files["q"]] = _stat(files["q"])
    assert fastpath.save(*args, seen, None)  # hashed as it is: saved
    # update (a cone build's re-save): such a path is saved as not trusted
    checked = fastpath.check(snapshot, flow, [], [])
    assert checked is not None and checked[2] == []
    Path(files["q"]).write_text("q, edited during the cone build")
    os.utime(files["q"], (1_000_000_900, 1_000_000_900))
    assert fastpath.update(snapshot, checked[1], {0}, {0: [files["p"], files["q"]]}, seen, None)
    _, again, differ = fastpath.check(snapshot, flow, [], []) or (None, None, None)
    assert differ == [1]  # q: UNTRUSTED, so t0 is checked next time
    assert fastpath.owners(again, differ) == {0}


def test_a_path_not_hashed_must_predate_the_command(tmp_path: Path) -> None:
    """A path the command made no digest of (a folder's subfolder, an included file) is
    saved only if it was last changed before the command began (less the racy window)."""
    snapshot, flow, files = _snapshot(tmp_path)
    keyed = [[files["p"], files["q"]], [files["p"]]]
    args = (snapshot, flow, [], [], [], [], keyed, ["t0", "t1"], 10, {"t0": [], "t1": []},
            ["t0", "t1"])
    began = 1_000_000_000 * 10**9 + fastpath.RACY_NS  # the aged files' mtime, plus the window
    assert not fastpath.save(*args, fastpath.Seen(lambda path: None, began), None)
    assert fastpath.save(*args, fastpath.Seen(lambda path: None, began + 1), None)


def test_a_snapshot_field_is_split_once_and_the_memo_stays_small() -> None:
    text = fastpath.SEP.join(f"out/{i}.txt" for i in range(100))
    first = fastpath.fields(text)
    assert first == text.split(fastpath.SEP) and fastpath.fields(text) is first
    for i in range(20):  # a long-lived process reads many snapshots
        fastpath.fields(fastpath.SEP.join(["a", str(i)]))
    assert len(fastpath._FIELDS) <= 8
    assert fastpath.fields(text) == first  # split again once it was dropped


def test_a_lazy_mapping_preloaded_answers_as_it_would_have_one_by_one() -> None:
    from flowmake.cli.cone import Lazy

    data = {"a": 1, "b": 2, "c": 3}
    one_by_one: list[str] = []
    together: list[list[str]] = []

    def load(name: str) -> int | None:
        one_by_one.append(name)
        return data.get(name)

    def load_many(names: list[str]) -> dict[str, int]:
        together.append(names)
        return {n: data[n] for n in names if n in data}

    lazy = Lazy(load, load_many)
    assert lazy.get("a") == 1  # read alone, first
    lazy.preload(["a", "b", "b", "zz"])
    assert together == [["b", "zz"]]  # only what it had not read, once each
    assert (lazy.get("b"), lazy.get("zz"), "zz" in lazy, lazy["b"]) == (2, None, False, 2)
    lazy.preload(["b", "zz"])
    assert together == [["b", "zz"]] and one_by_one == ["a"]  # nothing read again
    assert lazy.get("c") == 3 and one_by_one == ["a", "c"]  # not preloaded: read alone
    plain = Lazy(load)  # without load_many: preload does nothing, get reads as before
    plain.preload(["b"])
    assert plain.get("b") == 2 and one_by_one[-1] == "b"
