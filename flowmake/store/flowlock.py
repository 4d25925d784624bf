"""flow.lock: what was built, in a file that travels with the repository.

``.flowmake/`` belongs to one clone; flow.lock, beside flow.toml and committed, tells a
fresh clone, a CI job or a pre-commit hook what was built: one entry per target (matrix
instances each their own), sorted by name, holding the target's key, its outputs'
digests and the parts of its key that name a change (command or code digests, params,
input digests, env names with value hashes). Paths are relative to the project root and
nothing in it depends on the machine, the folder or the time, so the same commit gives
the same bytes everywhere.

The file is written with a temporary file and a rename, and only when its bytes change:
a build that changed no record leaves it untouched, mtime included.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

from flowmake import warm
from flowmake.errors import ConfigError
from flowmake.store import lockindex, paths

NAME = "flow.lock"
FORMAT = 1
HEADER = (
    "# flow.lock: what flowmake built (keys, output digests, and what made each key).\n"
    "# Written by `flowmake build` and `accept`; commit it beside flow.toml.\n"
    "# On a merge conflict, take either side or delete the file: the next build rewrites it.\n"
)
RESOLVE = ("take either side (`git checkout --ours flow.lock` or `--theirs`) or delete"
           " flow.lock; the next `flowmake build` rewrites it")
_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})( |$)", re.M)
# The parts of a key kept in an entry, in this order (a record's "outputs" part, the
# declared paths, is the entry's outputs table itself).
_PARTS = ("action", "code", "params", "project_params", "env", "deps", "inputs", "globs")


class LockEntry(NamedTuple):
    """One target's line of work: its key, the parts of that key, its outputs' digests."""

    key: str
    parts: dict[str, Any]
    outputs: dict[str, str]

    @property
    def parts_json(self) -> str:
        return json.dumps(self.parts, default=str)

    @property
    def outputs_json(self) -> str:
        return json.dumps(self.outputs)


def entry(key: str, parts: Mapping[str, Any], outputs: Mapping[str, str]) -> LockEntry:
    """An entry from a record's key, parts and output digests."""
    declared = list(parts.get("outputs", outputs))
    kept = {p: parts[p] for p in _PARTS if p in parts}
    return LockEntry(key, {**kept, "outputs": declared},
                     {path: outputs.get(path, "") for path in declared})


def read(path: Path) -> dict[str, LockEntry] | None:
    """The entries of ``path``; None when there is no such file.

    Raises:
        ConfigError: naming ``flow.lock:LINE`` for conflict markers, bad syntax or an
            unknown format version, with what to do.
    """
    text = read_text(path)
    return None if text is None else parse(text)


def read_text(path: Path) -> str | None:
    """The file's text; None when there is no such file (ConfigError if unreadable)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read ({exc})", file=NAME, hint=RESOLVE) from None


def parse(text: str) -> dict[str, LockEntry]:
    """The entries of flow.lock's ``text`` (ConfigError as ``read`` says)."""
    ours = as_rendered(text)
    if ours is not None:
        return {name: e for name, (e, _) in ours.items()}
    return parse_toml(text)


def parse_toml(text: str) -> dict[str, LockEntry]:
    """``parse`` by tomllib, whatever the text."""
    marker = _MARKER.search(text)
    if marker:
        line = text.count("\n", 0, marker.start()) + 1
        raise ConfigError("unresolved merge conflict (conflict markers)", file=NAME,
                          line=line, hint=RESOLVE)
    doc = _parse(text)
    version = doc.get("version")
    if version != FORMAT:
        raise ConfigError(f"unknown format version {version!r} (this flowmake reads {FORMAT})",
                          file=NAME, line=_line_of(text, "version"),
                          hint="upgrade flowmake, or " + RESOLVE)
    targets = doc.get("targets", {})
    if not isinstance(targets, dict):
        raise ConfigError("'targets' must be a table", file=NAME,
                          line=_line_of(text, "targets"), hint=RESOLVE)
    return {name: _entry(name, table, text) for name, table in targets.items()}


