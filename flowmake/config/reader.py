"""The core of the flow loader: where an error points (file, line, key) and the checks every
key's value goes through (types, bounds, paths). The loader's other parts (settings.py,
include.py, targets.py, matrix.py) extend :class:`Reader`; load.py puts them together."""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowmake.config.flowfiles import shown
from flowmake.config.values import (
    MAX_AMOUNT,
    MAX_NESTING,
    is_module_name,
    number,
    too_deep,
    type_name,
)
from flowmake.errors import ConfigError, suggest
from flowmake.model import is_url


class Reader:
    """One pass over the parsed document; raises ConfigError with the key at fault."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc
        self.root = path.parent
        self.total = 0  # targets so far, matrix instances included
        self.cache_dir: str | None = None  # [flow] cache inside the root: no output there
        # Where each target and top-level param was declared, when not in flow.toml
        # (an included file, a params file): errors name that file and its line.
        self.origin: dict[tuple[str, str], Path] = {}
        self.sources: list[str] = []  # files read besides flow.toml, root-relative
        self.globs: list[str] = []  # include and foreach globs
        self.params: dict[str, Any] = {}  # the project params, once merged and overridden

    def error(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        from flowmake.config.toml_lines import locate

        parts = key.split(".")
        path = self.origin.get((parts[0], parts[1]), self.path) if len(parts) > 1 else self.path
        if path == self.path:
            return ConfigError(message, file=self.path.name, line=locate(path, key), key=key,
                               hint=hint)
        line = locate(path, key) if path.suffix == ".toml" else None
        return ConfigError(message, file=shown(self.root, path), line=line, key=key, hint=hint)

    def check_keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                close = suggest(key, allowed)
                extra = f" (did you mean '{close}'?)" if close else ""
                raise self.error(f"{where}.{key}" if where else key, f"unknown key{extra}")

    def expect(self, value: Any, types: tuple[type, ...], key: str, what: str) -> Any:
        # bool is an int in Python; a boolean where a number is wanted is still wrong.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.error(key, f"expected {what}, got {type_name(value)}")
        return value

    def str_list(self, value: Any, key: str) -> tuple[str, ...]:
        self.expect(value, (list,), key, "an array of strings")
        for item in value:
            self.expect(item, (str,), key, "an array of strings")
        return tuple(value)

    def numbers(self, value: Any, key: str) -> dict[str, float]:
        self.expect(value, (dict,), key, "a table of numbers")
        for name, amount in value.items():
            self.bounded(amount, f"{key}.{name}", 0, MAX_AMOUNT, "a number")
        return dict(value)

    def bounded(self, value: Any, key: str, low: float, high: float, what: str, *,
                above: bool = False) -> Any:
        """A finite number from ``low`` (exclusive with ``above``) to ``high``, named in the
        error; ``what`` "an integer" allows integers only."""
        self.expect(value, (int,) if what == "an integer" else (int, float), key, what)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value}")
        if above and value <= low:
            raise self.error(key, "must be positive" if low == 0 else f"must exceed {low:g}")
        if value < low:
            raise self.error(key, "must not be negative" if low == 0 else
                             f"must be at least {low:g}")
        if value > high:
            raise self.error(key, f"must be at most {number(high)}, got {number(value)}")
        return value

    def check_depth(self, params: Any, key: str) -> None:
        """Params are the only values that nest freely (every other key has a fixed shape):
        at most MAX_NESTING deep, so nothing that walks them later can hit Python's
        recursion limit."""
        deep = too_deep(params, key)
        if deep is not None:
            raise self.error(deep, f"arrays or tables nested more than {MAX_NESTING} deep")

    def module_names(self, value: Any, key: str) -> tuple[str, ...]:
        """``[flow] plugins``: dotted Python module names only (never paths)."""
        names = self.str_list(value, key)
        for name in names:
            if not is_module_name(name):
                raise self.error(key, f"{name!r} is not a Python module name (dotted names"
                                      " such as 'myproj.flow_plugins', not paths)")
        return names

    def clean_text(self, text: str, key: str, what: str) -> str:
        """No NUL byte: no system call takes one in a path, an argument or a name."""
        if "\0" in text:
            raise self.error(key, f"{what} cannot contain a NUL byte")
        return text

    def norm(self, path: str, key: str, *, inside: bool, root_ok: bool = False) -> str:
        """A root-relative POSIX path (URLs as they are); outputs must stay inside the root."""
        if is_url(path):
            return self.clean_text(path, key, "a URL")
        if not path:
            raise self.error(key, "empty path")
        self.clean_text(path, key, "a path")
        if os.path.isabs(path):
            path = os.path.relpath(path, self.root)
        path = posixpath.normpath(path.replace(os.sep, "/"))
        if inside and (path == ".." or path.startswith("../")):
            raise self.error(key, f"'{path}' is outside the project root")
        if inside and path == "." and not root_ok:
            raise self.error(key, "the project root itself cannot be an output")
        return path

    def project_path(self, value: str, key: str) -> str:
        """A root-relative file path (a glob may be one), never a URL."""
        rel = self.norm(value, key, inside=False)
        if is_url(rel):
            raise self.error(key, f"'{rel}': a file in the project, not a URL")
        return rel

    def path_pairs(self, value: Any, key: str) -> list[tuple[str | None, str, str]]:
        """``[paths]`` or ``{name = path}`` as (name, path, key) triples."""
        if isinstance(value, dict):
            return [(n, self.expect(p, (str,), f"{key}.{n}", "a path"), f"{key}.{n}")
                    for n, p in value.items()]
        return [(None, p, key) for p in self.str_list(value, key)]
