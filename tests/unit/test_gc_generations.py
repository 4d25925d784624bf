"""Where a command's big, long-lived objects sit for the cyclic garbage collector: a
compiled flow leaves ``pickle.loads`` in the oldest generation (the young one's next pass
would walk every object of it: 0.3 s at 100,000 targets), and a command's workspace is
frozen while it runs and unfrozen after (a process that lives on collects it again)."""

from __future__ import annotations

import gc
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowmake.cli.graph as graph_module
from flowmake import warm
from flowmake.cli import main as cli
from flowmake.cli.build import build_command
from flowmake.cli.main import BuildSink
from flowmake.cli.workspace import _unpickled
from flowmake.model import Shell, Target
from flowmake.options import BuildOptions


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


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a resident server's fork: the server's objects frozen, warm.forked set."""
    monkeypatch.setattr(warm, "forked", True)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_in_a_resident_fork_an_unpickled_flow_is_frozen_with_its_servers_objects(
        no_frozen: None, forked: None) -> None:
    kept = {"decoded": ["by the server"]}
    gc.freeze()
    loaded = _unpickled(pickle.dumps({"targets": [["t"]]}))
    assert not any(in_generation(kept, g) for g in range(3))  # the server's: still frozen
    assert not any(in_generation(loaded, g) for g in range(3))  # and this one too


def test_a_command_freezes_its_workspace_and_unfreezes_it_after(
        tmp_path: Path, no_frozen: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n')
    seen: list[int] = []
    original = graph_module.graph_command  # cmd_graph imports it when it runs

    def spy(ws: Any, args: Any, *rest: Any) -> int:
        seen.append(gc.get_freeze_count())
        return original(ws, args, *rest)

    monkeypatch.setattr(graph_module, "graph_command", spy)
    assert cli.main(["-C", str(tmp_path), "graph", "--format", "json"]) == 0
    assert '"name": "a"' in capsys.readouterr().out
    assert seen and seen[0] > 0  # frozen while the command ran
    assert gc.get_freeze_count() == 0  # and unfrozen once it returned


@pytest.mark.parametrize("command", [["graph", "--format", "json"], ["build", "-q"],
                                     ["status"]])
def test_in_a_resident_fork_the_servers_objects_stay_frozen_after_a_command(
        tmp_path: Path, no_frozen: None, forked: None, capsys: pytest.CaptureFixture[str],
        command: list[str]) -> None:
    """Objects frozen before a command in a resident fork (its server's) are left frozen
    after it: the fork's exit would otherwise walk, and copy, every page they are on."""
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n')
    kept = {"decoded": ["by the server"]}
    gc.freeze()
    assert cli.main(["-C", str(tmp_path), *command]) == 0
    assert not any(in_generation(kept, g) for g in range(3))


def test_a_watch_in_a_fork_gives_each_builds_objects_back(
        tmp_path: Path, no_frozen: None, forked: None) -> None:
    """--watch builds again and again in the same process: each build unfreezes."""
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n')
    options = BuildOptions(directory=str(tmp_path), watch=True, quiet=True)
    assert build_command(options, "flowmake build --watch", BuildSink()) == 0
    assert gc.get_freeze_count() == 0


def test_a_build_in_process_gives_its_objects_back_to_the_collector(
        tmp_path: Path, no_frozen: None, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n')
    assert cli.main(["-C", str(tmp_path), "build", "-q"]) == 0
    assert gc.get_freeze_count() == 0
