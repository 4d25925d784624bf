"""fastpath.changed: which saved paths' stats differ, in one process or several."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowmake import fastpath


@pytest.mark.parametrize("count", [10, fastpath.PARALLEL_MIN + 500])
def test_changed_names_every_differing_path(tmp_path: Path, count: int) -> None:
    files = []
    for i in range(count):
        path = tmp_path / f"f{i}"
        path.write_text("x")
        files.append(str(path))
    saved = fastpath._stats(files)
    assert fastpath.changed(files, saved) == []
    assert fastpath.unchanged(files, saved)
    picked = [0, count // 2, count - 1]
    for i in picked[:2]:
        Path(files[i]).write_text("longer")
    os.unlink(files[picked[2]])
    assert fastpath.changed(files, saved) == picked
    assert not fastpath.unchanged(files, saved)
    assert fastpath.changed(files[:-1], saved) is None  # not the saved list


def test_an_untrusted_entry_never_matches(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    saved = fastpath._stats([str(path)])
    assert fastpath.changed([str(path)], fastpath.UNTRUSTED) == [0]
    assert fastpath.changed([str(path)], saved) == []
