"""Read and validate flow.toml into a :class:`~flowmake.model.Project`.

Every error names the file, line and key (``flow.toml:14: targets.train.deps: ...``).
Matrix targets are expanded here and every ``${...}`` is resolved, so later stages see
plain values only.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownParamError, suggest
from .interpolate import UnknownReference, format_value, interpolate
from .model import Call, Input, Output, Project, Settings, Shell, Target, is_glob, is_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FLOW_KEYS = {
    "default", "jobs", "cache", "remote", "remote_readonly", "executor", "plugins",
    "resources", "history", "dask_scheduler",
}
TARGET_KEYS = {
    "cmd", "python", "inputs", "outputs", "deps", "params", "matrix", "env", "always",
    "cache", "resources", "timeout", "retries", "cwd", "version", "help",
}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def find_file(start: Path, file: str | None) -> Path:
    """The flow.toml to load: ``-f FILE`` or ``flow.toml`` in ``start``."""
    path = (start / file) if file else start / "flow.toml"
    if not path.is_file():
        raise ConfigError(
            f"no such file: {path}" if file else f"no flow.toml in {start}",
            file=str(path.name),
            hint="create one with `flowmake init`, or point at it with -f FILE / -C DIR",
        )
    return path.resolve()


def parse_override(text: str) -> tuple[str, Any]:
    """``-p NAME=VALUE``: the value read as a TOML literal, a bare word as a string."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"-p expects NAME=VALUE, got '{text}'", file="command line")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name, value


def load(path: Path, overrides: Mapping[str, Any] | None = None) -> Project:
    """Parse, validate and expand ``path``; ``overrides`` replace project params."""
    file = path.name
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(
            f"invalid TOML: {message}", file=file, line=int(match.group(1)) if match else None
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file) from None
    return _Loader(path, doc).project(dict(overrides or {}))


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


