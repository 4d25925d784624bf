"""Find the line of a dotted key in a TOML file, for error messages.

tomllib keeps no positions, so on an error we scan the text once: table headers
(``[targets.train]``) and ``key =`` lines under them. Only errors pay for this.
"""

from __future__ import annotations

import re
from pathlib import Path

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")


def _parts(dotted: str) -> list[str]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^.\s]+)', dotted)
    return [a or b or c for a, b, c in parts]


def _code(line: str) -> str:
    """The line without its comment: a ``#`` outside quotes starts one."""
    quote = ""
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            return line[:i]
    return line


def key_lines(text: str) -> dict[str, int]:
    """Map each dotted key (``targets.train.deps``) to its 1-based line."""
    lines: dict[str, int] = {}
    table: list[str] = []
    in_multiline = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw if in_multiline else _code(raw)
        # Skip the body of multi-line strings: their lines are not keys.
        if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
            if in_multiline:
                in_multiline = False
                continue
            in_multiline = True
        elif in_multiline:
            continue
        header = _HEADER.match(line)
        if header:
            table = _parts(header.group(1))
            lines.setdefault(".".join(table), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault(".".join([*table, *_parts(key.group(1))]), number)
    return lines


def locate(file: Path | str, key: str) -> int | None:
    """The line of ``key`` in ``file``, or of its closest enclosing table; None if unknown."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError:
        return None
    lines = key_lines(text)
    parts = key.split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    return None
