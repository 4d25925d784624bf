"""Content fingerprints (XXH3-128) of files and folders, behind a stat cache.

A file whose (size, mtime_ns, inode) matches its cache entry is not read again, unless
its mtime is too close to when it was hashed to be trusted (the "racy" case, as in git:
a write in the same clock tick as the hash would leave the stat unchanged).
"""

from __future__ import annotations

import glob as globlib
import os
import stat
import time
from collections.abc import Iterable
from typing import Any, Protocol

from flowmake.digest import _utf8_name, hash_file, tree_digest
from flowmake.model import StatEntry
from flowmake.store import paths

RACY_NS = 2_000_000_000  # an mtime this close to the hash time is not trusted
_SKIP_DIRS = {paths.STATE_DIR, ".git"}


class UrlBackends(Protocol):
    """The backends behind URL paths, as a Hasher is handed them (``plugin/urls.py``'s
    ``Urls``, which loads the project's plugins on the first URL). The Hasher asks for
    fingerprints and globs; its users reach the backends through :meth:`Hasher.url_backends`."""

    def backend(self, url: str) -> Any: ...
    def fingerprint(self, url: str) -> str | None: ...
    def glob(self, pattern: str) -> list[str]: ...
    def exists(self, url: str) -> bool: ...
    def remove(self, url: str) -> None: ...


class Hasher:
    """Digests of root-relative paths, memoized for one process, stat-cached across runs.

    ``cache`` is the stat cache loaded from the store; ``dirty`` collects the entries to
    write back. Paths are POSIX and relative to ``root``; URL paths go to ``urls`` (a
    Hasher without it hashes files only).
    """

    def __init__(self, root: str, cache: dict[str, StatEntry] | None = None,
                 urls: UrlBackends | None = None) -> None:
        self.root = root
        self.cache = cache if cache is not None else {}
        self.dirty: dict[str, StatEntry | None] = {}
        self.memo: dict[str, str | None] = {}
        self.hashed_files = 0  # files actually read, for tests and benchmarks
        self.urls = urls
        self.folders: dict[str, tuple[int, int, int]] = {}  # a folder's stat as walked

    def full(self, path: str) -> str:
        return f"{self.root}/{path}"  # hot path: cheaper than os.path.join

    def digest(self, path: str) -> str | None:
        """The content digest of a file or folder; None when it does not exist."""
        try:
            return self.memo[path]
        except KeyError:
            pass
        if "://" in path:  # metadata only (ETag...), memoized for the command like files
            self.memo[path] = result = self.url_backends().fingerprint(path)
            return result
        try:
            st = os.stat(self.full(path))
        except (FileNotFoundError, NotADirectoryError):
            result = None
        else:
            if stat.S_ISDIR(st.st_mode):
                self.folders[path] = (st.st_size, st.st_mtime_ns, st.st_ino)
                result = self._tree(path)
            else:
                result = self._file(path, st)
        self.memo[path] = result
        return result

    def seen(self, path: str) -> tuple[int, int, int] | None:
        """The (size, mtime_ns, inode) that this Hasher's digest of ``path`` was made at
        (a file's as hashed or as found in the stat cache, a folder's as walked), or None
        if it made none. The no-op snapshot saves a path's stat only if it is this one: a
        file changed after its digest went into a key must not look fresh next time."""
        if self.memo.get(path) is None:
            return None
        found = self.folders.get(path)
        if found is not None:
            return found
        entry = self.cache.get(path)
        return None if entry is None else (entry[0], entry[1], entry[2])

    def url_backends(self) -> UrlBackends:
        """The backends this Hasher was handed for URL paths."""
        if self.urls is None:
            raise RuntimeError("a URL path, and this Hasher was given no URL backends")
        return self.urls

    def _file(self, path: str, st: os.stat_result) -> str:
        entry = self.cache.get(path)
        if (entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns
                and entry[2] == st.st_ino and entry[1] < entry[3] - RACY_NS):
            return entry[4]
        digest = hash_file(self.full(path))
        self.hashed_files += 1
        self.learn(path, StatEntry(st.st_size, st.st_mtime_ns, st.st_ino, time.time_ns(), digest))
        return digest

    def _tree(self, path: str) -> str:
        """A folder's digest: every file's relative path and digest, in sorted order."""
        return tree_digest((rel, self.digest(f"{path}/{rel}") if path != "." else self.digest(rel))
                           for rel in self.walk(path))

    def walk(self, path: str) -> list[str]:
        """Files below a folder, relative to it, sorted; symlinked folders are not followed."""
        found: list[str] = []
        base = self.full(path)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            rel = os.path.relpath(dirpath, base)
            for name in filenames:
                found.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
        where = self.root if path == "." else path
        return sorted(_utf8_name(rel, f"{where}/{rel}") for rel in found)

    def learn(self, path: str, entry: StatEntry) -> None:
        """Take a digest computed elsewhere (a worker that just wrote the file)."""
        self.cache[path] = entry
        self.dirty[path] = entry
        self.memo[path] = entry[4]

    def forget(self, paths: Iterable[str]) -> None:
        """Drop memoized digests of paths about to be rewritten (outputs of a target)."""
        for path in paths:
            digest = self.memo.pop(path, None)
            if digest is not None and digest.startswith("d"):  # a folder: its files too
                prefix = path.rstrip("/") + "/"
                for known in [p for p in self.memo if p.startswith(prefix)]:
                    del self.memo[known]

    def glob(self, pattern: str) -> list[str]:
        """Files matching a root-relative glob (``**`` crosses folders), sorted."""
        if "://" in pattern:
            return sorted(self.url_backends().glob(pattern))
        matches = globlib.glob(pattern, root_dir=self.root, recursive=True)
        return sorted(_utf8_name(m.replace(os.sep, "/")) for m in matches
                      if not m.startswith(paths.STATE_DIR) and os.path.isfile(self.full(m)))
