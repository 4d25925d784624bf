"""The files a flow is read from besides flow.toml (SPEC §10): included flow files
(``[flow] include``), params files (``[flow] params_files``: YAML, JSON or TOML) and the
files a ``foreach`` globs over; and ``tomllib``, the TOML reader flowmake uses. The loader
calls these; every path is relative to the project root, and every error names the file
(and the line where the format says it).
"""

from __future__ import annotations

import glob as globlib
import json
import os
import posixpath
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flowmake.errors import ConfigError
from flowmake.model import is_glob

if sys.version_info >= (3, 11):
    import tomllib as tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_SKIP = (".flowmake/", ".git/")


def shown(root: Path, path: Path) -> str:
    """A file as messages name it: relative to the project root."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def read_toml(path: Path, name: str) -> dict[str, Any]:
    """A TOML file as a table; ConfigError naming ``name`` and the line otherwise."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror}", file=name) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=name) from None
    except RecursionError:
        raise ConfigError("invalid TOML: arrays or tables nested too deeply",
                          file=name) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"invalid TOML: {message}", file=name,
                          line=int(match.group(1)) if match else None) from None


def read_params(path: Path, name: str) -> dict[str, Any]:
    """A params file (by extension: .yaml/.yml, .json, .toml) as a table of params."""
    ext = path.suffix.lower()
    if ext == ".toml":
        data: Any = read_toml(path, name)
    elif ext in (".yaml", ".yml", ".json"):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read it: {exc.strerror}", file=name,
                              hint="[flow] params_files names it") from None
        except UnicodeDecodeError:
            raise ConfigError("not UTF-8 text", file=name) from None
        data = _json(text, name) if ext == ".json" else _yaml(text, name)
    else:
        raise ConfigError(f"a params file must be YAML, JSON or TOML (.yaml, .yml, .json,"
                          f" .toml), not '{ext or path.name}'", file=name)
    if data is None:
        return {}  # an empty YAML file
    if not isinstance(data, dict):
        raise ConfigError("a params file must hold a table (a mapping of names to values) at"
                          " its top", file=name)
    bad = _bad_key(data)
    if bad is not None:
        raise ConfigError(f"param names must be strings without dots, got {bad!r}", file=name)
    return data


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid JSON: {exc.msg}", file=name, line=exc.lineno) from None
    except RecursionError:
        raise ConfigError("invalid JSON: nested too deeply", file=name) from None


def _yaml(text: str, name: str) -> Any:
    import yaml  # only a project with a YAML params file pays for it, once per flow change

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # a safe loader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", file=name,
                          line=None if mark is None else mark.line + 1) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=name) from None


def _bad_key(data: Mapping[Any, Any]) -> Any:
    stack = [data]
    while stack:
        table = stack.pop()
        for key, value in table.items():
            if not isinstance(key, str) or "." in key or not key:
                return key
            if isinstance(value, dict):
                stack.append(value)
    return None


# -- dotted params ----------------------------------------------------------------------


