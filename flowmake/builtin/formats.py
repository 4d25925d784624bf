"""Built-in formats: pickle (.pkl, .pickle), json (.json) and text (.txt, .md, .html,
.svg, .log: a ``str``, written as UTF-8).

Registered through the same hook a third-party plugin uses.
"""

from __future__ import annotations

import json
import pickle
from typing import IO, Any

from flowmake.hookspecs import hookimpl


class PickleFormat:
    NAME = "pickle"
    EXTENSIONS = (".pkl", ".pickle")

    def load(self, f: IO[bytes]) -> Any:
        return pickle.load(f)

    def dump(self, value: Any, f: IO[bytes]) -> None:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)


class JsonFormat:
    NAME = "json"
    EXTENSIONS = (".json",)

    def load(self, f: IO[bytes]) -> Any:
        return json.load(f)

    def dump(self, value: Any, f: IO[bytes]) -> None:
        # Sorted keys and a final newline: the same value always gives the same bytes,
        # so early cutoff works for json outputs.
        f.write((json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


class TextFormat:
    NAME = "text"
    EXTENSIONS = (".txt", ".md", ".html", ".svg", ".log")

    def load(self, f: IO[bytes]) -> str:
        return f.read().decode("utf-8")

    def dump(self, value: Any, f: IO[bytes]) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a text output (.txt, .md, .html, .svg, .log) takes a str,"
                            f" got {type(value).__name__}")
        f.write(value.encode("utf-8"))


@hookimpl
def flowmake_register_formats() -> list[type]:
    return [PickleFormat, JsonFormat, TextFormat]
