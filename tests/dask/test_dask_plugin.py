"""The flowmake-dask plugin without a cluster: registration, lazy import, address order."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowmake.plugin.manager import Plugins

pytest.importorskip("distributed")
flowmake_dask = pytest.importorskip("flowmake_dask")
cluster_mod = pytest.importorskip("flowmake_dask.cluster")


def test_registered_through_the_entry_point() -> None:
    plugins = Plugins()
    assert plugins.executor_class("dask") is flowmake_dask.DaskExecutor
    assert any(line.startswith("dask flowmake-dask") for line in plugins.describe())


def test_distributed_is_not_imported_until_a_target_runs(tmp_path) -> None:
    (tmp_path / "flow.toml").write_text('[targets.a]\ncmd = "true"\n', encoding="utf-8")
    code = ("import sys\nfrom flowmake.cli.main import main\n"
            f"main(['-C', {str(tmp_path)!r}, 'list'])\n"
            "main(['-C', {0!r}, 'build', '-n', '--executor', 'dask'])\n".format(str(tmp_path))
            + "assert 'distributed' not in sys.modules, 'distributed was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "would build: a" in result.stdout


@pytest.mark.parametrize(("options", "env", "expected"), [
    ({}, None, None),
    ({"dask_scheduler": "tcp://file:1"}, None, "tcp://file:1"),
    ({"dask_scheduler": "tcp://file:1"}, "tcp://env:2", "tcp://env:2"),
    ({"dask_scheduler": "tcp://cli:3", "scheduler": "tcp://cli:3"}, "tcp://env:2",
     "tcp://cli:3"),
    ({"dask_scheduler": "tcp://file:1"}, "", "tcp://file:1"),
])
def test_address_order_command_line_environment_file(monkeypatch, options, env,
                                                      expected) -> None:
    if env is None:
        monkeypatch.delenv(cluster_mod.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(cluster_mod.ENV_VAR, env)
    assert cluster_mod.scheduler_address(options) == expected
