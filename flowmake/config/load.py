"""Read and validate flow.toml into a :class:`~flowmake.model.Project`.

Every error names the file, line and key (``flow.toml:14: targets.train.deps: ...``).
Matrix targets are expanded here and every ``${...}`` is resolved, so later stages see
plain values only.
"""

from __future__ import annotations

import itertools
import math
import os
import posixpath
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowmake.config.flowfiles import (
    glob_files,
    item_labels,
    item_values,
    leaves,
    lookup,
    names,
    override,
    read_params,
    read_toml,
    shown,
)
from flowmake.config.interpolate import UnknownReference, format_value, interpolate
from flowmake.errors import ConfigError, UnknownParamError, suggest
from flowmake.model import Call, Input, Output, Project, Settings, Shell, Target, is_glob, is_url

if sys.version_info >= (3, 11):
    import tomllib as tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

FLOW_KEYS = {
    "default", "jobs", "cache", "remote", "remote_readonly", "executor", "plugins",
    "resources", "history", "dask_scheduler", "lock", "include", "params_files",
}
TARGET_KEYS = {
    "cmd", "python", "inputs", "outputs", "deps", "params", "matrix", "env", "always",
    "cache", "resources", "timeout", "retries", "cwd", "version", "help", "foreach",
    "track_params", "metrics",
}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z", re.ASCII)  # a dotted module name
_ENV_NAME = re.compile(r"[^=\0]+\Z")

# Bounds on numbers (README.md, "Limits"): past them a value is a mistake, and some would
# hang a build (retries = 10**18) or crash it (timeout = inf). Checked at load.
MAX_TIMEOUT = 1_000_000  # seconds, about 11.5 days (an event loop waits at most ~24.8)
MAX_RETRIES = 100
MAX_JOBS = 1024
MAX_HISTORY = 1_000_000
MAX_AMOUNT = 1e12  # one resource amount or capacity
MAX_INSTANCES = 100_000  # targets one matrix expands to, and targets in all
MAX_NESTING = 100  # arrays and tables inside each other, in flow.toml and in -p values


def find_file(start: Path, file: str | None, *, search: bool = False) -> Path:
    """The flow.toml to load: ``-f FILE`` or ``flow.toml`` in ``start``; with ``search``
    (neither -f nor -C given), the nearest flow.toml in ``start`` or a folder above it, as
    git and DVC find their folders."""
    path = (start / file) if file else start / "flow.toml"
    if path.is_file():
        return path.resolve()
    if search and not file and not os.path.lexists(path):
        found = search_up(str(start.resolve()))
        if found is not None:
            return Path(found).resolve()
    hint: str | None = "create one with `flowmake init`, or point at it with -f FILE / -C DIR"
    if path.is_dir():
        message, hint = "is a directory, not a flow file", "name the file: -f DIR/flow.toml"
    elif os.path.exists(path):
        message, hint = "not a regular file (a device, FIFO or socket)", None
    else:
        message = "no such file" if file else f"no flow.toml in {printable(str(start))}"
        message += " or any folder above it" if search and not file else ""
    raise ConfigError(message, file=printable(file or "flow.toml"), hint=hint)


def search_up(start: str, name: str = "flow.toml") -> str | None:
    """``start/name``, else the nearest ``name`` in a folder above ``start`` (a regular
    file: a folder called flow.toml is passed over), else None. Stats only (the no-op
    fast path, which imports nothing, has the same loop in ``cli._flow_file``)."""
    folder = start
    while True:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


# A -p value that starts so is meant as a TOML literal: it must parse as one.
_LITERAL_START = re.compile(r"\s*(?:[\[{\"'+\-0-9]|true|false)")


