"""The parts of `graph --format json` that only the compiled flow decides, kept in
``.flowmake/graph.texts`` beside it.

A node's name, kind, help, action, params, paths, upstream, downstream and depth, and the
edges, are the same from one `graph` to the next until flow.toml changes; only the states
and the records' times differ. At 100,000 targets, writing those parts took ~0.9 s of the
command's 1.5 s. They are written once, after the first `graph` of a compiled flow, as
text: one line of flags (``A`` an always target, ``-`` not), one line per node (its JSON up
to and including ``"state": ``) and one line per edge. A resident server keeps the text
decoded for its forks (flowmake/warm.py), as it keeps the compiled flow.

The file names the compiled flow it was made from (the stamp inside flow.pickle, written
anew each time flow.toml is compiled), this module's and graph.py's code, the counts and
the names' digest (so that the all-fresh answer, cli/graphfresh.py, can use it without
the flow), and carries an xxh3 digest of its text: a file from another flow, another
flowmake, or damaged (it is written without fsync, as a cache) is not used, and is made
again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flowmake import __version__, fastpath, warm
from flowmake.fsutil import atomic_write
from flowmake.store import paths as layout

FORMAT = 2  # 2: the names' digest in the header
KIND = "graph-texts"

# (flags, node texts, edge texts): the texts in the order of the names
Texts = tuple[str, Iterable[str], Iterable[str]]
Made = tuple[str, list[str], list[str]]


def code() -> list[int]:
    """What the kept texts' format depends on besides their FORMAT: the modules that write
    them (graph.py by its path: importing it here would make an import cycle)."""
    here = os.path.dirname(__file__)
    return [os.stat(os.path.join(here, name)).st_mtime_ns
            for name in ("graph.py", "graphtexts.py", "graphstates.py", "graphtails.py",
                         "graphfresh.py")]


def _header(stamp: int, nodes: int, edges: int, digest: str) -> dict[str, Any]:
    return {"format": FORMAT, "flowmake": __version__, "code": code(), "flow": stamp,
            "nodes": nodes, "edges": edges, "names": digest}


def pack(header: dict[str, Any], body: str) -> bytes:
    """A kept file: ``header`` as one line of JSON, with the digest of ``body`` (ASCII
    text: UnicodeEncodeError otherwise), then the body."""
    import xxhash

    raw = body.encode("ascii")
    return json.dumps({**header, "xxh3": xxhash.xxh3_64_hexdigest(raw)}).encode() + \
        b"\n" + raw


def unpack(data: bytes, what: str) -> tuple[dict[str, Any], str]:
    """A kept file's header and body; ValueError unless the body is the one its header's
    digest names (``what``: the file, for the error)."""
    import xxhash

    head, _, raw = data.partition(b"\n")
    header = json.loads(head)
    if not isinstance(header, dict) or header.get("xxh3") != xxhash.xxh3_64_hexdigest(raw):
        raise ValueError(f"{what}: damaged")
    return header, raw.decode("ascii")


def _decode(data: bytes) -> tuple[dict[str, Any], str]:
    """The header and the text after it; ValueError unless the digest and the lines are
    the header's (checked once: a resident server keeps the result for its forks)."""
    header, body = unpack(data, "graph.texts")
    nodes, edges, edges_at = header["nodes"], header["edges"], header["edges_at"]
    if body.count("\n") != nodes + edges or (
            body.find("\n") if nodes + edges else len(body)) != nodes or (
            edges and body[edges_at - 1:edges_at] != "\n"):
        raise ValueError("graph.texts: not the lines its header says")
    return header, body


warm.LOADERS[KIND] = _decode


def path_in(state_dir: str) -> str:
    return os.path.join(state_dir, layout.GRAPH_TEXTS)


def names_digest(joined: str) -> str:
    """What the texts' header names their targets by: the xxh3 of the names in their
    order, joined by ``fastpath.SEP`` (as the snapshot keeps them: cli/graphfresh.py
    checks that its names are the texts' without splitting them)."""
    import xxhash

    return xxhash.xxh3_64_hexdigest(joined.encode("utf-8", "surrogatepass"))


def kept(state_dir: str, stamp: int, nodes: int, digest: str) -> Texts | None:
    """The texts kept for the compiled flow ``stamp``, of ``nodes`` nodes whose names
    have the ``digest`` (:func:`names_digest`); None if the file holds other ones, or
    is damaged or missing."""
    try:
        header, body = warm.read(path_in(state_dir), KIND)
        edges = header["edges"]
        if any(header.get(k) != v
               for k, v in _header(stamp, nodes, edges, digest).items()):
            return None
        # the edges as one block (jsonout.Texts: one a line)
        return body[:nodes], _lines(body, nodes + 1, nodes), [body[header["edges_at"]:]]
    except (OSError, ValueError, UnicodeDecodeError, KeyError, AttributeError, TypeError):
        return None  # not there, another flow's, or damaged


def load(state_dir: str, stamp: int | None, names: list[str],
         make: Callable[[], Made]) -> Texts:
    """The texts of the compiled flow ``stamp`` (None: not saved, made each time) for
    ``names`` (every target, in order), read from the file when it holds them, else
    made and saved."""
    if stamp is None:
        return make()
    digest = names_digest(fastpath.SEP.join(names))
    found = kept(state_dir, stamp, len(names), digest)
    if found is not None:
        return found
    made = make()
    save(path_in(state_dir), stamp, digest, made)
    return made


def _lines(body: str, at: int, count: int) -> Iterator[str]:
    """``count`` lines of ``body`` from offset ``at``, sliced one by one as they are
    written (split at once, 100,000 of them would all be held until the end)."""
    find = body.find
    for _ in range(count):
        end = find("\n", at)
        yield body[at:end if end >= 0 else len(body)]
        at = end + 1


def save(path: str, stamp: int, digest: str, texts: Made) -> None:
    flags, nodes, edges = texts
    try:
        head = "\n".join([flags, *nodes])
        body = head + "\n" + "\n".join(edges) if edges else head
        header = {**_header(stamp, len(nodes), len(edges), digest), "edges_at": len(head) + 1}
        atomic_write(path, pack(header, body), fsync=False)
    except (OSError, UnicodeEncodeError):
        return  # a read-only project still works, just slower
    warm.note(path, KIND)
