"""Value checks that need no flow: the bounds on numbers (README.md, "Limits"), text
that may hold undecodable bytes, dotted module names, nesting depth, and ``-p NAME=VALUE``
read as a TOML literal. The loader and the command line both use them."""

from __future__ import annotations

import datetime
import math
import os
import re
from typing import Any

from flowmake.config.flowfiles import tomllib
from flowmake.errors import ConfigError

_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z", re.ASCII)  # a dotted module name

# Bounds on numbers (README.md, "Limits"): past them a value is a mistake, and some would
# hang a build (retries = 10**18) or crash it (timeout = inf). Checked at load.
MAX_TIMEOUT = 1_000_000  # seconds, about 11.5 days (an event loop waits at most ~24.8)
MAX_RETRIES = 100
MAX_JOBS = 1024
MAX_HISTORY = 1_000_000
MAX_AMOUNT = 1e12  # one resource amount or capacity
MAX_INSTANCES = 100_000  # targets one matrix expands to, and targets in all
MAX_NESTING = 100  # arrays and tables inside each other, in flow.toml and in -p values

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


def number(value: float) -> str:
    """A bound or an amount in a message: 10,000,000; 1e+12; 1e+18 (never fails, however
    large the integer TOML gave)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if abs(value) < 10**12:
        return f"{value:,}"
    return f"{value:.6g}" if value.bit_length() < 1000 else \
        f"about 1e{int(value.bit_length() * math.log10(2))}"


def type_name(value: Any) -> str:
    """How a message names a TOML value's type: "an integer", "a table", ..."""
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table", datetime.datetime: "a date-time",
            datetime.date: "a date", datetime.time: "a time"}.get(type(value),
                                                                  type(value).__name__)