class _Loader:
    """One pass over the parsed document; raises ConfigError with the key at fault."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc
        self.root = path.parent

    def error(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        from .toml_lines import locate

        return ConfigError(message, file=self.path.name, line=locate(self.path, key), key=key,
                           hint=hint)

    def check_keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                close = suggest(key, allowed)
                extra = f" (did you mean '{close}'?)" if close else ""
                raise self.error(f"{where}.{key}" if where else key, f"unknown key{extra}")

    def expect(self, value: Any, types: tuple[type, ...], key: str, what: str) -> Any:
        # bool is an int in Python; a boolean where a number is wanted is still wrong.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.error(key, f"expected {what}, got {_type_name(value)}")
        return value

    def str_list(self, value: Any, key: str) -> tuple[str, ...]:
        self.expect(value, (list,), key, "an array of strings")
        for item in value:
            self.expect(item, (str,), key, "an array of strings")
        return tuple(value)

    def numbers(self, value: Any, key: str) -> dict[str, float]:
        self.expect(value, (dict,), key, "a table of numbers")
        for name, amount in value.items():
            self.expect(amount, (int, float), f"{key}.{name}", "a number")
            if amount < 0:
                raise self.error(f"{key}.{name}", "must not be negative")
        return dict(value)

    # -- top level ---------------------------------------------------------------------

    def project(self, overrides: dict[str, Any]) -> Project:
        self.check_keys(self.doc, {"flow", "params", "targets"}, "")
        settings = self.settings(self.expect(self.doc.get("flow", {}), (dict,), "flow", "a table"))
        params = dict(self.expect(self.doc.get("params", {}), (dict,), "params", "a table"))
        for name, value in overrides.items():
            if name not in params:
                raise UnknownParamError(name, suggest(name, params))
            params[name] = value
        self.params = params
        targets = self.expect(self.doc.get("targets", {}), (dict,), "targets", "a table")
        expanded: dict[str, Target] = {}
        for name, table in targets.items():
            for target in self.targets(name, table):
                expanded[target.name] = target
        self.check_outputs(expanded)
        self.check_resources(expanded, settings.resources)
        for name in settings.default:
            base = name.split("[", 1)[0]
            if name not in expanded and base not in targets and not is_glob(name):
                close = suggest(name, targets)
                extra = f" (did you mean '{close}'?)" if close else ""
                raise self.error("flow.default", f"unknown target '{name}'{extra}")
        return Project(self.root, self.path, settings, params, expanded)

    def settings(self, flow: dict[str, Any]) -> Settings:
        self.check_keys(flow, FLOW_KEYS, "flow")
        cache = flow.get("cache", ".flowmake/cache")
        if cache is not False:
            self.expect(cache, (str,), "flow.cache", "a path or false")
        jobs = flow.get("jobs")
        if jobs is not None and self.expect(jobs, (int,), "flow.jobs", "an integer") < 1:
            raise self.error("flow.jobs", "must be at least 1")
        history = self.expect(flow.get("history", 100), (int,), "flow.history", "an integer")
        if history < 1:
            raise self.error("flow.history", "must be at least 1")
        remote = flow.get("remote")
        if remote is not None:
            self.expect(remote, (str,), "flow.remote", "a URL or path")
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
            plugins=self.str_list(flow.get("plugins", []), "flow.plugins"),
            resources=self.numbers(flow.get("resources", {}), "flow.resources"),
            history=history,
            extra=extra,
        )

    # -- targets -----------------------------------------------------------------------

    def targets(self, name: str, table: Any) -> list[Target]:
        where = f"targets.{name}"
        if not _NAME.match(name):
            raise self.error(where, "a target name may use letters, digits and _ . - / only")
        self.expect(table, (dict,), where, "a table")
        self.check_keys(table, TARGET_KEYS, where)
        has_cmd, has_python = "cmd" in table, "python" in table
        if has_cmd == has_python:
            raise self.error(where, "needs exactly one of 'cmd' or 'python'")
        matrix = table.get("matrix")
        if matrix is None:
            return [self.target(name, name, table, {})]
        self.expect(matrix, (dict,), f"{where}.matrix", "a table of arrays")
        if not matrix:
            raise self.error(f"{where}.matrix", "needs at least one key")
        for key, values in matrix.items():
            self.expect(values, (list,), f"{where}.matrix.{key}", "an array")
            if not values:
                raise self.error(f"{where}.matrix.{key}", "needs at least one value")
        keys = sorted(matrix)
        instances = []
        for combo in itertools.product(*(matrix[k] for k in keys)):
            values = dict(zip(keys, combo, strict=False))
            label = ",".join(f"{k}={format_value(v)}" for k, v in values.items())
            instances.append(self.target(f"{name}[{label}]", name, table, values))
        return instances

    def target(self, name: str, decl: str, table: dict[str, Any], matrix: dict[str, Any]) -> Target:
        where = f"targets.{decl}"
        scope = _Scope(self, where, matrix)
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
        if "cmd" in table:
            command = self.expect(table["cmd"], (str,), f"{where}.cmd", "a string")
            scope.files(inputs, outputs, cwd)
            action: Shell | Call = Shell(scope.resolve(command, f"{where}.cmd", text=True), cwd)
        else:
            function = self.expect(table["python"], (str,), f"{where}.python", "'module:function'")
            if not _FUNCTION.match(function):
                raise self.error(f"{where}.python", f"expected 'module:function', got '{function}'")
            version = table.get("version")
            if version is not None:
                version = str(self.expect(version, (str, int, float), f"{where}.version", "a string"))
            action = Call(function, version)
        timeout = table.get("timeout")
        if timeout is not None and self.expect(timeout, (int, float), f"{where}.timeout",
                                               "a number of seconds") <= 0:
            raise self.error(f"{where}.timeout", "must be positive")
        retries = self.expect(table.get("retries", 0), (int,), f"{where}.retries", "an integer")
        if retries < 0:
            raise self.error(f"{where}.retries", "must not be negative")
        return Target(
            name=name,
            action=action,
            inputs=inputs,
            outputs=outputs,
            deps=self.str_list(table.get("deps", []), f"{where}.deps"),
            params=kwargs,
            project_params=scope.used_params,
            env=self.str_list(table.get("env", []), f"{where}.env"),
            always=self.expect(table.get("always", False), (bool,), f"{where}.always", "true or false"),
            cache=self.expect(table.get("cache", True), (bool,), f"{where}.cache", "true or false"),
            timeout=None if timeout is None else float(timeout),
            retries=retries,
            help=self.expect(table.get("help", ""), (str,), f"{where}.help", "a string"),
            resources=self.numbers(table.get("resources", {}), f"{where}.resources"),
            matrix=decl if matrix else None,
        )

    def inputs(self, value: Any, scope: _Scope, key: str) -> tuple[Input, ...]:
        pairs = self.path_pairs(value, key)
        return tuple(Input(self.norm(scope.resolve_path(p, k), k, inside=False), n)
                     for n, p, k in pairs)

    def outputs(self, value: Any, scope: _Scope, key: str) -> tuple[Output, ...]:
        result = []
        for name, raw, k in self.path_pairs(value, key):
            path = self.norm(scope.resolve_path(raw, k), k, inside=True)
            if is_glob(path):
                raise self.error(k, f"an output cannot be a glob: '{path}'")
            result.append(Output(path, name))
        return tuple(result)

    def path_pairs(self, value: Any, key: str) -> list[tuple[str | None, str, str]]:
        """``[paths]`` or ``{name = path}`` as (name, path, key) triples."""
        if isinstance(value, dict):
            return [(n, self.expect(p, (str,), f"{key}.{n}", "a path"), f"{key}.{n}")
                    for n, p in value.items()]
        return [(None, p, key) for p in self.str_list(value, key)]

    def norm(self, path: str, key: str, *, inside: bool, root_ok: bool = False) -> str:
        """A root-relative POSIX path (URLs as they are); outputs must stay inside the root."""
        if is_url(path):
            return path
        if not path:
            raise self.error(key, "empty path")
        if os.path.isabs(path):
            path = os.path.relpath(path, self.root)
        path = posixpath.normpath(path.replace(os.sep, "/"))
        if inside and (path == ".." or path.startswith("../")):
            raise self.error(key, f"'{path}' is outside the project root")
        if inside and path == "." and not root_ok:
            raise self.error(key, "the project root itself cannot be an output")
        return path

    def check_resources(self, targets: dict[str, Target], capacity: dict[str, float]) -> None:
        """A target asking more than ``[flow.resources]`` holds in total could never start.

        A resource that ``[flow.resources]`` does not declare is unlimited (as ninja's
        default pool), so only declared ones are checked.
        """
        for target in targets.values():
            for name, amount in target.resources.items():
                if name in capacity and amount > capacity[name]:
                    raise self.error(
                        f"targets.{target.matrix or target.name}.resources.{name}",
                        f"target '{target.name}' asks for {name} = {amount:g} but "
                        f"[flow.resources] has only {name} = {capacity[name]:g} in total")

    def check_outputs(self, targets: dict[str, Target]) -> None:
        """One owner per output path, and no output inside another target's output folder."""
        owner: dict[str, str] = {}
        for target in targets.values():
            for output in target.outputs:
                other = owner.setdefault(output.path, target.name)
                if other != target.name:
                    raise self.error(
                        f"targets.{target.matrix or target.name}.outputs",
                        f"'{output.path}' is also an output of target '{other}'",
                    )
        for inner, name in owner.items():
            parts = inner.split("/")
            for i in range(1, len(parts)):
                outer = "/".join(parts[:i])
                if owner.get(outer, name) != name:
                    target = targets[name]
                    raise self.error(
                        f"targets.{target.matrix or target.name}.outputs",
                        f"'{inner}' lies inside '{outer}', an output of target '{owner[outer]}'")


