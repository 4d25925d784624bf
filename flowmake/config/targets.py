"""One target's table (SPEC §4): its action (``cmd`` or ``python``), paths, params, env,
bounds and metrics, as a :class:`~flowmake.model.Target`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flowmake.config.flowfiles import item_values, leaves, lookup, names
from flowmake.config.reader import Reader
from flowmake.config.scope import Scope
from flowmake.config.values import MAX_RETRIES, MAX_TIMEOUT
from flowmake.errors import ConfigError, PluginError, suggest
from flowmake.model import Action, Call, Input, Output, PluginAction, Shell, Target, is_glob

TARGET_KEYS = {
    "cmd", "python", "inputs", "outputs", "deps", "params", "matrix", "env", "always",
    "cache", "resources", "timeout", "retries", "cwd", "version", "help", "foreach",
    "track_params", "metrics",
}
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ENV_NAME = re.compile(r"[^=\0]+\Z")
METRIC_EXTENSIONS = (".json", ".toml", ".yaml", ".yml")  # what `flowmake metrics` reads
# Finds the target kind (flowmake.kinds.TargetKind) serving a key: (key, [flow] plugins,
# root) -> an instance, or None; raises PluginError for a known kind not installed. The
# CLI hands in plugin.manager.find_kind (config imports nothing of plugin/).
KindFinder = Callable[[str, tuple[str, ...], str], Any]


class TargetReader(Reader):
    """One declared target (or one matrix or foreach instance of it)."""

    kinds: KindFinder | None = None  # without it, a key that is no TARGET_KEYS is unknown
    plugin_modules: tuple[str, ...] = ()  # [flow] plugins, for the kind finder

    def kind_of(self, table: dict[str, Any], where: str) -> Any:
        """The plugin kind of a table whose action is not cmd or python (the first key
        not in TARGET_KEYS that a kind serves); None for the others."""
        extra = [k for k in table if k not in TARGET_KEYS]
        if not extra or self.kinds is None or "cmd" in table or "python" in table:
            return None
        found: dict[str, Any] = self.__dict__.setdefault("_found_kinds", {})
        for key in extra:
            if key not in found:
                try:
                    found[key] = self.kinds(key, self.plugin_modules, str(self.root))
                except PluginError as exc:
                    raise self.error(f"{where}.{key}", exc.message, hint=exc.hint) from None
            if found[key] is not None:
                return found[key]
        return None

    def plugin_action(self, kind: Any, table: dict[str, Any], scope: Scope,
                      where: str) -> PluginAction:
        """A kind's action: its key's and options' values (types checked, ``${...}``
        resolved) handed to the kind, whose ConfigError gets the file and line here."""
        values: dict[str, Any] = {}
        for key, types in ((kind.KEY, str), *kind.OPTIONS.items()):
            if key in table:
                types = types if isinstance(types, tuple) else (types,)
                what = " or ".join(t.__name__ for t in types)
                value = self.expect(table[key], types, f"{where}.{key}", f"a {what}")
                values[key] = scope.resolve(value, f"{where}.{key}", text=True)
        if table.get("version") is not None:
            values["version"] = str(self.expect(table["version"], (str, int, float),
                                                f"{where}.version", "a string"))
        try:
            action: PluginAction = kind.parse(values, where)
        except ConfigError as exc:
            raise self.error(exc.key or where, exc.detail, exc.hint) from None
        return action

    def kind_outputs(self, kind: Any, action: Action, outputs: tuple[Output, ...],
                     where: str) -> tuple[Output, ...]:
        """The declared outputs and the ones the kind's action writes (``executed``)."""
        if kind is None:
            return outputs
        known = {o.path for o in outputs}
        extra = []
        for raw in kind.outputs(action):
            path = self.norm(raw, f"{where}.{kind.KEY}", inside=True)
            self.check_not_reserved(path, f"{where}.{kind.KEY}")
            if path not in known:
                known.add(path)
                extra.append(Output(path))
        return (*outputs, *extra)

    def target(self, name: str, decl: str, table: dict[str, Any], matrix: dict[str, Any],
               item: str | None = None) -> Target:
        where = f"targets.{decl}"
        scope = self.scope(where, table, matrix, item)
        own = self.expect(table.get("params", {}), (dict,), f"{where}.params", "a table")
        kwargs = dict(matrix)
        for key, value in own.items():
            kwargs[key] = scope.resolve(value, f"{where}.params.{key}")
        scope.values.update(kwargs)
        inputs = self.inputs(table.get("inputs", []), scope, f"{where}.inputs")
        outputs = self.outputs(table.get("outputs", []), scope, f"{where}.outputs")
        cwd = self.expect(table.get("cwd", ""), (str,), f"{where}.cwd", "a path")
        if cwd:
            cwd = self.norm(cwd, f"{where}.cwd", inside=True, root_ok=True)
            cwd = "" if cwd == "." else cwd  # "." is the default: the project root
        kind = self.kind_of(table, where)
        action: Action
        if kind is not None:
            action = self.plugin_action(kind, table, scope, where)
            outputs = self.kind_outputs(kind, action, outputs, where)
        elif "cmd" in table:
            command = self.expect(table["cmd"], (str,), f"{where}.cmd", "a string")
            scope.files(inputs, outputs, cwd)
            command = scope.resolve(command, f"{where}.cmd", text=True)
            action = Shell(self.clean_text(command, f"{where}.cmd", "a command"), cwd)
        else:
            action = self.python_call(table, where)
        timeout, retries = self.attempts(table, where)
        return Target(
            name=name,
            action=action,
            inputs=inputs,
            outputs=outputs,
            deps=self.str_list(table.get("deps", []), f"{where}.deps"),
            params=kwargs,
            project_params=scope.used_params,
            env=self.env_names(table.get("env", []), f"{where}.env"),
            always=self.expect(table.get("always", False), (bool,), f"{where}.always", "true or false"),
            cache=self.expect(table.get("cache", True), (bool,), f"{where}.cache", "true or false"),
            timeout=None if timeout is None else float(timeout),
            retries=retries,
            help=self.expect(table.get("help", ""), (str,), f"{where}.help", "a string"),
            resources=self.numbers(table.get("resources", {}), f"{where}.resources"),
            matrix=decl if matrix or item is not None else None,
            item=item,
            metrics=self.metrics(table.get("metrics", []), scope, outputs, f"{where}.metrics"),
        )

    def python_call(self, table: dict[str, Any], where: str) -> Call:
        """A python target's ``module:function`` and its optional ``version``."""
        function = self.expect(table["python"], (str,), f"{where}.python", "'module:function'")
        if not _FUNCTION.match(function):
            raise self.error(f"{where}.python", f"expected 'module:function', got '{function}'")
        version = table.get("version")
        if version is not None:
            version = str(self.expect(version, (str, int, float), f"{where}.version", "a string"))
        return Call(function, version)

    def metrics(self, value: Any, scope: Scope, outputs: tuple[Output, ...],
                key: str) -> tuple[str, ...]:
        """``metrics = [paths]``: outputs of the target, JSON, TOML or YAML files."""
        found = []
        for raw in self.str_list(value, key):
            path = self.norm(scope.resolve_path(raw, key), key, inside=True)
            if path not in {o.path for o in outputs}:
                raise self.error(key, f"'{path}' is not among the target's outputs",
                                 hint="a metrics file must also be listed in outputs")
            if not path.lower().endswith(METRIC_EXTENSIONS):
                raise self.error(key, f"'{path}': a metrics file is JSON, TOML or YAML"
                                      " (.json, .toml, .yaml, .yml)")
            found.append(path)
        return tuple(found)

    def scope(self, where: str, table: dict[str, Any], matrix: dict[str, Any],
              item: str | None) -> Scope:
        """What ``${...}`` may name in one target: its matrix values, ``${item...}`` of a
        foreach instance; ``track_params`` enter its key without being passed."""
        scope = Scope(self, where, matrix)
        if item is not None:
            scope.values.update(item_values(item))
        if "track_params" in table:
            self.track(table["track_params"], scope, f"{where}.track_params")
        return scope

    def track(self, value: Any, scope: Scope, key: str) -> None:
        """``track_params = ["prepare.seed", "prepare.*"]``: each name (a table tracks all
        of it) or pattern must match a project param."""
        import fnmatch

        flat: dict[str, Any] | None = None
        for pattern in self.str_list(value, key):
            if is_glob(pattern):
                flat = leaves(self.params) if flat is None else flat
                matched = {n: v for n, v in flat.items() if fnmatch.fnmatchcase(n, pattern)}
            else:
                found, param = lookup(self.params, pattern)
                matched = {pattern: param} if found else {}
            if not matched:
                close = suggest(pattern, names(self.params))
                extra = f" (did you mean '{close}'?)" if close else ""
                raise self.error(key, f"'{pattern}' matches no project param{extra}")
            scope.used_params.update(matched)

    def attempts(self, table: dict[str, Any], where: str) -> tuple[float | None, int]:
        """``timeout`` (seconds, or None) and ``retries``, within their bounds."""
        timeout = table.get("timeout")
        if timeout is not None:
            self.bounded(timeout, f"{where}.timeout", 0, MAX_TIMEOUT, "a number of seconds",
                         above=True)
        retries = self.bounded(table.get("retries", 0), f"{where}.retries", 0, MAX_RETRIES,
                               "an integer")
        return timeout, retries

    def env_names(self, value: Any, key: str) -> tuple[str, ...]:
        names = self.str_list(value, key)
        for name in names:
            if not _ENV_NAME.match(name):
                raise self.error(key, f"{name!r} is not an environment variable name"
                                      " (empty, or holds '=' or a NUL byte)")
        return names

    def inputs(self, value: Any, scope: Scope, key: str) -> tuple[Input, ...]:
        pairs = self.path_pairs(value, key)
        return tuple(Input(self.norm(scope.resolve_path(p, k), k, inside=False), n)
                     for n, p, k in pairs)

    def outputs(self, value: Any, scope: Scope, key: str) -> tuple[Output, ...]:
        result = []
        for name, raw, k in self.path_pairs(value, key):
            path = self.norm(scope.resolve_path(raw, k), k, inside=True)
            if is_glob(path):
                raise self.error(k, f"an output cannot be a glob: '{path}'")
            self.check_not_reserved(path, k)
            result.append(Output(path, name))
        return tuple(result)

    def check_not_reserved(self, path: str, key: str) -> None:
        """An output is cleaned and overwritten: never flowmake's own files."""
        if path == self.path.name:
            raise self.error(key, f"'{path}' is the flow file itself; it cannot be an output")
        for folder, what in ((".flowmake", "flowmake's state folder"),
                             (self.cache_dir, "the artifact cache ([flow] cache)")):
            if folder and (path == folder or path.startswith(folder + "/")
                           or folder.startswith(path + "/")):
                raise self.error(key, f"'{path}' would overwrite {what} '{folder}'")
