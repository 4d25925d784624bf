"""The cell of parameters injected into a notebook run (papermill's convention).

The new code cell goes right after the first code cell tagged ``parameters``, so the
notebook's defaults run first and the target's values replace them; a notebook without
such a cell gets it at the top (before any of its code). It is tagged
``injected-parameters``, as papermill tags it.
"""

from __future__ import annotations

import datetime
import keyword
import math
from collections.abc import Mapping
from typing import Any

from flowmake.errors import ConfigError
from flowmake_notebook.read import PARAMETERS_TAG, tags_of

INJECTED_TAG = "injected-parameters"
HEADER = "# Parameters injected by flowmake"


def injection_index(cells: list[dict[str, Any]]) -> int:
    """Where the injected cell goes: after the first code cell tagged ``parameters``, else 0."""
    for index, cell in enumerate(cells):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in tags_of(cell):
            return index + 1
    return 0


def render(params: Mapping[str, Any]) -> str:
    """Python assignments for ``params``, one a line, in the given order.

    Values are JSON-able (str, int, float, bool, None, lists, dicts with str keys) or
    TOML dates and times; ``nan`` and ``inf`` become ``float('nan')``/``float('inf')``.
    A name that is not a Python identifier, or another kind of value, is a ConfigError
    naming the param.
    """
    lines = [HEADER]
    uses_datetime = False
    for name, value in params.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ConfigError(f"{name!r} is not a Python name: it cannot be a notebook"
                              " parameter", key=f"params.{name}")
        text, dated = literal(value, f"params.{name}")
        uses_datetime = uses_datetime or dated
        lines.append(f"{name} = {text}")
    if uses_datetime:
        lines.insert(1, "import datetime")
    return "\n".join(lines) + "\n"


def literal(value: Any, key: str) -> tuple[str, bool]:
    """Python source for ``value``, and whether it needs ``import datetime``."""
    if value is None or isinstance(value, bool | int | str):
        return repr(value), False
    if isinstance(value, float):
        return (repr(value) if math.isfinite(value) else f"float({str(value)!r})"), False
    if isinstance(value, datetime.date | datetime.time):
        return repr(value), True
    if isinstance(value, list | tuple):
        items = [literal(v, key) for v in value]
        return "[" + ", ".join(t for t, _ in items) + "]", any(d for _, d in items)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ConfigError("a notebook parameter's table keys must be strings", key=key)
        pairs = [(repr(k), literal(v, f"{key}.{k}")) for k, v in value.items()]
        return ("{" + ", ".join(f"{k}: {t}" for k, (t, _) in pairs) + "}",
                any(d for _, (_, d) in pairs))
    raise ConfigError(f"a {type(value).__name__} cannot be passed to a notebook (JSON values,"
                      " dates and times only)", key=key)