def lookup(params: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """``train.lr`` in nested params: (found, value)."""
    if name in params:
        return True, params[name]
    value: Any = params
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def override(params: dict[str, Any], name: str, value: Any) -> bool:
    """Set ``train.lr`` (an existing param) in a copy-on-write way; False if unknown."""
    if name in params:
        params[name] = value
        return True
    parts = name.split(".")
    table = params
    for part in parts[:-1]:
        inner = table.get(part)
        if not isinstance(inner, dict):
            return False
        table[part] = inner = dict(inner)  # never mutate a table shared with the file
        table = inner
    if parts[-1] not in table:
        return False
    table[parts[-1]] = value
    return True


def leaves(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every param as a dotted name (``train.lr``), tables flattened."""
    found: dict[str, Any] = {}
    stack = [(prefix, params)]
    while stack:
        base, table = stack.pop()
        for key, value in table.items():
            name = f"{base}.{key}" if base else key
            if isinstance(value, dict) and value:
                stack.append((name, value))
            else:
                found[name] = value
    return dict(sorted(found.items()))


def names(params: Mapping[str, Any]) -> list[str]:
    """Every name ``${params.X}`` may use: tables and their leaves."""
    found: list[str] = []
    stack = [("", params)]
    while stack:
        base, table = stack.pop()
        for key, value in table.items():
            name = f"{base}.{key}" if base else key
            found.append(name)
            if isinstance(value, dict):
                stack.append((name, value))
    return found


# -- globs ------------------------------------------------------------------------------


def glob_files(root: Path, pattern: str) -> list[str]:
    """Files (not folders) matching a root-relative glob (``**`` crosses folders), sorted,
    outside ``.flowmake/`` and ``.git/``."""
    matches = globlib.glob(pattern, root_dir=root, recursive=True)
    found = []
    for match in matches:
        rel = posixpath.normpath(match.replace(os.sep, "/"))
        if not rel.startswith(_SKIP) and os.path.isfile(root / rel):
            found.append(rel)
    return sorted(set(found))


def glob_folders(root: Path, pattern: str) -> list[str]:
    """The folders whose listing decides what ``pattern`` matches (a file added to or
    removed from one changes its mtime): the folders its directory part matches, and
    every folder below them for ``**``."""
    head, _, _ = pattern.rpartition("/")
    if "**" in pattern:
        base = []
        for part in pattern.split("/"):
            if is_glob(part):
                break
            base.append(part)
        folders = []
        for dirpath, dirnames, _ in os.walk(root.joinpath(*base)):
            dirnames[:] = [d for d in dirnames if d not in (".flowmake", ".git")]
            folders.append(shown(root, Path(dirpath)))
        return sorted(folders)
    if not head:
        return ["."]
    if not is_glob(head):
        return [head]
    return sorted(m for m in globlib.glob(head, root_dir=root) if os.path.isdir(root / m))


def listing(root: Path, patterns: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """(folder, mtime_ns, inode) of every folder the patterns glob over, for the compiled
    flow's signature: a file added or removed there means reading flow.toml again."""
    found = []
    for pattern in patterns:
        for folder in glob_folders(root, pattern):
            try:
                st = os.stat(root / folder)
            except OSError:
                found.append((folder, -1, -1))
                continue
            found.append((folder, st.st_mtime_ns, st.st_ino))
    return tuple(found)


# -- foreach ----------------------------------------------------------------------------


def item_values(path: str) -> dict[str, str]:
    """What ``${item...}`` means for one file: the path, its stem, name and folder."""
    folder, _, name = path.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return {"item": path, "item.stem": stem, "item.name": name, "item.dir": folder or "."}


def item_labels(paths: list[str]) -> list[str]:
    """Each file's label in its instance's name: its stem, or its path where stems collide."""
    stems = [item_values(p)["item.stem"] for p in paths]
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    return [stem if seen[stem] == 1 else path for stem, path in zip(stems, paths, strict=True)]


def declared_in(flow_file: Path, key: str) -> tuple[str, int | None]:
    """Where ``key`` (``targets.train.inputs``) is declared: flow.toml, or the included file
    that declares its target or param; (file, line). For errors found after loading, which
    know the key only. Reads the files again: only errors pay for it."""
    from flowmake.config.toml_lines import key_lines, locate

    head = ".".join(key.split(".")[:2])
    root = flow_file.parent
    try:
        doc = read_toml(flow_file, flow_file.name)
    except ConfigError:
        return flow_file.name, None
    include = doc.get("flow", {}).get("include", []) if isinstance(doc.get("flow"), dict) else []
    if head in key_lines(_text(flow_file)) or not isinstance(include, list):
        return flow_file.name, locate(flow_file, key)
    for pattern in (p for p in include if isinstance(p, str)):
        for rel in glob_files(root, pattern) if is_glob(pattern) else [pattern]:
            if head in key_lines(_text(root / rel)):
                return rel, locate(root / rel, key)
    return flow_file.name, locate(flow_file, key)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
