"""What ``${...}`` may name inside one target (SPEC §4): its matrix values, ``${item...}``,
``${inputs}``/``${outputs}``, and ``${params.x}``, which records the project params used."""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from flowmake.config.flowfiles import lookup, names
from flowmake.config.interpolate import UnknownReference, format_value, interpolate
from flowmake.config.reader import Reader
from flowmake.errors import suggest
from flowmake.model import Input, Output, is_glob, is_url


class Scope:
    """What ``${...}`` may name inside one target; records the project params used."""

    def __init__(self, loader: Reader, where: str, matrix: dict[str, Any]) -> None:
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
            found, value = lookup(self.loader.params, param)  # train.lr: nested by dots
            if found:
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
            known = [*self.values, *(f"params.{p}" for p in names(self.loader.params))]
            close = suggest(exc.name, known)
            extra = f" (did you mean '${{{close}}}'?)" if close else ""
            raise self.loader.error(key, f"unknown reference '${{{exc.name}}}'{extra}") from None
        return format_value(result) if text and not isinstance(result, str) else result

    def resolve_path(self, value: str, key: str) -> str:
        result = self.resolve(value, key)
        if not isinstance(result, str):
            return format_value(result)
        return result