def parse_override(text: str) -> tuple[str, Any]:
    """``-p NAME=VALUE``: the value read as a TOML literal; any other value is a string.

    A value that starts like a literal (``[ { " '``, a digit, ``+``, ``-``, ``true``,
    ``false``) must be one: ``-p n=[1,`` is an error, not the string ``"[1,"``.
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(f"-p expects NAME=VALUE, got '{printable(text)}'", file="command line")
    if not is_text(text):
        raise ConfigError(f"-p {printable(text)}: not valid UTF-8 text", file="command line")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if _LITERAL_START.match(raw):
            shown = raw if len(raw) <= 60 else raw[:60] + "..."
            quoted = None if '"' in raw or "'" in raw else f"""-p '{name}="{shown}"'"""
            raise ConfigError(f"-p {name}: '{shown}' starts like a TOML value but is not one",
                              file="command line",
                              hint=quoted and f"for the string, quote it: {quoted}") from None
        value = raw
    except RecursionError:
        value = None
    if value is None or too_deep(value, name) is not None:
        raise ConfigError(f"-p {name}: arrays or tables nested more than {MAX_NESTING} deep",
                          file="command line")
    return name, value


def is_text(text: str) -> bool:
    """False for a string holding undecodable bytes (surrogate escapes from argv or a path)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with undecodable bytes shown as ``\\xff``, for messages."""
    return text if is_text(text) else os.fsencode(text).decode("utf-8", "backslashreplace")


def is_module_name(name: object) -> bool:
    """A dotted Python module name (``myproj.flow_plugins``), never a path."""
    return isinstance(name, str) and _MODULE.match(name) is not None


def too_deep(value: Any, key: str = "") -> str | None:
    """The dotted key of an array or table in ``value`` inside MAX_NESTING others (an
    array's items go by its key), or None; without recursion. Only containers are
    visited, and a key is spelled out only for the answer."""
    if not isinstance(value, (dict, list)):
        return None
    stack: list[tuple[Any, int, Any]] = [(value, 0, None)]  # (container, depth, link)
    while stack:
        item, depth, link = stack.pop()
        if depth >= MAX_NESTING:
            parts = []
            while link is not None:
                name, link = link
                if name is not None:
                    parts.append(str(name))
            return ".".join([key, *reversed(parts)] if key else reversed(parts))
        if isinstance(item, dict):
            stack.extend((v, depth + 1, (k, link)) for k, v in item.items()
                         if isinstance(v, (dict, list)))
        else:
            stack.extend((v, depth + 1, (None, link)) for v in item if isinstance(v, (dict, list)))
    return None


def load(path: Path, overrides: Mapping[str, Any] | None = None) -> Project:
    """Parse, validate and expand ``path``; ``overrides`` replace project params."""
    file = path.name
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ConfigError(f"invalid TOML: arrays or tables nested too deeply (at most"
                          f" {MAX_NESTING})", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {printable(str(path))}: {exc.strerror}",
                          file=printable(file)) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(
            f"invalid TOML: {message}", file=file, line=int(match.group(1)) if match else None
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file) from None
    return _Loader(path, doc).project(dict(overrides or {}))


def _number(value: float) -> str:
    """A bound or an amount in a message: 10,000,000; 1e+12; 1e+18 (never fails, however
    large the integer TOML gave)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if abs(value) < 10**12:
        return f"{value:,}"
    return f"{value:.6g}" if value.bit_length() < 1000 else \
        f"about 1e{int(value.bit_length() * math.log10(2))}"


def _type_name(value: Any) -> str:
    import datetime

    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table", datetime.datetime: "a date-time",
            datetime.date: "a date", datetime.time: "a time"}.get(type(value),
                                                                  type(value).__name__)