def _parse(text: str) -> dict[str, Any]:
    from flowmake.config.flowfiles import tomllib

    try:
        return dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"invalid TOML: {message}", file=NAME,
                          line=int(match.group(1)) if match else None, hint=RESOLVE) from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply", file=NAME, hint=RESOLVE) from None


# What the plain renderer writes as it is and the reader takes back: a bare key, and the
# characters of a string that needs no escape (_BARE and _QUOTED_AS_IS are made of them).
_BARE_KEY = r"[A-Za-z0-9_-]+"
_AS_IS = r'[^"\\\x00-\x08\x0a-\x1f\x7f]*'
# An entry's first line, as block() writes it (its name bare, or quoted without escapes),
# and a plain line, as _plain_pairs writes it.
_ENTRY_HEAD = re.compile(rf'\[targets\.(?:({_BARE_KEY})|"({_AS_IS})")\]\Z')
_PLAIN_PAIR = re.compile(rf'(?:({_BARE_KEY})|"({_AS_IS})") = "({_AS_IS})"\Z')


def as_rendered(text: str) -> dict[str, tuple[LockEntry, str]] | None:
    """flow.lock's entries, each with its block, read without a TOML parser when ``text``
    is exactly what flowmake writes (PREFIX, then each entry's block as ``block`` renders
    it, sorted by name); None for any other text (``parse`` reads it with tomllib).

    Whatever this reading makes of the text, its entries are rendered again and the
    result compared with the text, whole: only a text that is their very rendering is
    taken, and a rendering reads back, in tomllib, as the entries it was made from
    (tomli_w's, and _plain_block's, which tests/property holds to tomli_w's bytes). A
    block of other lines than plain strings (a param's number) is read by tomllib alone.
    tomllib took 44 ms for 1,000 entries (a fresh clone's or CI job's first build reads
    them all); this ~4x less."""
    if not text.startswith(PREFIX):
        return None
    lines = text[len(PREFIX):].split("\n")
    heads = {i: named for i, line in enumerate(lines) if line.startswith("[targets.")
             and (named := _ENTRY_HEAD.match(line))}
    starts = list(heads)
    if (lines and lines != [""] and starts[:1] != [0]) or (lines and lines[-1] != ""):
        return None
    tables: dict[str, Any] = {}
    for at, end in pairwise([*starts, len(lines)]):
        name = heads[at].group(1) or heads[at].group(2)
        table = _plain_table(name, lines[at + 1:end])
        if table is None:
            table = _toml_table(name, "\n".join(lines[at:end]))
        if table is None or name in tables:
            return None
        tables[name] = table
    found: dict[str, tuple[LockEntry, str]] = {}
    for name, table in tables.items():
        try:
            e = _entry(name, table, "")
        except ConfigError:
            return None  # parse() says where
        found[name] = (e, block(name, e))
    rendered = PREFIX + "\n".join(found[n][1] for n in sorted(found))
    return found if rendered == text else None


def _plain_table(name: str, lines: list[str]) -> dict[str, Any] | None:
    """An entry's table from the lines after its head when every one is a plain string
    (``key = "value"``), a blank line or the head of one of its tables of them."""
    table: dict[str, Any] = {}
    into = table
    for line in lines:
        if not line:
            continue
        pair = _PLAIN_PAIR.match(line)
        if pair is not None:
            key = pair.group(1) or pair.group(2)
            if key in into:
                return None
            into[key] = pair.group(3)
        elif line.startswith("[") and line.endswith("]"):
            owner, _, sub = line[:-1].rpartition(".")
            head = _ENTRY_HEAD.match(owner + "]")
            if head is None or (head.group(1) or head.group(2)) != name \
                    or not _BARE.match(sub) or sub in table:
                return None
            into = table[sub] = {}
        else:
            return None
    return table


