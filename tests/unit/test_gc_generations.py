"""Where a command's big, long-lived objects sit for the cyclic garbage collector: a
compiled flow leaves ``pickle.loads`` in the oldest generation (the young one's next pass
would walk every object of it: 0.3 s at 100,000 targets), and a command's workspace is
frozen while it runs and unfrozen after (a process that lives on collects it again)."""

from __future__ import annotations

import gc
import pickle
from pathlib import Path
from typing import Any

import pytest

import flowmake.cli.graph as graph_module
from flowmake.cli import main as cli
from flowmake.cli.workspace import _unpickled
from flowmake.model import Shell, Target


def in_generation(obj: object, generation: int) -> bool:
    return any(o is obj for o in gc.get_objects(generation))


@pytest.fixture
def no_frozen() -> None:
    gc.unfreeze()  # whatever an earlier test left frozen
    assert gc.get_freeze_count() == 0


def test_an_unpickled_flow_is_in_the_oldest_generation_not_the_young(no_frozen: None) -> None:
    targets = [Target(f"t{i}", Shell(f"echo {i}", "")) for i in range(1000)]
    data = pickle.dumps({"targets": targets}, protocol=5)
    gc.disable()  # no pass may move it before we look
    try:
        loaded = _unpickled(data)
        assert not in_generation(loaded, 0)
        assert in_generation(loaded, 2)
        assert gc.get_freeze_count() == 0  # moved through the permanent generation, not left
    finally:
        gc.enable()


def test_frozen_objects_of_a_resident_server_stay_frozen(no_frozen: None) -> None:
    kept = {"decoded": ["by the server"]}
    gc.freeze()  # as the resident server leaves what it keeps decoded
    try:
        _unpickled(pickle.dumps([1, 2, 3]))
        assert gc.get_freeze_count() > 0  # not unfrozen (some may die meanwhile)
        assert not any(in_generation(kept, g) for g in range(3))  # still frozen
    finally:
        gc.unfreeze()


def test_a_command_freezes_its_workspace_and_unfreezes_it_after(
        tmp_path: Path, no_frozen: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n')
    seen: list[int] = []
    original = graph_module.graph_command  # cmd_graph imports it when it runs

    def spy(ws: Any, args: Any) -> int:
        seen.append(gc.get_freeze_count())
        return original(ws, args)

    monkeypatch.setattr(graph_module, "graph_command", spy)
    assert cli.main(["-C", str(tmp_path), "graph", "--format", "json"]) == 0
    assert '"name": "a"' in capsys.readouterr().out
    assert seen and seen[0] > 0  # frozen while the command ran
    assert gc.get_freeze_count() == 0  # and unfrozen once it returned


@pytest.mark.parametrize("command", [["graph", "--format", "json"], ["build", "-q"],
                                     ["status"]])
def test_in_a_resident_fork_the_servers_objects_stay_frozen_after_a_command(
        tmp_path: Path, no_frozen: None, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    """Objects frozen before a command (a resident server's) are left frozen after it:
    the fork's exit would otherwise walk, and copy, every page they are on."""
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n')
    kept = {"decoded": ["by the server"]}
    gc.freeze()
    try:
        assert cli.main(["-C", str(tmp_path), *command]) == 0
        assert not any(in_generation(kept, g) for g in range(3))
    finally:
        gc.unfreeze()


def test_a_build_in_process_gives_its_objects_back_to_the_collector(
        tmp_path: Path, no_frozen: None, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n')
    assert cli.main(["-C", str(tmp_path), "build", "-q"]) == 0
    assert gc.get_freeze_count() == 0