class _Scope:
    """What ``${...}`` may name inside one target; records the project params used."""

    def __init__(self, loader: _Loader, where: str, matrix: dict[str, Any]) -> None:
        self.loader, self.where = loader, where
        self.values: dict[str, Any] = dict(matrix)
        self.used_params: dict[str, Any] = {}

    def files(self, inputs: tuple[Input, ...], outputs: tuple[Output, ...], cwd: str) -> None:
        def shell(path: str) -> str:
            if is_url(path):
                return shlex.quote(path)
            rel = posixpath.relpath(path, cwd) if cwd else path
            return rel if is_glob(rel) else shlex.quote(rel)  # a glob is left to the shell

        self.values["inputs"] = " ".join(shell(i.path) for i in inputs)
        self.values["outputs"] = " ".join(shell(o.path) for o in outputs)
        for i in inputs:
            if i.name:
                self.values[f"inputs.{i.name}"] = shell(i.path)
        for o in outputs:
            if o.key:
                self.values[f"outputs.{o.key}"] = shell(o.path)

    def lookup(self, name: str) -> Any:
        if name.startswith("params."):
            param = name[len("params."):]
            if param in self.loader.params:
                value = self.loader.params[param]
                self.used_params[param] = value
                return value
        elif name in self.values:
            return self.values[name]
        raise UnknownReference(name)

    def resolve(self, value: Any, key: str, *, text: bool = False) -> Any:
        if isinstance(value, list):
            return [self.resolve(v, key) for v in value]
        if not isinstance(value, str):
            return value
        try:
            result = interpolate(value, self.lookup)
        except UnknownReference as exc:
            known = [*self.values, *(f"params.{p}" for p in self.loader.params)]
            close = suggest(exc.name, known)
            extra = f" (did you mean '${{{close}}}'?)" if close else ""
            raise self.loader.error(key, f"unknown reference '${{{exc.name}}}'{extra}") from None
        return format_value(result) if text and not isinstance(result, str) else result

    def resolve_path(self, value: str, key: str) -> str:
        result = self.resolve(value, key)
        if not isinstance(result, str):
            return format_value(result)
        return result
