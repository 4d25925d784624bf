"""What the artifact cache stores, as values: an action record (one per target key: its
outputs' kinds and digests, the log it printed), a folder's manifest, and the names of
blobs and records in the cache's file layout (``blob_rel``, ``action_rel``), shared by
the local cache (local.py, index.py), the remote (remote.py) and signing (signing.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from flowmake.digest import tree_digest

FILE, DIR, URL = "file", "dir", "url"
RECORD_VERSION = 1
SIGNING_KEY_ENV = "FLOWMAKE_CACHE_KEY"  # signs remote records (signing.py)


class Entry(NamedTuple):
    """One output in an action record.

    ``digest`` is the content digest (a folder's: its tree digest, the manifest's name);
    ``fingerprint`` is a URL output's backend fingerprint (ETag…) when it was saved.
    """

    kind: str
    digest: str
    executable: bool = False
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "digest": self.digest}
        if self.executable:
            data["executable"] = True
        if self.fingerprint is not None:
            data["fingerprint"] = self.fingerprint
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        kind, digest = data["kind"], data["digest"]
        if kind not in (FILE, DIR, URL) or not is_digest(digest):
            raise ValueError(f"bad output entry {data!r}")
        return cls(kind, digest, bool(data.get("executable")), data.get("fingerprint"))


class ActionRecord(NamedTuple):
    """What one successful run of a target left: its outputs by path, its log, and when
    it was made (time.time())."""

    key: str
    target: str
    outputs: dict[str, Entry]
    log: str = ""
    created: float = 0.0

    def dumps(self, extra: dict[str, Any] | None = None) -> bytes:
        """The record as JSON; ``extra``: more fields (a remote record's signature)."""
        return json.dumps({"version": RECORD_VERSION, "key": self.key, "target": self.target,
                           "created": self.created, "log": self.log,
                           "outputs": {p: e.to_json() for p, e in self.outputs.items()},
                           **(extra or {})}, sort_keys=True).encode()

    @classmethod
    def loads(cls, data: bytes) -> ActionRecord:
        """Parse a record; ValueError for anything that is not a whole, valid one."""
        try:
            doc = json.loads(data)
            if doc["version"] != RECORD_VERSION:
                raise ValueError(f"record version {doc['version']}")
            outputs = {str(p): Entry.from_json(e) for p, e in doc["outputs"].items()}
            return cls(str(doc["key"]), str(doc["target"]), outputs, str(doc.get("log", "")),
                       float(doc.get("created", 0.0)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"not whole JSON, truncated? ({exc.msg} at byte {exc.pos})") \
                from None
        except KeyError as exc:
            raise ValueError(f"no field {exc} in the record") from None
        except (TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed action record: {exc}") from None


# (path relative to the folder, digest, executable)
ManifestFile = tuple[str, str, bool]


def manifest_bytes(files: Iterable[ManifestFile]) -> bytes:
    return json.dumps({"files": sorted(files)}).encode()


def parse_manifest(data: bytes, digest: str) -> list[ManifestFile] | None:
    """A folder manifest's files, or None when it does not hash to ``digest``."""
    try:
        files = [(str(p), str(d), bool(x)) for p, d, x in json.loads(data)["files"]]
    except (ValueError, KeyError, TypeError):
        return None
    if any(".." in p.split("/") or p.startswith("/") or not is_digest(d) for p, d, _ in files):
        return None  # never let a manifest write outside its folder
    return files if tree_digest((p, d) for p, d, _ in files) == digest else None


_HEX = frozenset("0123456789abcdef")


def is_digest(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 32 and _HEX.issuperset(text)


def blob_rel(digest: str) -> str:
    return f"blobs/{digest[:2]}/{digest}"


def action_rel(key: str) -> str:
    return f"actions/{key[:2]}/{key}.json"


class Mismatch(Exception):
    """A blob whose content does not hash to its name."""


MISMATCH = "its content does not match its digest"  # the message of a blob received
