"""signing.py: what the MAC covers, how records fail verification, the SHA-256 a signed
record names for each blob, and the key kept out of sight (repr, the environment)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from flowmake.cache.artifacts import take_signing_key
from flowmake.cache.local import LocalCache
from flowmake.cache.records import FILE, URL, ActionRecord, Entry, Mismatch, action_rel
from flowmake.cache.remote import FolderRemote, Transfers
from flowmake.cache.signing import Rejected, Signer, message, sha256_of
from flowmake.digest import hash_bytes

KEY = b"unit-test-key"
DIGEST = hash_bytes(b"data\n")
RECORD = ActionRecord(hash_bytes(b"key"), "t", {"out/a.txt": Entry(FILE, DIGEST)},
                      log="built t\n", created=1700000000.25)
CONTENTS = {DIGEST: sha256_of([b"data\n"])}


def signed(record: ActionRecord = RECORD, key: bytes = KEY) -> bytes:
    return record.dumps({"signature": Signer(key).sign(record, CONTENTS)})


def test_a_signed_record_verifies_and_names_its_blobs_sha256() -> None:
    data = signed()
    assert Signer(KEY).verify(data, ActionRecord.loads(data)) == CONTENTS
    assert ActionRecord.loads(data) == RECORD  # the field changes nothing else


@pytest.mark.parametrize("change", [
    {"key": hash_bytes(b"other")}, {"target": "u"}, {"log": "built t!\n"}, {"created": 1.0},
    {"outputs": {"out/b.txt": Entry(FILE, DIGEST)}},
    {"outputs": {"out/a.txt": Entry(FILE, hash_bytes(b"other"))}},
    {"outputs": {"out/a.txt": Entry(FILE, DIGEST, executable=True)}},
    {"outputs": {"out/a.txt": Entry(URL, DIGEST, fingerprint="etag:1")}},
])
def test_every_field_restore_trusts_is_covered(change: dict[str, object]) -> None:
    forged = RECORD._replace(**change)
    assert message(forged, CONTENTS) != message(RECORD, CONTENTS)
    doc = json.loads(forged.dumps())
    doc["signature"] = json.loads(signed())["signature"]  # the genuine record's signature
    with pytest.raises(Rejected, match="signature does not match"):
        Signer(KEY).verify(json.dumps(doc).encode(), forged)


def test_the_message_is_unambiguous_json() -> None:
    # Fields never run into each other: "ab"+"c" and "a"+"bc" differ.
    one = message(RECORD._replace(target="ab", log="c"), {})
    two = message(RECORD._replace(target="a", log="bc"), {})
    assert one != two
    doc = json.loads(message(RECORD, CONTENTS))
    assert doc[0] == "flowmake remote record v1" and doc[1] == RECORD.key
    assert message(RECORD._replace(log="\udc80 lone surrogate"), {})  # never raises


@pytest.mark.parametrize(("signature", "reason"), [
    (None, "it is not signed, and FLOWMAKE_CACHE_KEY is set"),
    ("junk", "its signature is not hmac-sha256"),
    ({"alg": "hmac-md5", "sha256": {}, "mac": ""}, "its signature is not hmac-sha256"),
    ({"alg": "hmac-sha256", "sha256": {"x": "y"}, "mac": ""}, "its signature is malformed"),
])
def test_a_record_without_a_usable_signature_is_rejected(signature: object, reason: str) -> None:
    doc = json.loads(RECORD.dumps())
    if signature is not None:
        doc["signature"] = signature
    with pytest.raises(Rejected, match=reason):
        Signer(KEY).verify(json.dumps(doc).encode(), RECORD)


def test_another_key_and_a_signature_that_skips_an_output_are_rejected() -> None:
    with pytest.raises(Rejected, match="signature does not match"):
        Signer(b"other").verify(signed(), RECORD)
    partial = RECORD.dumps({"signature": Signer(KEY).sign(RECORD, {})})
    with pytest.raises(Rejected, match=f"does not cover blob {DIGEST}"):
        Signer(KEY).verify(partial, RECORD)


def test_the_key_never_shows() -> None:
    assert "unit-test-key" not in repr(Signer(KEY)) and "unit-test-key" not in str(Signer(KEY))
    with pytest.raises(AttributeError):
        Signer(KEY).__dict__  # noqa: B018 (slots: no stray copy of the key)


def test_the_key_is_taken_out_of_the_environment() -> None:
    environ = {"FLOWMAKE_CACHE_KEY": "  secret \n", "OTHER": "1"}
    assert take_signing_key(environ) == b"secret"
    assert environ == {"OTHER": "1"}
    assert take_signing_key({"FLOWMAKE_CACHE_KEY": " "}) is None
    assert take_signing_key({}) is None


@pytest.mark.parametrize("size", [5, 200_000])  # inline, and streamed to a file
def test_receive_checks_the_sha256_a_signed_record_names(tmp_path: Path, size: int) -> None:
    data = b"d" * size
    cache = LocalCache(tmp_path / "c")
    with pytest.raises(Mismatch, match="SHA-256"):
        cache.receive(io.BytesIO(data), hash_bytes(data), sha256=sha256_of([b"other"]))
    assert not cache.has_blob(hash_bytes(data))
    assert cache.receive(io.BytesIO(data), hash_bytes(data), sha256=sha256_of([data])) \
        == hash_bytes(data)
    cache.close()


def test_push_signs_and_fetch_verifies_through_a_remote(tmp_path: Path) -> None:
    first, second = LocalCache(tmp_path / "c1"), LocalCache(tmp_path / "c2")
    first.add_bytes(b"data\n", DIGEST)
    remote = FolderRemote(tmp_path / "remote")
    pusher = Transfers(first, remote, print, writable=True, signer=Signer(KEY))
    pusher.push(RECORD)
    listed = pusher.remote_listing()
    remote.put_bytes(action_rel(RECORD.key), RECORD.dumps())  # unsigned, as from before
    assert pusher.push(RECORD, listed).uploaded == 0  # listed: no blob is sent again...
    assert "signature" in json.loads(remote.open(action_rel(RECORD.key)).read())  # ...but this
    warnings: list[str] = []
    puller = Transfers(second, remote, warnings.append, writable=False, signer=Signer(KEY))
    record = puller.fetch_record(RECORD.key, "t")
    assert record == RECORD and puller.fetch_blobs(record) and warnings == []
    plain = Transfers(LocalCache(tmp_path / "c3"), remote, warnings.append, writable=False)
    assert plain.fetch_record(RECORD.key, "t") == RECORD  # no key: the signature is ignored
    for transfers in (pusher, puller, plain):
        transfers.close()
