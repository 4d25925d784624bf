"""The self-contained HTML pages (``flowmake graph --format html``, ``flowmake report``).

Each page is a template in ``flowmake/assets`` (``NAME.html``) with its styles
(``NAME.css``), its script (``NAME.js``) and its data (JSON) inlined: no network, one file
to attach to a CI run.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from flowmake.config.values import printable
from flowmake.errors import UsageError

MARKER = re.compile(r"/\*\{\{(\w+)\}\}\*/|\{\{(\w+)\}\}")


def asset(name: str) -> str:
    return resources.files("flowmake").joinpath("assets").joinpath(name).read_text(
        encoding="utf-8")


def script_json(doc: Any) -> str:
    """JSON safe inside ``<script>``: no ``</script>``, no ``<!--``, same value once parsed."""
    text = json.dumps(doc, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(name: str, title: str, doc: Any) -> str:
    """The page ``name``: its template with its styles, script and ``doc`` inlined.

    One substitution pass, so text from the data can never be taken for a marker.
    """
    from html import escape

    values = {
        "title": escape(title),
        "style": asset(f"{name}.css"),
        "script": asset(f"{name}.js"),
        "data": script_json(doc),
    }
    return MARKER.sub(lambda m: values[m.group(1) or m.group(2)], asset(f"{name}.html"))


def write_output(path: Path, text: str) -> None:
    """``-o FILE``: its missing parent folders are made; a folder or an unwritable path is a
    usage error naming it."""
    shown = printable(str(path))
    if path.is_dir():
        raise UsageError(f"-o {shown}: is a directory", hint="name a file: -o DIR/graph.html")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"-o {shown}: cannot write: a parent of it is not a folder") from None
    except OSError as exc:
        raise UsageError(f"-o {shown}: cannot write: {exc.strerror}") from None
