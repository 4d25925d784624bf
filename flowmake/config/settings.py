"""The ``[flow]`` table: the project's settings."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from flowmake.config.reader import Reader
from flowmake.config.values import MAX_HISTORY, MAX_JOBS
from flowmake.model import Settings

FLOW_KEYS = {
    "default", "jobs", "cache", "remote", "remote_readonly", "executor", "plugins",
    "resources", "history", "dask_scheduler", "lock", "include", "params_files",
}


class SettingsReader(Reader):
    """``[flow]``: its keys, each value checked, as :class:`~flowmake.model.Settings`."""

    def settings(self, flow: dict[str, Any]) -> Settings:
        self.check_keys(flow, FLOW_KEYS, "flow")
        cache = flow.get("cache", ".flowmake/cache")
        if cache is not False:
            self.expect(cache, (str,), "flow.cache", "a path or false")
        jobs = flow.get("jobs")
        if jobs is not None:
            self.bounded(jobs, "flow.jobs", 1, MAX_JOBS, "an integer")
        history = self.bounded(flow.get("history", 100), "flow.history", 1, MAX_HISTORY,
                               "an integer")
        remote = flow.get("remote")
        if remote is not None:
            self.expect(remote, (str,), "flow.remote", "a URL or path")
            self.clean_text(remote, "flow.remote", "a URL or path")
        if cache is not False:
            self.cache_dir = self.cache_folder(cache)
        extra = {}
        if "dask_scheduler" in flow:
            extra["dask_scheduler"] = self.expect(
                flow["dask_scheduler"], (str,), "flow.dask_scheduler", "an address")
        return Settings(
            default=self.str_list(flow.get("default", []), "flow.default"),
            jobs=jobs,
            cache=None if cache is False else cache,
            remote=remote,
            remote_readonly=self.expect(flow.get("remote_readonly", False), (bool,),
                                        "flow.remote_readonly", "true or false"),
            executor=self.expect(flow.get("executor", "local"), (str,), "flow.executor",
                                 "an executor name"),
            plugins=self.module_names(flow.get("plugins", []), "flow.plugins"),
            resources=self.numbers(flow.get("resources", {}), "flow.resources"),
            history=history,
            lock=self.expect(flow.get("lock", True), (bool,), "flow.lock", "true or false"),
            extra=extra,
        )

    def cache_folder(self, cache: str) -> str | None:
        """``[flow] cache`` as a root-relative folder when it lies in the project, else None."""
        if not cache:
            raise self.error("flow.cache", "empty path (use false to turn the cache off)")
        self.clean_text(cache, "flow.cache", "a path")
        path = Path(os.path.expanduser(cache))
        rel = os.path.relpath(path if path.is_absolute() else self.root / path, self.root)
        rel = posixpath.normpath(rel.replace(os.sep, "/"))
        if rel == ".":
            raise self.error("flow.cache", "the project root itself cannot be the cache folder")
        return None if rel == ".." or rel.startswith("../") else rel
