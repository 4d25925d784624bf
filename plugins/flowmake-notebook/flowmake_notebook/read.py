"""Reading a notebook file as plain JSON (nbformat 4), without importing nbformat.

Cells are numbered from 1 over *all* the notebook's cells (markdown and raw included), in
file order: the position Jupyter and VS Code show, and what error messages name.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, NamedTuple

from flowmake.errors import ConfigError

PARAMETERS_TAG = "parameters"  # papermill's convention: the cell holding the defaults


class CodeCell(NamedTuple):
    number: int  # 1-based position among all cells
    source: str
    tags: tuple[str, ...]

    @property
    def is_parameters(self) -> bool:
        return PARAMETERS_TAG in self.tags


def read_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The notebook at ``path`` as an nbformat-4 dict; ConfigError naming the path if it
    cannot be read or is not a notebook (older formats are converted by nbformat)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError("no such notebook", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the notebook: {exc}", file=name) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not a notebook: invalid JSON: {exc.msg}", file=name,
                          line=exc.lineno) from None
    if isinstance(data, dict) and isinstance(data.get("nbformat"), int) and data["nbformat"] < 4:
        data = _upgrade(text, name)
    _check(data, name)
    return data  # type: ignore[no-any-return]


def _upgrade(text: str, name: str) -> Any:
    import nbformat

    try:
        old = nbformat.reads(text, as_version=4)  # type: ignore[no-untyped-call]
        return json.loads(nbformat.writes(old))  # type: ignore[no-untyped-call]
    except Exception as exc:  # nbformat raises many kinds for a damaged old file
        raise ConfigError(f"not a notebook: {exc}", file=name) from None


def _check(data: Any, name: str) -> None:
    if not isinstance(data, dict) or data.get("nbformat") != 4:
        raise ConfigError("not a Jupyter notebook (nbformat 4 JSON with a 'cells' list)",
                          file=name)
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise ConfigError("not a Jupyter notebook: no 'cells' list", file=name)
    for number, cell in enumerate(cells, 1):
        if not (isinstance(cell, dict) and isinstance(cell.get("cell_type"), str)
                and isinstance(cell.get("source"), str | list)):
            raise ConfigError(f"cell {number} is not a notebook cell (cell_type, source)",
                              file=name)


def source_of(cell: dict[str, Any]) -> str:
    source = cell["source"]
    return source if isinstance(source, str) else "".join(str(s) for s in source)


def tags_of(cell: dict[str, Any]) -> tuple[str, ...]:
    metadata = cell.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    return tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()


def code_cells(notebook: dict[str, Any]) -> list[CodeCell]:
    """The code cells, in order, with their numbers among all cells."""
    return [CodeCell(number, source_of(cell), tags_of(cell))
            for number, cell in enumerate(notebook["cells"], 1)
            if cell["cell_type"] == "code"]


_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)


def normalised(source: str) -> str:
    """A cell's source as its key sees it: LF line ends, no trailing spaces, no leading
    or trailing blank lines (what editors change when they re-save)."""
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    return _TRAILING.sub("", text).strip("\n")
