"""Read and validate flow.toml into a :class:`~flowmake.model.Project`.

Every error names the file, line and key (``flow.toml:14: targets.train.deps: ...``).
Matrix targets are expanded here and every ``${...}`` is resolved, so later stages see
plain values only. The loader's parts: reader.py (the checks every key goes through),
settings.py (``[flow]``), include.py (more files), targets.py (one target's table),
scope.py (``${...}``), matrix.py (matrix and foreach instances); values.py holds the
bounds and the checks that need no flow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowmake.config.flowfiles import names, override, read_params, shown, tomllib
from flowmake.config.include import IncludeReader
from flowmake.config.matrix import MatrixReader
from flowmake.config.settings import SettingsReader
from flowmake.config.targets import KindFinder
from flowmake.config.values import MAX_NESTING, printable
from flowmake.errors import ConfigError, UnknownParamError, suggest
from flowmake.model import Project, Target, is_glob


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
    fast path, which imports nothing, has the same loop in ``cli.parser.flow_file``)."""
    folder = start
    while True:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def load(path: Path, overrides: Mapping[str, Any] | None = None, *,
         kinds: KindFinder | None = None) -> Project:
    """Parse, validate and expand ``path``; ``overrides`` replace project params;
    ``kinds`` finds the plugin kind of a target that is neither cmd nor python."""
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
    loader = _Loader(path, doc)
    loader.kinds = kinds
    return loader.project(dict(overrides or {}))


class _Loader(MatrixReader, IncludeReader, SettingsReader):
    """The whole flow: settings, included files, params, targets, and the checks across
    targets."""

    def project(self, overrides: dict[str, Any]) -> Project:
        self.check_keys(self.doc, {"flow", "params", "targets"}, "")
        flow = self.expect(self.doc.get("flow", {}), (dict,), "flow", "a table")
        settings = self.settings(flow)
        self.plugin_modules = settings.plugins
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
