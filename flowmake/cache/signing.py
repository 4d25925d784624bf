"""Signed remote cache entries: HMAC-SHA256 with the key in ``FLOWMAKE_CACHE_KEY``.

Without the key, a record in the remote is trusted whole: whoever may write the bucket
may point a key at any blob. With it, every record pushed carries a ``signature`` field::

    "signature": {"alg": "hmac-sha256", "sha256": {"<digest>": "<sha256>", ...},
                  "mac": "<hex>"}

``sha256`` holds the SHA-256 of every blob the record needs (its outputs' blobs, a
folder's manifest and the manifest's files): blobs are named by XXH3-128, which is fast
but not made to resist someone who crafts a collision, so each blob pulled is checked
against its SHA-256 as well. ``mac`` is HMAC-SHA256 over :func:`message`: a JSON array
(one unambiguous encoding: strings escaped, no whitespace, ASCII) built from the record
as parsed, not from the bytes read, so that what is verified is what restore uses.

A record pulled with the key set that is unsigned, or whose MAC does not match, is
rejected. Without the key, signatures are ignored (older flowmake versions ignore the
field too). The key is never printed: :class:`Signer` keeps it private, even from repr.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

from flowmake.cache.records import SIGNING_KEY_ENV as ENV
from flowmake.cache.records import ActionRecord, is_digest

ALG = "hmac-sha256"
SCHEME = "flowmake remote record v1"  # domain separation: this key signs nothing else


class Rejected(ValueError):
    """A remote record whose signature is missing or wrong (the message says which)."""


def message(record: ActionRecord, contents: Mapping[str, str]) -> bytes:
    """What the MAC covers: the key, the target, when it was made, the log's SHA-256,
    every output (path, kind, digest, executable, fingerprint) and every blob's SHA-256."""
    log = hashlib.sha256(record.log.encode("utf-8", "surrogatepass")).hexdigest()
    outputs = sorted([path, e.kind, e.digest, e.executable, e.fingerprint]
                     for path, e in record.outputs.items())
    doc = [SCHEME, record.key, record.target, repr(record.created), log, outputs,
           sorted(contents.items())]
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class Signer:
    """Signs records to push and verifies records pulled."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "Signer(<key hidden>)"

    def _mac(self, record: ActionRecord, contents: Mapping[str, str]) -> str:
        return hmac.new(self._key, message(record, contents), hashlib.sha256).hexdigest()

    def sign(self, record: ActionRecord, contents: Mapping[str, str]) -> dict[str, Any]:
        """The ``signature`` field for ``record``, whose blobs have these SHA-256s."""
        return {"alg": ALG, "sha256": dict(sorted(contents.items())),
                "mac": self._mac(record, contents)}

    def verify(self, data: bytes, record: ActionRecord) -> dict[str, str]:
        """The SHA-256s a record's signature vouches for, by blob digest.

        ``data``: the record as read (``record`` is its parse). Raises Rejected.
        """
        signature = json.loads(data).get("signature")
        if signature is None:
            raise Rejected(f"it is not signed, and {ENV} is set")
        contents = _contents(signature)
        if not hmac.compare_digest(str(signature.get("mac", "")),
                                   self._mac(record, contents)):
            raise Rejected("its signature does not match (the record was changed, or"
                           f" signed with another {ENV})")
        unsigned = [e.digest for e in record.outputs.values() if e.digest not in contents]
        if unsigned:  # a signer always covers every output: a record made by hand
            raise Rejected(f"its signature does not cover blob {unsigned[0]}")
        return contents


def _contents(signature: Any) -> dict[str, str]:
    """The ``sha256`` map of a signature field; Rejected when it is not one."""
    if not isinstance(signature, dict) or signature.get("alg") != ALG:
        alg = signature.get("alg") if isinstance(signature, dict) else None
        raise Rejected(f"its signature is not {ALG} (alg {alg!r})")
    contents = signature.get("sha256")
    if not isinstance(contents, dict) or not all(
            is_digest(d) and isinstance(s, str) and len(s) == 64 for d, s in contents.items()):
        raise Rejected("its signature is malformed")
    return contents


def sha256_of(chunks: Iterable[bytes]) -> str:
    """The SHA-256 of an iterable of byte strings."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()
