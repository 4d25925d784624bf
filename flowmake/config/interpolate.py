"""``${name}`` interpolation for cmd, inputs, outputs and string params.

A string that is exactly one reference takes the referenced value with its TOML type; a
reference inside a longer string is formatted into it; ``$$`` is a literal ``$``. An
unknown name raises :class:`UnknownReference` (the caller turns it into a ConfigError).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_REF = re.compile(r"\$\$|\$\{([^}]*)\}")
_WHOLE = re.compile(r"\$\{([^}]*)\}")

Lookup = Callable[[str], Any]


class UnknownReference(KeyError):
    """``${name}`` names nothing in scope."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def format_value(value: Any) -> str:
    """How a TOML value reads inside a string (and in matrix instance names)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return " ".join(format_value(v) for v in value)
    return str(value)


def has_refs(text: str) -> bool:
    return "$" in text


def interpolate(text: str, lookup: Lookup, *, keep_dollars: bool = False) -> Any:
    """Resolve references in ``text``; ``keep_dollars`` leaves ``$$`` for a later pass."""
    if "$" not in text:
        return text
    whole = _WHOLE.fullmatch(text)
    if whole:
        return lookup(whole.group(1).strip())

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$$" if keep_dollars else "$"
        return format_value(lookup(match.group(1).strip()))

    return _REF.sub(replace, text)


def references(text: str) -> list[str]:
    """The names ``text`` refers to, in order (``$$`` is not a reference)."""
    return [m.group(1).strip() for m in _REF.finditer(text) if m.group(0) != "$$"]
