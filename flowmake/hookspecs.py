"""Every hook a flowmake plugin can implement. Nothing else lives here.

Registration hooks return classes carrying a ``NAME`` (hatch's style); observer hooks see
what happens and cannot change the plan. ``docs/plugins.md`` documents each hook, and a
test fails when one is missing there.

A whole minimal plugin (a module named in ``[flow] plugins`` or an entry point in the
``flowmake`` group)::

    import flowmake

    class YamlFormat:
        NAME = "yaml"
        EXTENSIONS = (".yaml", ".yml")

        def load(self, f):
            import yaml
            return yaml.safe_load(f)

        def dump(self, value, f):
            import yaml
            f.write(yaml.safe_dump(value).encode())

    @flowmake.hookimpl
    def flowmake_register_formats():
        return [YamlFormat]

    @flowmake.hookimpl
    def flowmake_target_finish(outcome):
        print(outcome.name, outcome.status)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from flowmake.backends import Backend
    from flowmake.executor import Executor
    from flowmake.formats import Format
    from flowmake.kinds import TargetKind
    from flowmake.plan.check import Step
    from flowmake.schedule import Outcome, Summary

hookspec = pluggy.HookspecMarker("flowmake")
hookimpl = pluggy.HookimplMarker("flowmake")  # re-exported as ``flowmake.hookimpl``


@hookspec
def flowmake_register_backends() -> Sequence[type[Backend]]:
    """Storage backends: classes with ``NAME`` and ``PROTOCOLS`` (URL schemes they serve).

    A URL input or output (``s3://bucket/x.parquet``) is read and written through the
    backend that serves its protocol. See :class:`flowmake.backends.Backend`.
    """
    return []  # a specification: plugins implement it


@hookspec
def flowmake_register_formats() -> Sequence[type[Format]]:
    """Output formats: classes with ``NAME`` and ``EXTENSIONS`` (``(".parquet",)``).

    A python target's return value is saved, and its table-form inputs loaded, by the
    format of the path's extension. See :class:`flowmake.formats.Format`.
    """
    return []  # a specification: plugins implement it


@hookspec
def flowmake_register_executors() -> Sequence[type[Executor]]:
    """Executors: classes with ``NAME``, chosen by ``[flow] executor`` or ``--executor``.

    See :class:`flowmake.executor.Executor`; the built-in ``local`` one is registered
    through this same hook.
    """
    return []  # a specification: plugins implement it


@hookspec
def flowmake_register_target_kinds() -> Sequence[type[TargetKind]]:
    """Target kinds: classes with ``KEY`` (the flow.toml key of their action, such as
    ``notebook``, exclusive with ``cmd`` and ``python``) and ``OPTIONS`` (their other keys).

    A target table with such a key is read by the kind, which returns a
    :class:`flowmake.model.PluginAction`; a python worker runs it. See
    :class:`flowmake.kinds.TargetKind`.
    """
    return []  # a specification: plugins implement it


@hookspec
def flowmake_build_start(run_id: int, targets: list[str]) -> None:
    """A build starts: its run id and the targets it will consider, upstream first."""


@hookspec
def flowmake_target_start(step: Step) -> None:
    """A stale target is about to run; ``step.reasons`` says why."""


@hookspec
def flowmake_target_finish(outcome: Outcome) -> None:
    """A target ended: built, restored, fresh, failed or skipped, with its duration."""


@hookspec
def flowmake_build_finish(summary: Summary) -> None:
    """A build ended (also when it failed or was interrupted); ``summary.counts()``."""