class _Loader:
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
            raise self.error(key, f"must be at most {_number(high)}, got {_number(value)}")
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

    # -- top level ---------------------------------------------------------------------

    def project(self, overrides: dict[str, Any]) -> Project:
        self.check_keys(self.doc, {"flow", "params", "targets"}, "")
        flow = self.expect(self.doc.get("flow", {}), (dict,), "flow", "a table")
        settings = self.settings(flow)
        params = dict(self.expect(self.doc.get("params", {}), (dict,), "params", "a table"))
        self.check_depth(params, "params")
        targets = dict(self.expect(self.doc.get("targets", {}), (dict,), "targets", "a table"))
        for path in self.included(flow.get("include", [])):
            self.merge_flow(path, params, targets)
        for path in self.param_files(flow.get("params_files", [])):
            self.merge(params, read_params(path, shown(self.root, path)), "params", path)
        for name, value in overrides.items():
            if not override(params, name, value):
                raise UnknownParamError(name, suggest(name, names(params)))
        self.params = params
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
        return Project(self.root, self.path, settings, params, expanded,
                       tuple(self.sources), tuple(dict.fromkeys(self.globs)))

    # -- more files: [flow] include and params_files ------------------------------------

    def included(self, value: Any) -> list[Path]:
        """``[flow] include``: the files its paths and globs name, in order, each once."""
        found: dict[Path, None] = {}
        for pattern in self.str_list(value, "flow.include"):
            rel = self.project_path(pattern, "flow.include")
            if is_glob(rel):
                self.globs.append(rel)
                matches = glob_files(self.root, rel)
            elif (self.root / rel).is_file():
                matches = [rel]
            else:
                raise self.error("flow.include", f"'{rel}': no such file")
            for match in matches:
                path = self.root / match
                if path.resolve() != self.path.resolve():  # flow.toml itself, by a glob
                    found[path] = None
        return list(found)

    def project_path(self, value: str, key: str) -> str:
        """A root-relative file path (a glob may be one), never a URL."""
        rel = self.norm(value, key, inside=False)
        if is_url(rel):
            raise self.error(key, f"'{rel}': a file in the project, not a URL")
        return rel

    def merge_flow(self, path: Path, params: dict[str, Any], targets: dict[str, Any]) -> None:
        """One included file's params and targets; it may hold nothing else."""
        from flowmake.config.toml_lines import locate

        name = shown(self.root, path)
        doc = read_toml(path, name)
        for key, value in doc.items():
            if key not in ("params", "targets"):
                hint = "[flow] settings belong in flow.toml" if key == "flow" else None
                raise ConfigError("unknown key: an included file holds [params] and"
                                  " [targets.*] only", file=name, line=locate(path, key),
                                  key=key, hint=hint)
            if not isinstance(value, dict):
                raise ConfigError(f"expected a table, got {_type_name(value)}", file=name,
                                  line=locate(path, key), key=key)
        self.sources.append(name)
        self.merge(params, doc.get("params", {}), "params", path)
        self.merge(targets, doc.get("targets", {}), "targets", path)

    def param_files(self, value: Any) -> list[Path]:
        """``[flow] params_files``: each must exist."""
        paths = []
        for file in self.str_list(value, "flow.params_files"):
            rel = self.project_path(file, "flow.params_files")
            if not (self.root / rel).is_file():
                raise self.error("flow.params_files", f"'{rel}': no such file")
            self.sources.append(rel)
            paths.append(self.root / rel)
        return paths

    def merge(self, into: dict[str, Any], table: dict[str, Any], section: str,
              path: Path) -> None:
        """Names are unique across files: a second declaration names both places."""
        for key, value in table.items():
            if key in into:
                first = self.origin.get((section, key), self.path)
                self.origin[(section, key)] = path
                what = "target" if section == "targets" else "param"
                raise self.error(f"{section}.{key}", f"{what} '{key}' is also declared in"
                                 f" {self.place(first, f'{section}.{key}')}")
            into[key] = value
            self.origin[(section, key)] = path
            if section == "params":
                self.check_depth(value, f"params.{key}")

    def place(self, path: Path, key: str) -> str:
        """``flows/a.toml:12`` (the line where TOML can say)."""
        from flowmake.config.toml_lines import locate

        line = locate(path, key) if path.suffix == ".toml" else None
        name = path.name if path == self.path else shown(self.root, path)
        return name if line is None else f"{name}:{line}"

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

    # -- targets -----------------------------------------------------------------------

    def targets(self, name: str, table: Any) -> list[Target]:
        where = f"targets.{name}"
        if not _NAME.match(name):
            raise self.error(where, "a target name may use letters, digits and _ . - / only")
        self.expect(table, (dict,), where, "a table")
        self.check_keys(table, TARGET_KEYS, where)
        self.check_depth(table.get("params"), f"{where}.params")
        has_cmd, has_python = "cmd" in table, "python" in table
        if has_cmd == has_python:
            raise self.error(where, "needs exactly one of 'cmd' or 'python'")
        matrix = table.get("matrix")
        if matrix is None and "foreach" not in table:
            self.count_targets(1, where)
            return [self.target(name, name, table, {})]
        items: list[tuple[str | None, str]] = [(None, "")]
        if "foreach" in table:
            items = [*self.foreach(table["foreach"], f"{where}.foreach")]
        count, combos = (1, lambda: iter([({}, "")])) if matrix is None else \
            self.matrix(matrix, where)
        total = count * len(items)  # before expanding anything
        key = f"{where}.matrix" if matrix is not None else f"{where}.foreach"
        if total > MAX_INSTANCES:
            raise self.error(key, f"expands to {total:,} instances; at most"
                                  f" {MAX_INSTANCES:,} are allowed")
        self.count_targets(total, key)
        instances = []
        for item, item_label in items:  # name[stem], name[k=v], name[stem,k=v]
            for values, label in combos():
                label = ",".join(p for p in (item_label, label) if p)
                instances.append(self.target(f"{name}[{label}]", name, table, values, item))
        return instances

    def matrix(self, matrix: Any, where: str) -> tuple[int, Any]:
        """A matrix's instance count, and a function giving each (values, label)."""
        self.expect(matrix, (dict,), f"{where}.matrix", "a table of arrays")
        if not matrix:
            raise self.error(f"{where}.matrix", "needs at least one key")
        keys = sorted(matrix)
        labels = {key: self.matrix_labels(matrix[key], f"{where}.matrix.{key}") for key in keys}

        def combos() -> Any:
            for combo in itertools.product(*(range(len(matrix[k])) for k in keys)):
                values = {k: matrix[k][i] for k, i in zip(keys, combo, strict=True)}
                yield values, ",".join(f"{k}={labels[k][i]}"
                                       for k, i in zip(keys, combo, strict=True))

        return math.prod(len(v) for v in labels.values()), combos

    def foreach(self, value: Any, key: str) -> list[tuple[str | None, str]]:
        """``foreach``: the files its globs match now, each with its label (its stem, or
        its path where stems collide), sorted by path."""
        patterns = [value] if isinstance(value, str) else self.str_list(value, key)
        if not patterns:
            raise self.error(key, "needs at least one glob")
        files: dict[str, None] = {}
        for pattern in patterns:
            rel = self.project_path(pattern, key)
            self.globs.append(rel)
            matches = glob_files(self.root, rel) if is_glob(rel) else (
                [rel] if (self.root / rel).is_file() else [])
            files.update(dict.fromkeys(matches))
        if not files:
            raise self.error(key, f"matches no file ({', '.join(patterns)})",
                             hint="foreach reads the files there when flow.toml is loaded:"
                             " add one, or fix the glob")
        paths = sorted(files)
        return list(zip(paths, item_labels(paths), strict=True))

    def matrix_labels(self, values: Any, key: str) -> list[str]:
        """How each value of one matrix key reads in instance names; each must differ."""
        self.expect(values, (list,), key, "an array")
        if not values:
            raise self.error(key, "needs at least one value")
        labels = []
        for value in values:
            if isinstance(value, (list, dict)):
                raise self.error(key, f"a matrix value must be a string, number or boolean,"
                                      f" got {_type_name(value)}")
            label = format_value(value)
            if label in labels:
                raise self.error(key, f"the value '{label}' is listed twice")
            labels.append(label)
        return labels

    def count_targets(self, count: int, key: str) -> None:
        """Targets in all (matrix instances included) stay within MAX_INSTANCES."""
        self.total += count
        if self.total > MAX_INSTANCES:
            raise self.error(key, f"the flow has more than {MAX_INSTANCES:,} targets"
                                  " (matrix instances included)")

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
        if "cmd" in table:
            command = self.expect(table["cmd"], (str,), f"{where}.cmd", "a string")
            scope.files(inputs, outputs, cwd)
            command = scope.resolve(command, f"{where}.cmd", text=True)
            action: Shell | Call = Shell(self.clean_text(command, f"{where}.cmd", "a command"),
                                         cwd)
        else:
            function = self.expect(table["python"], (str,), f"{where}.python", "'module:function'")
            if not _FUNCTION.match(function):
                raise self.error(f"{where}.python", f"expected 'module:function', got '{function}'")
            version = table.get("version")
            if version is not None:
                version = str(self.expect(version, (str, int, float), f"{where}.version", "a string"))
            action = Call(function, version)
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

    def metrics(self, value: Any, scope: _Scope, outputs: tuple[Output, ...],
                key: str) -> tuple[str, ...]:
        """``metrics = [paths]``: outputs of the target, JSON, TOML or YAML files."""
        from flowmake.cli.metrics import METRIC_EXTENSIONS

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
              item: str | None) -> _Scope:
        """What ``${...}`` may name in one target: its matrix values, ``${item...}`` of a
        foreach instance; ``track_params`` enter its key without being passed."""
        scope = _Scope(self, where, matrix)
        if item is not None:
            scope.values.update(item_values(item))
        if "track_params" in table:
            self.track(table["track_params"], scope, f"{where}.track_params")
        return scope

    def track(self, value: Any, scope: _Scope, key: str) -> None:
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

    def clean_text(self, text: str, key: str, what: str) -> str:
        """No NUL byte: no system call takes one in a path, an argument or a name."""
        if "\0" in text:
            raise self.error(key, f"{what} cannot contain a NUL byte")
        return text

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

    def path_pairs(self, value: Any, key: str) -> list[tuple[str | None, str, str]]:
        """``[paths]`` or ``{name = path}`` as (name, path, key) triples."""
        if isinstance(value, dict):
            return [(n, self.expect(p, (str,), f"{key}.{n}", "a path"), f"{key}.{n}")
                    for n, p in value.items()]
        return [(None, p, key) for p in self.str_list(value, key)]

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
