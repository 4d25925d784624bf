"""More files a flow is read from (SPEC §10): ``[flow] include`` (flow files holding
``[params]`` and ``[targets.*]``) and ``[flow] params_files``; a name declared twice
names both places."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowmake.config.flowfiles import glob_files, read_toml, shown
from flowmake.config.reader import Reader
from flowmake.config.values import type_name
from flowmake.errors import ConfigError
from flowmake.model import is_glob


class IncludeReader(Reader):
    """The included files and params files, merged into flow.toml's tables."""

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
                raise ConfigError(f"expected a table, got {type_name(value)}", file=name,
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