def _toml_table(name: str, chunk: str) -> dict[str, Any] | None:
    """One entry's table from its block alone, by tomllib (a param's number or list)."""
    from flowmake.config.flowfiles import tomllib

    try:
        doc = tomllib.loads(chunk)
    except (tomllib.TOMLDecodeError, RecursionError):
        return None
    targets = doc.get("targets")
    if not isinstance(targets, dict) or list(doc) != ["targets"] or list(targets) != [name]:
        return None
    table = targets[name]
    return table if isinstance(table, dict) else None


def _entry(name: str, table: Any, text: str) -> LockEntry:
    key = table.get("key") if isinstance(table, dict) else None
    outputs = table.get("outputs", {}) if isinstance(table, dict) else None
    if not isinstance(key, str) or not isinstance(outputs, dict) or not all(
            isinstance(d, str) for d in outputs.values()):
        raise ConfigError(f"entry '{name}' needs a string 'key' and a table of 'outputs'",
                          file=NAME, line=_line_of(text, name), hint=RESOLVE)
    parts = {p: table[p] for p in _PARTS if p in table}
    parts["outputs"] = list(outputs)
    return LockEntry(key, parts, dict(outputs))


def _line_of(text: str, word: str) -> int | None:
    """The first line that mentions ``word`` (to point at a bad entry), if any."""
    index = text.find(word)
    return None if index < 0 else text.count("\n", 0, index) + 1


def block(name: str, e: LockEntry) -> str:
    """One entry's lines (its tables), as they stand in the file."""
    table: dict[str, Any] = {"key": e.key}
    table.update((p, e.parts[p]) for p in _PARTS if p in e.parts and e.parts[p] != {})
    table["outputs"] = dict(e.outputs)
    plain = _plain_block(name, table)
    if plain is not None:
        return plain
    import tomli_w

    return tomli_w.dumps({"targets": {name: table}})


# An entry of strings and tables of strings (nearly every one: keys, digests, commands),
# written here as tomli_w writes it, ~4x faster (a build of 1,000 targets renders 1,000
# blocks); anything else (a param's number or list, a character tomli_w escapes) is left
# to tomli_w. tests/property/test_flowlock_blocks.py holds the two to the same bytes.
_BARE = re.compile(_BARE_KEY + r"\Z")
_QUOTED_AS_IS = re.compile(_AS_IS + r"\Z")  # no escape needed


def _plain_key(key: str) -> str | None:
    if _BARE.match(key):
        return key
    return f'"{key}"' if _QUOTED_AS_IS.match(key) else None


def _plain_pairs(table: Mapping[str, Any], lines: list[str], tables: list[str] | None,
                 head: str) -> bool:
    """``table``'s strings as ``key = "value"`` lines (and with ``tables``, its tables of
    strings as sections); False when something in it is not that plain."""
    for key, value in table.items():
        if not isinstance(key, str) or (name := _plain_key(key)) is None:
            return False
        if isinstance(value, str):
            if not _QUOTED_AS_IS.match(value):
                return False
            lines.append(f'{name} = "{value}"\n')
        elif tables is not None and isinstance(value, dict):
            section = [f"\n[{head}.{name}]\n"]
            if not _plain_pairs(value, section, None, ""):
                return False
            tables.append("".join(section))
        else:
            return False
    return True


def _plain_block(name: str, table: Mapping[str, Any]) -> str | None:
    """tomli_w.dumps({"targets": {name: table}}) for a plain entry; None for another."""
    if (key := _plain_key(name)) is None:
        return None
    head = f"targets.{key}"
    lines: list[str] = [f"[{head}]\n"]
    tables: list[str] = []
    if not _plain_pairs(table, lines, tables, head):
        return None
    return "".join(lines) + "".join(tables)


PREFIX = HEADER + f"\nversion = {FORMAT}\n\n"  # the text before the first entry's block


def compose(blocks: Mapping[str, str]) -> str:
    """The file's text from its entries' blocks, sorted by name."""
    return PREFIX + "\n".join(blocks[n] for n in sorted(blocks))


def render(entries: Mapping[str, LockEntry]) -> str:
    """The file's text: entries sorted by name, each key's parts in a fixed order."""
    return compose({name: block(name, e) for name, e in entries.items()})


