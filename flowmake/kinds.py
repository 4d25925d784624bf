"""The TargetKind interface: a third kind of action, beside ``cmd`` and ``python``.

A plugin registers kinds through ``flowmake_register_target_kinds``. A kind owns one key
of a target's table (``KEY``, exclusive with ``cmd`` and ``python``) and may add keys of
its own (``OPTIONS``). flow.toml hands it the values (``${...}`` resolved, types checked)
and it returns a :class:`~flowmake.model.PluginAction`: plain values, run by a python
worker as ``runner(job, /, **kwargs)``, so the kind runs wherever python targets run
(the Dask executor included). A whole minimal kind::

    import flowmake
    from flowmake.model import PluginAction

    class SqlKind:
        KEY = "sql"                       # sql = "queries/daily.sql"
        OPTIONS = {"database": str}

        def parse(self, values, where):
            return PluginAction("sql", values["sql"], "flowmake_sql.runner:run",
                                {"database": values.get("database", "main.db")})

        def outputs(self, action):
            return []

        def code_files(self, action, root):
            return [f"{root}/{action.spec}"]

        def code_parts(self, action, root):
            return {action.spec: flowmake.digest.hash_file(f"{root}/{action.spec}")}

    @flowmake.hookimpl
    def flowmake_register_target_kinds():
        return [SqlKind]

A project with no target of a plugin's kind never loads plugins to read its flow.toml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from flowmake.model import PluginAction


class TargetKind(Protocol):
    """One kind of target action; instantiated without arguments."""

    KEY: ClassVar[str]  # the flow.toml key naming the action: "notebook"
    # Further keys the kind reads, with the types their values may have.
    OPTIONS: ClassVar[Mapping[str, type | tuple[type, ...]]]

    def parse(self, values: Mapping[str, Any], where: str) -> PluginAction:
        """The action of one target from ``values`` (``KEY`` and the options present, plus
        ``version`` when given); ``where`` is ``targets.NAME``. Raise
        ``flowmake.errors.ConfigError(message, key=f"{where}.KEY")`` for a bad value: the
        loader adds the file and line."""
        ...

    def outputs(self, action: PluginAction) -> list[str]:
        """Root-relative paths the action writes besides the declared outputs (they are
        added to the target's outputs)."""
        ...

    def code_files(self, action: PluginAction, root: str) -> list[str]:
        """Absolute paths of the files behind its code key. While their contents are
        unchanged (the stat cache says so), ``code_parts`` is not asked again."""
        ...

    def code_parts(self, action: PluginAction, root: str) -> dict[str, str]:
        """``{name: digest}`` of the action's code (``status`` and ``why`` name a changed
        part: ``code changed: nb/train.ipynb``)."""
        ...
