"""A target as the executor's picklable Job: what to run, where, with which values."""

from __future__ import annotations

import os
from typing import Any

from flowmake.executor import Job
from flowmake.model import Call, PluginAction, Project, Shell, Target


def make_job(project: Project, target: Target) -> Job:
    """The picklable description of one run of ``target``."""
    root = str(project.root)
    action = target.action
    common: dict[str, Any] = {
        "name": target.name, "root": root,
        "outputs": tuple((o.key, o.path) for o in target.outputs),
        "timeout": target.timeout, "retries": target.retries, "resources": target.resources,
        # The values of the listed env variables entered the key here, on the client: a
        # remote executor's worker must run with those, not with its own.
        "env": {n: os.environ[n] for n in target.env if n in os.environ} or None}
    if isinstance(action, Shell):
        cwd = f"{root}/{action.cwd}" if action.cwd else root
        return Job(cwd=cwd, command=action.command, **common)
    if isinstance(action, PluginAction):  # a plugin's kind: its runner, in a python worker
        bound = {"kind": action.kind, "spec": action.spec, "options": dict(action.options),
                 "target": target.name, "root": root}
        inputs = tuple((i.name, i.path) for i in target.inputs if i.name and action.values)
        return Job(cwd=root, function=action.runner, kwargs=target.params, inputs=inputs,
                   plugins=project.settings.plugins, bound=bound, **common)
    assert isinstance(action, Call)
    return Job(cwd=root, function=action.function, kwargs=target.params,
               inputs=tuple((i.name, i.path) for i in target.inputs if i.name),
               plugins=project.settings.plugins, **common)
