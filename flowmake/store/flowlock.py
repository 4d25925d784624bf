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

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from flowmake.errors import ConfigError
from flowmake.store import paths

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
_JOURNAL_MAX = 500  # entries changed since lock.cache was written whole


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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot be read ({exc})", file=NAME, hint=RESOLVE) from None
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
    import tomli_w

    table: dict[str, Any] = {"key": e.key}
    table.update((p, e.parts[p]) for p in _PARTS if p in e.parts and e.parts[p] != {})
    table["outputs"] = dict(e.outputs)
    return tomli_w.dumps({"targets": {name: table}})


def compose(blocks: Mapping[str, str]) -> str:
    """The file's text from its entries' blocks, sorted by name."""
    return HEADER + f"\nversion = {FORMAT}\n\n" + "\n".join(blocks[n] for n in sorted(blocks))


def render(entries: Mapping[str, LockEntry]) -> str:
    """The file's text: entries sorted by name, each key's parts in a fixed order."""
    return compose({name: block(name, e) for name, e in entries.items()})


def write(path: Path, entries: Mapping[str, LockEntry]) -> bool:
    """Write ``entries`` atomically, only if that changes the file; True if written."""
    return write_text(path, render(entries))


def write_text(path: Path, text: str) -> bool:
    from flowmake.fsutil import atomic_write

    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write(path, text.encode("utf-8"))
    return True


def signature(path: Path) -> tuple[int, int, int] | None:
    """(size, mtime_ns, inode) of the file, None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
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
    """One project's flow.lock, with its entries parsed and rendered kept in ``.flowmake/``
    (keyed by the file's size, mtime and inode), so that a build neither parses the file
    nor renders the entries it did not change: at 10,000 targets both cost most of a
    second. The file itself stays the truth: a changed stat means it is parsed again.

    The kept entries are a base (``lock.cache``, written whole) and a journal of the
    entries changed since (``lock.cache-delta``, the base's token): a build that changed a
    few entries writes the journal, not 10,000 entries; past ``_JOURNAL_MAX`` the base is
    written again. After its own write the file is known to be the entries' rendering,
    so it is not read back to compare."""

    def __init__(self, path: Path, state_dir: Path) -> None:
        self.path = path
        self._cache = state_dir / paths.LOCK_CACHE
        self._journal = state_dir / (paths.LOCK_CACHE + "-delta")
        self._sig = state_dir / paths.LOCK_SIG
        self._entries: dict[str, Cached] | None = None
        self._token: int | None = None  # the base's, when the entries came from it
        self._changes: dict[str, tuple[str, ...] | None] = {}  # since that base
        self._rendered: tuple[int, int, int] | None = None  # the file is ours at this stat

    def validate(self) -> None:
        """Parse the file now if it changed since this clone last read or wrote it (one
        stat otherwise), so that a broken lock is exit 2 before anything runs."""
        now = signature(self.path)
        if now is not None and repr(now) != self._read(self._sig, text=True):
            self.entries()

    def entries(self) -> dict[str, Cached]:
        """Every entry, by target name (none without the file).

        Raises:
            ConfigError: flow.lock cannot be read (``flow.lock:LINE``, what to do).
        """
        if self._entries is None:
            now = signature(self.path)
            found: dict[str, Cached] = {}
            if now is not None:
                kept = self._kept(now)
                if kept is not None:
                    found = kept
                else:
                    found = {n: _cached(n, e) for n, e in (read(self.path) or {}).items()}
                    self._remember_base(now, found, rendered=False)
            self._entries = found
        return self._entries

    def _kept(self, now: tuple[int, int, int]) -> dict[str, Cached] | None:
        """The kept entries (base and journal) if they were taken from the file as it is
        ``now``, else None."""
        base = self._read(self._cache)
        if not (isinstance(base, tuple) and len(base) == 5 and base[0] == FORMAT):
            return None
        _, token, sig, rendered, stored = base
        journal = self._read(self._journal)
        changes: dict[str, Any] = {}
        if isinstance(journal, tuple) and len(journal) == 5 and journal[:2] == (FORMAT, token):
            _, _, sig, rendered, changes = journal
        if sig != now:
            return None
        found = {n: Cached(*c) for n, c in stored.items()}
        for name, c in changes.items():
            if c is None:
                found.pop(name, None)
            else:
                found[name] = Cached(*c)
        self._token, self._changes = token, dict(changes)
        self._rendered = now if rendered else None
        return found

    def update(self, changed: Mapping[str, Any], targets: Iterable[str]) -> bool:
        """Apply ``changed`` (name → a record, or None to remove its entry), keep only
        ``targets``, and write the file if its text changes; True if written."""
        current = self.entries()
        wanted = set(targets)
        new = {n: c for n, c in current.items() if n in wanted}
        touched: set[str] = set()  # entries new or changed
        for name, record in changed.items():
            if record is None:
                new.pop(name, None)
            elif name in wanted:
                old = new.get(name)
                if old is None or (old.key, old.outputs_json) != (record.key,
                                                                 record.outputs_json):
                    new[name] = _cached(name, entry(record.key, record.parts, record.outputs))
                    touched.add(name)
        exists = self.path.exists()
        if not new and not exists:
            return False  # nothing to say, and no file to change
        if exists and len(new) == len(current) and all(
                n in current and new[n].block == current[n].block for n in touched):
            return False  # no entry added, removed or changed (no sort of 10,000 entries)
        text = HEADER + f"\nversion = {FORMAT}\n\n" + "\n".join(
            new[n].block for n in sorted(new))  # compose(), without a dict of the blocks
        if self._rendered is not None and self._rendered == signature(self.path):
            from flowmake.fsutil import atomic_write  # ours: its text is not this one

            atomic_write(self.path, text.encode("utf-8"))
            written = True
        else:
            written = write_text(self.path, text)
        self._remember(new, touched, current.keys() - new.keys())
        return written

    def _remember(self, new: dict[str, Cached], touched: set[str], removed: set[str]) -> None:
        """The entries kept after a write: the journal of what changed, or a new base."""
        self._entries = new
        sig = signature(self.path)
        self._changes.update((n, tuple(new[n])) for n in touched)
        self._changes.update(dict.fromkeys(removed))
        if self._token is None or len(self._changes) > _JOURNAL_MAX:
            self._remember_base(sig, new, rendered=True)
            return
        self._rendered = sig
        self._keep(self._journal, (FORMAT, self._token, sig, True, self._changes), sig)

    def _remember_base(self, sig: tuple[int, int, int] | None, entries: dict[str, Cached],
                       *, rendered: bool) -> None:
        self._token, self._changes = time.time_ns(), {}
        self._rendered = sig if rendered else None
        stored = {n: tuple(c) for n, c in entries.items()}
        self._keep(self._cache, (FORMAT, self._token, sig, rendered, stored), sig)
        with contextlib.suppress(OSError):
            self._journal.unlink(missing_ok=True)

    def _keep(self, path: Path, value: tuple[Any, ...],
              sig: tuple[int, int, int] | None) -> None:
        import marshal

        from flowmake.fsutil import atomic_write

        try:
            atomic_write(path, marshal.dumps(value), fsync=False)
            atomic_write(self._sig, repr(sig).encode(), fsync=False)
        except OSError:
            pass  # a read-only state: parsed again next time

    @staticmethod
    def _read(path: Path, *, text: bool = False) -> Any:
        import marshal

        try:
            data = path.read_bytes()
            return data.decode() if text else marshal.loads(data)
        except (OSError, ValueError, EOFError, TypeError, UnicodeDecodeError):
            return None