def write(path: Path, entries: Mapping[str, LockEntry]) -> bool:
    """Write ``entries`` atomically, only if that changes the file; True if written."""
    return write_text(path, render(entries))


def write_text(path: Path, text: str) -> bool:
    return _written_text(path, text) is not None


def _written_text(path: Path, text: str) -> tuple[int, int, int] | None:
    """``text`` written to ``path`` unless it holds it already: the written file's
    signature, or None."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return None
    except (OSError, UnicodeDecodeError):
        pass
    return _write_lock(path, text.encode("utf-8"))


def signature(path: Path) -> tuple[int, int, int] | None:
    """(size, mtime_ns, inode) of the file, None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _sig(st)


def _sig(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class Cached(NamedTuple):
    """An entry as a build needs it: the JSON a Record holds, and its block of the file."""

    key: str
    parts_json: str
    outputs_json: str
    block: str


def _cached(name: str, e: LockEntry) -> Cached:
    return Cached(e.key, e.parts_json, e.outputs_json, block(name, e))


class LockFile:
    """One project's flow.lock, with its entries kept in ``.flowmake/lock.cache``
    (store/lockindex.py: SQLite, keyed by the file's size, mtime and inode), so that a
    build neither parses the file nor loads the entries it does not need: at 10,000
    targets the entries are ~6 MB. The file itself stays the truth: a changed stat means
    it is parsed again.

    A build reads the entries its stale targets need one by one (``entry``), and a build
    that changed a few entries rewrites the file from its own text: the changed blocks
    replaced, the others copied (their offsets follow from the kept lengths), so neither
    the other entries nor their blocks are loaded."""

    def __init__(self, path: Path, state_dir: Path) -> None:
        self.path = path
        self._index = lockindex.Index(state_dir / paths.LOCK_CACHE)
        self._entries: dict[str, Cached] | None = None  # every entry, once all are read
        self._rows: dict[str, Cached | None] = {}  # the entries read one by one
        self._kept: lockindex.Kept | None = None  # the index, when it holds for the file
        self._looked = False

    def _current(self) -> lockindex.Kept | None:
        """The kept index if it was taken from the file as it is now (looked up once)."""
        if not self._looked:
            self._looked = True
            now = signature(self.path)
            kept = self._index.kept() if now is not None else None
            self._kept = kept if kept is not None and kept.sig == now else None
        return self._kept

    def validate(self) -> None:
        """Parse the file now if it changed since this clone last read or wrote it (a stat
        and one row otherwise), so that a broken lock is exit 2 before anything runs."""
        if self._entries is None and self._current() is None:
            self.entries()

    def entry(self, name: str) -> Cached | None:
        """One entry (None: not in the file, or no file), read alone when it is kept.

        Raises:
            ConfigError: flow.lock cannot be read (``flow.lock:LINE``, what to do).
        """
        if self._entries is not None:
            return self._entries.get(name)
        if name not in self._rows:
            if self._current() is None or len(self._rows) >= _ONE_BY_ONE:
                return self.entries().get(name)  # parsed (and kept), or all of them
            try:
                row = self._index.row(name)
            except sqlite3.Error:
                self._kept = None  # not readable now: the file is the truth
                return self.entries().get(name)
            self._rows[name] = None if row is None else Cached(*row)
        return self._rows[name]

    def preload(self, names: Iterable[str]) -> None:
        """Read the entries of ``names`` that ``entry`` would read one by one, together
        (a cone build's targets); nothing when it would read them all anyway.

        Raises:
            ConfigError: flow.lock cannot be read (``flow.lock:LINE``, what to do).
        """
        if self._entries is not None:
            return
        wanted = [n for n in names if n not in self._rows]
        if not wanted or self._current() is None or \
                len(self._rows) + len(wanted) >= _ONE_BY_ONE:
            return
        try:
            found = self._index.rows_named(wanted)
        except sqlite3.Error:
            return  # entry() meets it again, and parses the file
        for name in wanted:
            row = found.get(name)
            self._rows[name] = None if row is None else Cached(*row)

    def entries(self) -> dict[str, Cached]:
        """Every entry, by target name (none without the file).

        Raises:
            ConfigError: flow.lock cannot be read (``flow.lock:LINE``, what to do).
        """
        if self._entries is None:
            rows = self._index.rows() if self._current() is not None else None
            if rows is not None:
                self._entries = {n: Cached(*r) for n, r in rows.items()}
            else:
                self._entries = self._parsed()
        return self._entries

    def _parsed(self) -> dict[str, Cached]:
        """The file parsed and its entries rendered, kept for the next command."""
        now = signature(self.path)
        text = read_text(self.path) if now is not None else None
        if text is None:
            return {}
        ours = as_rendered(text)
        if ours is not None:  # written by flowmake: later edits splice
            found = {n: Cached(e.key, e.parts_json, e.outputs_json, b)
                     for n, (e, b) in ours.items()}
            layout, rendered = _layout(found), True
        else:  # (not parse(): it would try as_rendered again)
            found = {n: _cached(n, e) for n, e in parse_toml(text).items()}
            layout = _layout(found)
            rendered = _joined(found, layout) == text
        self._keep(now, rendered, layout, found, None)  # the stat before the read
        return found

    def update(self, changed: Mapping[str, Any], targets: Iterable[str],
               within: int | None = None) -> bool:
        """Apply ``changed`` (name → a record, or None to remove its entry), keep only
        ``targets``, and write the file if its text changes; True if written. ``within``:
        the stamp of the compiled flow ``targets`` are of (lockindex.Layout), if known."""
        wanted = targets if isinstance(targets, (set, frozenset, dict)) else set(targets)
        kept = self._current() if self._entries is None else None
        if kept is not None and kept.rendered:
            layout = self._index.layout()
            if layout is not None and layout.names:
                done = self._spliced(layout, changed, wanted, within)
                if done is not None:
                    return done
        return self._rewritten(changed, wanted, within)

    def _touched(self, changed: Mapping[str, Any], wanted: Any,
                 old: Callable[[str], Cached | None]) -> dict[str, Cached]:
        """The entries ``changed`` adds or changes (their blocks rendered anew)."""
        touched: dict[str, Cached] = {}
        for name, record in changed.items():
            if record is None or name not in wanted:
                continue
            before = old(name)
            if before is None or (before.key, before.outputs_json) != (record.key,
                                                                       record.outputs_json):
                new = _cached(name, entry(record.key, record.parts, record.outputs))
                if before is None or new.block != before.block:
                    touched[name] = new
        return touched

    def _spliced(self, layout: lockindex.Layout, changed: Mapping[str, Any],
                 wanted: Any, within: int | None) -> bool | None:
        """The update written from the file's own text (its other blocks copied); None
        when the text is not the one kept (then it is parsed again)."""
        names = layout.names
        if within is not None and layout.within == within:
            # every name in the file is a target of this very flow: none to look for among
            # 10,000 (a set of them and its difference took ~5 ms of a resident fork)
            removed = {n for n, r in changed.items() if r is None and _among(names, n)}
        else:
            present = set(names)
            removed = present.difference(wanted)
            removed.update(n for n, r in changed.items() if r is None and n in present)
        touched = self._touched(changed, wanted, self.entry)
        if not touched and not removed:
            return False
        try:  # a resident server's fork: the bytes its server read after the last write
            data = warm.read(str(self.path), WARM_KIND)
        except OSError:
            data = b""
        spliced = lockindex.splice(
            data, PREFIX.encode(), layout, {n: c.block.encode() for n, c in touched.items()},
            removed, {n: c.block.encode() for n, c in self._rows.items() if c is not None})
        if spliced is None:
            self._kept, self._rows = None, {}
            return None
        new_data, new_layout = spliced
        new_layout = new_layout._replace(within=within)  # its names: the file's, or targets
        sig = _write_lock(self.path, new_data)  # what was written, not what is there now
        warm.note(str(self.path), WARM_KIND)  # for the next build's splice
        self._keep(sig, True, None if new_layout == layout else new_layout, touched, removed)
        return True

    def _rewritten(self, changed: Mapping[str, Any], wanted: Any,
                   within: int | None = None) -> bool:
        """The update with every entry in hand (the file parsed, or all entries read)."""
        current = self.entries()
        new = {n: c for n, c in current.items() if n in wanted}
        touched = self._touched(changed, wanted, current.get)
        new.update(touched)
        for name, record in changed.items():
            if record is None:
                new.pop(name, None)
        exists = self.path.exists()
        if not new and not exists:
            return False  # nothing to say, and no file to change
        if exists and len(new) == len(current) and not touched:
            return False  # no entry added, removed or changed (no sort of 10,000 entries)
        layout = _layout(new)._replace(within=within)  # every name one of ``wanted``
        sig = _written_text(self.path, _joined(new, layout))
        valid = self._kept is not None  # the index holds every entry of the file before
        self._entries = new
        removed = current.keys() - new.keys()
        # (not written: the file held this very text when it was read just now)
        self._keep(sig or signature(self.path), True, layout, touched if valid else new,
                   removed if valid else None)
        return sig is not None

    def _keep(self, sig: tuple[int, int, int] | None, rendered: bool,
              layout: lockindex.Layout | None, rows: Mapping[str, Cached],
              removed: Iterable[str] | None) -> None:
        """The index after a read or write of the file at stat ``sig`` (``rendered``: its
        text is the blocks'): ``rows`` changed and ``removed`` gone, or (``removed``
        None) ``rows`` every entry; ``layout`` None: the kept layout still holds."""
        if sig is None:  # gone meanwhile
            self._kept, self._looked = None, True
            return
        kept = lockindex.Kept(sig, rendered)
        if removed is None:
            assert layout is not None
            written = self._index.replace(kept, layout, rows)
        else:
            written = self._index.apply(kept, layout, rows, removed)
        # not written (a read-only .flowmake, a busy cache): the file is the truth
        self._kept, self._looked = (kept if written else None), True
        for name in removed or ():
            self._rows[name] = None
        self._rows.update(rows)

    def close(self) -> None:
        self._index.close()


_ONE_BY_ONE = 500  # entries read one by one before all are read at once
# The file's bytes as a splice reads them: kept by a resident server between builds
# (warm.py), so that a fork's edit build does not read 3.3 MB at 10,000 targets again.
# Its identity (inode, size, mtime, ctime) is a stricter test than the stat by which the
# index is trusted to describe the file (``signature``), and the splice still checks the
# bytes it keeps against their length and the blocks it knows.
WARM_KIND = "flow.lock"
warm.LOADERS[WARM_KIND] = bytes


def _among(names: list[str], name: str) -> bool:
    """``name`` is one of ``names`` (sorted)."""
    i = bisect_left(names, name)
    return i < len(names) and names[i] == name


def _layout(entries: Mapping[str, Cached]) -> lockindex.Layout:
    """The entries' names in the file's order, with their blocks' lengths in UTF-8."""
    names = sorted(entries)
    return lockindex.Layout(names, [len(entries[n].block.encode()) for n in names])


def _joined(entries: Mapping[str, Cached], layout: lockindex.Layout) -> str:
    """compose(), from the entries in the layout's order (no dict of the blocks)."""
    return PREFIX + "\n".join(entries[n].block for n in layout.names)


ASIDE = "flow.lock.replaced"  # in the state folder: the replaced file's blocks, freed later


def _write_lock(path: Path, data: bytes | list[Any]) -> tuple[int, int, int]:
    from flowmake.fsutil import atomic_write, discard, keep_blocks

    aside = os.path.join(path.parent, paths.STATE_DIR, ASIDE)
    if keep_blocks(str(path), aside):  # removed after the exit code, in a resident fork
        warm.at_end_once(aside, lambda: discard(aside))
    return _sig(atomic_write(path, data))
