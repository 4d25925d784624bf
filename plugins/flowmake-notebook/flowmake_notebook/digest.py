"""The code key of a notebook: its code cells only."""

from __future__ import annotations

import os

import xxhash

from flowmake_notebook.read import code_cells, normalised, read_notebook

# Bumped when what enters the digest changes (every notebook target rebuilds once).
DIGEST_FORMAT = b"flowmake-notebook code 1\n"


def code_digest(path: str | os.PathLike[str]) -> str:
    """XXH3-128 (hex) over the notebook's code cells: each one's kind and normalised
    source, in order.

    Outputs, execution counts, metadata, markdown and raw cells are left out, so re-saving
    a notebook after running it gives the same digest; editing, adding, removing or
    reordering code changes it. A cell's kind is ``parameters`` for the cell tagged
    ``parameters`` (moving the tag moves where params are injected) and ``code``
    otherwise; other tags do not count. Empty code cells do not count. Comments do:
    the source is compared as text, not as a syntax tree (cells may hold IPython
    magics, which are not Python).

    Raises ConfigError naming the path if the file is not a readable notebook.
    """
    h = xxhash.xxh3_128(DIGEST_FORMAT)
    for cell in code_cells(read_notebook(path)):
        source = normalised(cell.source)
        if not source:
            continue
        kind = b"parameters" if cell.is_parameters else b"code"
        data = source.encode("utf-8", errors="surrogatepass")
        h.update(kind + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()
