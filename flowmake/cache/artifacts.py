"""The artifact cache as a build sees it: ``cached`` for the Checker (state "restorable")
and the Restorer of execute.py (``restore`` before running, ``save`` after a success).

A key is looked up in the local cache first, then in the remote (``[flow] remote``); a
remote hit is downloaded into the local cache (every blob verified) before its outputs
are put in place. New results are pushed to the remote in the background; ``close``
waits for those pushes and reports failures as warnings. A remote that cannot be
reached is reported once and left alone for the rest of the command (nothing more is
pushed to it). With ``FLOWMAKE_CACHE_KEY`` set, remote records are signed and verified
(signing.py); the variable is taken out of the environment of the commands flowmake runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from flowmake.cache.index import IndexUnusable
from flowmake.cache.local import LocalCache
from flowmake.cache.records import (
    DIR,
    FILE,
    SIGNING_KEY_ENV,
    URL,
    ActionRecord,
    Entry,
    Mismatch,
    manifest_bytes,
)
from flowmake.digest import tree_digest
from flowmake.errors import FlowmakeError, UsageError
from flowmake.fsutil import is_executable
from flowmake.plan.fingerprint import Hasher

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping
    from concurrent.futures import Future, ThreadPoolExecutor

    from flowmake.cache.remote import Transfers
    from flowmake.cache.signing import Signer
    from flowmake.executor import JobResult
    from flowmake.graph import Graph
    from flowmake.model import Project, Target
    from flowmake.plan.check import Checker, Step

Warn = Callable[[str], None]
SAVE_THREADS = 2  # local copies of large outputs: disk-bound, a couple at a time
# Outputs up to this size (in total) are saved on the scheduler's thread: a thread pool's
# hand-offs cost more than copying them, and threads fighting for the GIL slow the
# whole build (measured: 1,000 small targets took ~40% longer with background saves).
INLINE_SAVE_BYTES = 1 << 20


class Artifacts:
    """One project's artifact cache, local and (optionally) remote.

    Args:
        root: the project root (output paths are relative to it).
        local: the local cache folder.
        hasher: the command's Hasher (digests of outputs, URL backends).
        warn: prints one warning line.
        remote: ``[flow] remote``, or None.
        writable: False for ``remote_readonly = true``.
        signing_key: signs and verifies the remote's records (FLOWMAKE_CACHE_KEY).
    """

    def __init__(self, root: Path, local: LocalCache, hasher: Hasher, warn: Warn, *,
                 remote: str | None = None, writable: bool = True,
                 signing_key: bytes | None = None) -> None:
        self.root, self.local, self.hasher, self.warn = root, local, hasher, warn
        self.remote_url, self.writable = remote, writable
        self._signing_key = signing_key
        self._transfers: Transfers | None = None
        self._remote_off = remote is None
        self._remote_records: dict[str, ActionRecord | None] = {}
        self._local_records: dict[str, ActionRecord] = {}  # read once: has(), then restore()
        self._lock = threading.Lock()  # saves run in threads; the remote opens once
        self._saver: ThreadPoolExecutor | None = None
        self._saves: list[Future[None]] = []

    # -- the remote, opened on first use ------------------------------------------------

    def transfers(self) -> Transfers | None:
        with self._lock:
            if self._transfers is None and not self._remote_off:
                from flowmake.cache.remote import Transfers, open_remote

                assert self.remote_url is not None
                try:
                    store = open_remote(self.remote_url, self.root,
                                        self.hasher.url_backends().backend)
                except FlowmakeError as exc:
                    self.remote_down(exc)
                    return None
                self._transfers = Transfers(self.local, store, self.warn,
                                            writable=self.writable, signer=self._signer())
            return None if self._remote_off else self._transfers

    def _signer(self) -> Signer | None:
        if self._signing_key is None:
            return None
        from flowmake.cache.signing import Signer

        return Signer(self._signing_key)

    def remote_down(self, exc: BaseException) -> None:
        if not self._remote_off:
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.warn(f"remote cache {self.remote_url} unavailable ({why}); going on without it")
            self._remote_off = True

    def remote_record(self, key: str, name: str) -> ActionRecord | None:
        """The remote's record for ``key``, of target ``name`` (memoized for the command)."""
        if key not in self._remote_records:
            transfers = self.transfers()
            record = None
            if transfers is not None:
                try:
                    record = transfers.fetch_record(key, name)
                except Exception as exc:  # network, credentials: the build goes on without it
                    self.remote_down(exc)
            self._remote_records[key] = record
        return self._remote_records[key]

    def prefetch(self, graph: Graph, names: Iterable[str], checker: Checker) -> None:
        """Before a build: fetch the remote's entries for the stale targets, in parallel."""
        transfers = self.transfers()
        if transfers is None or checker.force:
            return
        from flowmake.cache.prefetch import prefetch, shadow

        try:
            prefetch(graph, names, shadow(checker), self.local, transfers, skip_fresh=True,
                     seen=self._remote_records)
        except Exception as exc:  # network, credentials: the build goes on without it
            self.remote_down(exc)

    def open_soon(self) -> None:
        """The local cache's index opened in the background, for the saves to come."""
        self.local.open_soon()

    # -- the Checker's question ---------------------------------------------------------

    def has(self, target: Target, key: str) -> bool:
        """Whether ``key``'s outputs can be restored (state "restorable")."""
        if not target.cache:
            return False
        record = self._local_record(key)
        if record is not None and all(self.local.has_blob(e.digest)
                                      for e in record.outputs.values()):
            return True
        return self.remote_record(key, target.name) is not None

    # -- the Restorer -------------------------------------------------------------------

    def restore(self, step: Step) -> str | None:
        """Put a cached target's outputs in place; its log, or None to build it instead."""
        key, target = step.key, step.target
        if key is None or not target.cache:
            return None
        record = self._complete_record(key, step.name)
        if record is None or set(record.outputs) != {o.path for o in target.outputs}:
            return None
        try:
            for path, entry in record.outputs.items():
                self._place(path, entry)
        except (Mismatch, OSError, FlowmakeError) as exc:
            self.warn(f"{step.name}: cannot restore from the cache ({exc}); building it")
            return None
        self.local.touch(key)
        return record.log

    def _complete_record(self, key: str, name: str) -> ActionRecord | None:
        """A record whose blobs are all in the local cache, downloading them if needed."""
        record = self._local_record(key)
        if record is not None and all(self.local.has_blob(d) for d in self.local.blobs_of(record)):
            return record
        record = self.remote_record(key, name)
        transfers = self.transfers()
        if record is None or transfers is None:
            return None
        try:
            complete = transfers.fetch_blobs(record)
        except Exception as exc:
            self.remote_down(exc)
            return None
        if not complete:  # warned about: the target is built (and has() says so from now)
            self._remote_records[key] = None
            return None
        self.local.write_action(record)
        return record

    def _local_record(self, key: str) -> ActionRecord | None:
        record = self._local_records.get(key) or self.local.read_action(key)
        if record is not None:
            self._local_records[key] = record
        return record

    def _place(self, path: str, entry: Entry) -> None:
        if entry.kind == URL:
            self._place_url(path, entry)
        elif self.hasher.digest(path) != entry.digest:  # already there: nothing to copy
            dest = str(self.root / path)
            if entry.kind == FILE:
                self.local.place_file(entry.digest, dest, entry.executable)
            else:
                self.local.place_dir(entry.digest, dest)

    def _place_url(self, url: str, entry: Entry) -> None:
        urls = self.hasher.url_backends()
        if entry.fingerprint is not None and urls.fingerprint(url) == entry.fingerprint:
            return  # the object is still what the cached run wrote
        with self.local.open_blob(entry.digest) as src, \
                urls.backend(url).open(url, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def save(self, step: Step, result: JobResult) -> None:
        """Keep a built target's outputs and log, then push them. Large outputs are copied
        in the background, so that they never hold the scheduler up (``close`` waits);
        small ones right here (see INLINE_SAVE_BYTES). Pushes are always in the background."""
        target = step.target
        if step.key is None or not target.cache or target.always:
            return
        digests = {o.path: result.digests.get(o.path) for o in target.outputs}
        sizes = [result.stats.get(o.path) for o in target.outputs]  # None: a folder or URL
        if all(st is not None for st in sizes) and \
                sum(st[0] for st in sizes if st is not None) <= INLINE_SAVE_BYTES:
            self._save(step.key, step.name, digests, result.output)
            return
        with self._lock:
            if self._saver is None:
                from concurrent.futures import ThreadPoolExecutor  # large outputs only

                self._saver = ThreadPoolExecutor(SAVE_THREADS, thread_name_prefix="flowmake-save")
            self._saves.append(self._saver.submit(self._save, step.key, step.name, digests,
                                                  result.output))

    def _save(self, key: str, name: str, digests: dict[str, str | None], log: str) -> None:
        try:
            outputs = {path: self._entry(path, digest) for path, digest in digests.items()}
            record = ActionRecord(key, name, outputs, log, time.time())
            self.local.write_action(record)  # after its blobs: then it may be used
        except (OSError, Mismatch, FlowmakeError) as exc:
            self.warn(f"{name}: outputs not cached ({exc})")
            return
        self._local_records[key] = record
        transfers = self.transfers() if self.writable else None
        if transfers is not None:  # None too once the remote is found unavailable
            transfers.push_later(record)

    def _entry(self, path: str, digest: str | None) -> Entry:
        if digest is None:
            raise Mismatch(f"no digest for {path}")
        if "://" in path:  # a URL output: its content is downloaded once, into the cache
            with self.hasher.url_backends().backend(path).open(path, "rb") as f:
                return Entry(URL, self.local.receive(f, None), fingerprint=digest)
        full = f"{self.root}/{path}"
        executable = self.local.add_file(full, digest)  # opened once: folder, or file
        if executable is None:
            return self._save_dir(path, full, digest)
        return Entry(FILE, digest, executable)

    def _save_dir(self, path: str, full: str, digest: str) -> Entry:
        """A folder's files as blobs (each hashed as it is copied) and its manifest."""
        files = []
        for rel in Hasher(str(self.root)).walk(path):  # a Hasher of its own: another thread
            with open(os.path.join(full, rel), "rb") as f:
                files.append((rel, self.local.receive(f, None),
                              is_executable(os.path.join(full, rel))))
        if tree_digest((rel, d) for rel, d, _ in files) != digest:
            raise Mismatch(f"{path} changed while it was being cached")
        self.local.add_bytes(manifest_bytes(files), digest)
        return Entry(DIR, digest)

    def close(self, *, cancel: bool = False) -> None:
        """Finish the saves, wait for the pushes (``cancel``: drop those not started, after
        an interrupted build), and warn about the pushes that failed."""
        if self._saver is not None:
            for future in self._saves:
                future.result()
            self._saver.shutdown()
            self._saver, self._saves = None, []
        if self._transfers is not None:
            _, errors = self._transfers.wait(cancel=cancel or self._remote_off)
            if errors and not self._remote_off:  # else "unavailable" said it already
                self._push_failed(errors)
            self._transfers.close()
            self._transfers = None
        try:
            # nothing writes any more (a later use opens it again); the connection's own
            # close, SQLite's checkpoint, overlaps the build's record and flow.lock
            self.local.close(wait=False)
        except IndexUnusable as exc:
            self.warn(f"the last outputs built were not cached ({exc})")

    def _push_failed(self, errors: list[str]) -> None:
        hint = ""
        if errors[0].startswith("PermissionError"):
            hint = (" (credentials that may not write? set remote_readonly = true, or"
                    " FLOWMAKE_REMOTE_READONLY=1)")
        self.warn(f"{len(errors)} cache entr{'y' if len(errors) == 1 else 'ies'} not"
                  f" pushed to {self.remote_url}: {errors[0]}{hint}")


_WARN_LOCK = threading.Lock()


def warn_stderr(message: str) -> None:
    """One whole line: transfer threads warn at once (print writes the text, then the
    newline, and two threads' lines ran into each other)."""
    with _WARN_LOCK:
        sys.stderr.write(f"flowmake: warning: {message}\n")
        sys.stderr.flush()


def open_artifacts(project: Project, hasher: Hasher, warn: Warn) -> Artifacts | None:
    """The project's artifact cache per ``[flow]``; None when ``cache = false``."""
    settings = project.settings
    signing_key = _signing_key()  # first: out of the targets' way, cache or not
    if settings.cache is None:
        return None
    path = Path(os.path.expanduser(settings.cache))
    local = LocalCache(path if path.is_absolute() else project.root / path)
    return Artifacts(project.root, local, hasher, warn, remote=settings.remote,
                     writable=not remote_readonly(settings.remote_readonly),
                     signing_key=signing_key)


_taken: list[bytes | None] = [None]  # the key taken from os.environ (a second use finds it)


def _signing_key() -> bytes | None:
    if SIGNING_KEY_ENV in os.environ:
        _taken[0] = take_signing_key()
    return _taken[0]


def take_signing_key(environ: MutableMapping[str, str] = os.environ) -> bytes | None:
    """``FLOWMAKE_CACHE_KEY`` (None when unset or blank; surrounding whitespace is
    ignored), taken out of the environment: the commands flowmake runs never see it (one
    that prints its environment would put it in its log, and the log in the cache)."""
    value = environ.pop(SIGNING_KEY_ENV, "").strip()
    return value.encode() if value else None


def remote_readonly(configured: bool) -> bool:
    """``[flow] remote_readonly``, unless ``FLOWMAKE_REMOTE_READONLY`` says otherwise.

    The variable lets one flow.toml serve CI jobs that push (main) and jobs that must
    not (pull requests) without editing it per branch.
    """
    value = os.environ.get("FLOWMAKE_REMOTE_READONLY", "").strip().lower()
    if not value:
        return configured
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise UsageError(f"FLOWMAKE_REMOTE_READONLY={value!r}: expected true or false")
