"""JSON for people and tools at once: the outer levels indented, each item on one line.

``json.dumps(doc, indent=2)`` falls back to the standard library's pure-Python encoder
(its C encoder serves only unindented output): `graph --format json` of 10,000 targets
spent 1.6 of its 3 s there. Here the first ``depth`` levels of containers are laid out
one entry per line and everything below is written by the C encoder, so a graph or a
status prints one target per line, as fast as compact JSON and as easy to grep or diff.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import GeneratorType
from typing import Any


class Texts:
    """A list whose items are already JSON text (made by :func:`string` and friends, say),
    each put out as it is, one a line; ``items`` may be a generator, read as it is written.
    An element of ``items`` may hold several items, one a line (JSON text never holds a
    raw newline): a block of 100,000 items is put out by one ``str.replace``, not item by
    item."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[str]) -> None:
        self.items = items

    def joined(self, sep: str) -> str:
        """Every item, ``sep`` between them (the items are read)."""
        return sep.join(b for b in self.items if b).replace("\n", sep)


def blocks(items: Iterable[str], size: int = 256) -> Iterator[str]:
    """``items`` (each one item's JSON text) as blocks of up to ``size`` of them, one a
    line: what :class:`Texts` puts out by one ``str.replace`` each."""
    block: list[str] = []
    for item in items:
        block.append(item)
        if len(block) == size:
            yield "\n".join(block)
            block.clear()
    if block:
        yield "\n".join(block)


# A str as json.dumps writes it (the C encoder's own function): '"a\\"b\\u00e9"'.
string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def strings(items: Sequence[str]) -> str:
    """A list of str as the compact encoder writes it: '["a", "b"]'."""
    if len(items) == 1:  # the usual input or output
        return "[" + string(items[0]) + "]"
    return "[" + ", ".join(map(string, items)) + "]" if items else "[]"


def number(value: float | None) -> str:
    """An int, a finite float or None as the compact encoder writes it (not a bool)."""
    return "null" if value is None else repr(value)


def dumps(doc: Any, *, depth: int = 2, default: Callable[[Any], Any] | None = None) -> str:
    """``doc`` as JSON: containers at the first ``depth`` levels one entry per line."""
    parts: list[str] = []
    dump(doc, parts.append, depth=depth, default=default)
    return "".join(parts)


def dump(doc: Any, write: Callable[[str], Any], *, depth: int = 2,
         default: Callable[[Any], Any] | None = None) -> None:
    """``doc`` as :func:`dumps` writes it, handed to ``write`` in pieces of some KB as it is
    made. A generator at the first ``depth`` levels is written as a list, one item at a
    time: a document of 100,000 targets need not be held whole, neither as text nor as
    objects."""
    out = _Out(write)
    _render(doc, 0, depth, json.JSONEncoder(default=default).encode, out)
    out.flush()


class _Out(list[str]):
    """The pieces not written yet; handed on every FLUSH_AT of them."""

    FLUSH_AT = 512

    def __init__(self, write: Callable[[str], Any]) -> None:
        super().__init__()
        self.write = write

    def flush(self) -> None:
        if self:
            self.write("".join(self))
            self.clear()


def _render(value: Any, level: int, depth: int, compact: Callable[[Any], str],
            out: _Out) -> None:
    if isinstance(value, Texts):
        _render_texts(value, level, depth, out)
        return
    if level >= depth or not isinstance(value, dict | list | tuple | GeneratorType):
        out.append(compact(value))
        return
    pad = "  " * (level + 1)
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    items: Iterable[Any] = value.items() if isinstance(value, dict) else value
    empty = True
    for item in items:
        out.append((opening + "\n" if empty else ",\n") + pad)
        empty = False
        if opening == "{":
            out.append(compact(_key(item[0], compact)) + ": ")
            _render(item[1], level + 1, depth, compact, out)
        else:
            _render(item, level + 1, depth, compact, out)
        if len(out) >= out.FLUSH_AT:
            out.flush()
    out.append(opening + closing if empty else "\n" + "  " * level + closing)


def _render_texts(value: Texts, level: int, depth: int, out: _Out) -> None:
    if level >= depth:
        out.append("[" + value.joined(", ") + "]")
        return
    pad = "  " * (level + 1)
    between = ",\n" + pad
    empty = True
    for block in value.items:
        if not block:
            continue  # an empty block holds no item
        out.append(("[\n" if empty else ",\n") + pad)
        empty = False
        if "\n" in block:  # several items: written as they are, not copied into a join
            out.flush()
            out.write(block.replace("\n", between))
        else:
            out.append(block)
            if len(out) >= out.FLUSH_AT:
                out.flush()
    out.append("[]" if empty else "\n" + "  " * level + "]")


def _key(key: Any, compact: Callable[[Any], str]) -> str:
    """A dict key as JSON writes one: a string as it is, anything else as its JSON text."""
    return key if isinstance(key, str) else compact(key)
