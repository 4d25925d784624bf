"""store/paths.py names the .flowmake/ layout; the layers below the store (the model,
config), which cannot import it, spell the same names. And the store tells its listener,
once, that records change (the CLI's listener voids the no-op fast path)."""

from __future__ import annotations

from pathlib import Path

from flowmake.model import Project, Settings
from flowmake.store import paths
from flowmake.store.db import Record, Store


def test_the_model_and_config_name_the_same_state_folder(tmp_path: Path, load_flow) -> None:
    project = Project(tmp_path, tmp_path / "flow.toml", Settings(), {}, {})
    assert project.state_dir == tmp_path / paths.STATE_DIR
    assert Settings().cache == paths.DEFAULT_CACHE
    loaded = load_flow("""
        [targets.a]
        cmd = "true"
        """)
    assert loaded.settings.cache == paths.DEFAULT_CACHE
    assert paths.state_dir_of(str(tmp_path / "flow.toml")) == str(tmp_path / paths.STATE_DIR)
    assert paths.snapshot(paths.state_dir(str(tmp_path))) == \
        str(tmp_path / ".flowmake" / "noop.marshal")


def test_the_store_tells_its_listener_once_before_records_change(tmp_path: Path) -> None:
    calls: list[int] = []
    store = Store(tmp_path / ".flowmake", on_change=lambda: calls.append(len(store.records())))
    try:
        run = store.start_run("build")
        store.finish_target(run, "x", "failed", 0.1, [], "", None)  # no record: not told
        store.put_stats({"a.txt": None})
        assert calls == []
        store.put_record(Record("a", "k", "{}", "{}", run, 0.0, 0.0))
        store.forget(["a"])
        assert calls == [0]  # once, before the first record was written
    finally:
        store.close()
