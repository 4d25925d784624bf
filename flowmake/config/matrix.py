"""A declared target expanded (SPEC §4, §10): one target, or the instances of its
``matrix`` (every combination of its values) times its ``foreach`` files, within
MAX_INSTANCES."""

from __future__ import annotations

import itertools
import math
from typing import Any

from flowmake.config.flowfiles import glob_files, item_labels
from flowmake.config.interpolate import format_value
from flowmake.config.targets import NAME, TARGET_KEYS, TargetReader
from flowmake.config.values import MAX_INSTANCES, type_name
from flowmake.model import Target, is_glob


class MatrixReader(TargetReader):
    """Each declared target as the targets it expands to, counted against MAX_INSTANCES."""

    def targets(self, name: str, table: Any) -> list[Target]:
        where = f"targets.{name}"
        if not NAME.match(name):
            raise self.error(where, "a target name may use letters, digits and _ . - / only")
        self.expect(table, (dict,), where, "a table")
        kind = self.kind_of(table, where)  # a plugin's kind: notebook = "..."
        allowed = TARGET_KEYS if kind is None else TARGET_KEYS | {kind.KEY, *kind.OPTIONS}
        self.check_keys(table, allowed, where)
        self.check_depth(table.get("params"), f"{where}.params")
        has_cmd, has_python = "cmd" in table, "python" in table
        if kind is None and has_cmd == has_python:
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
                                      f" got {type_name(value)}")
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
