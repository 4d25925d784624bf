"""An S3 remote cache (moto's server, through the ``flowmake`` command) that cannot be
trusted whole: a tampered blob repaired by the rebuild's push with credentials that may
not delete, credentials that may not write or not read (one warning each), and signed
entries (FLOWMAKE_CACHE_KEY): a round trip, a record rewritten to another valid blob,
unsigned records, another key, and the key unset."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from flowmake.cache.records import ActionRecord
from flowmake.digest import hash_bytes

pytestmark = pytest.mark.slow  # every run imports s3fs

BIG = 300_000  # past remote.SMALL_BLOB: a push probes for it (HEAD) rather than sending it
KEY = "s3-test-key-0123456789"
SIGNED = {"FLOWMAKE_CACHE_KEY": KEY}
UNSIGNED: dict[str, str | None] = {"FLOWMAKE_CACHE_KEY": None}
CACHE_RW = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]  # no s3:DeleteObject

FLOW = """
[flow]
remote = "REMOTE"

[targets.a]
cmd = "echo building a; echo a >> ../runs.log; cat ${inputs} > ${outputs}"
inputs = ["src/a.txt"]
outputs = ["out/a.txt"]

[targets.big]
cmd = "echo big >> ../runs.log; python -c 'import sys; open(sys.argv[1], \\"w\\").write(\\"x\\" * BIG)' ${outputs}"
outputs = ["out/big.txt"]
"""


def setup(project: Any, bucket: Any) -> Any:
    text = FLOW.replace("REMOTE", bucket.url("cache")).replace("BIG", str(BIG))
    return project.flow(text, {"src/a.txt": "hello\n"})


def clone(source: Any, make_project: Any, name: str = "clone") -> Any:
    other = make_project(name)
    shutil.copytree(source.root, other.root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".flowmake", "out"))
    return other


def build(project: Any, env: dict[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """(status by target, warning lines) of one build; never a traceback, nor the key."""
    result = project.run("build", "--json", env=env, check=True)
    assert "Traceback" not in result.stderr and KEY not in result.stderr + result.stdout
    statuses = {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}
    return statuses, [line for line in result.stderr.splitlines() if "warning" in line]


def blob_key(data: bytes) -> str:
    return f"cache/blobs/{hash_bytes(data)[:2]}/{hash_bytes(data)}"


def record_key(bucket: Any, target: str) -> str:
    (key,) = [k for k in bucket.keys("cache/actions/")
              if json.loads(bucket.get(k))["target"] == target]
    return key


def test_a_tampered_blob_is_overwritten_by_a_pusher_that_may_not_delete(
        project: Any, make_project: Any, bucket: Any) -> None:
    setup(project, bucket)
    build(project, {**bucket.env, **UNSIGNED})
    key = blob_key(b"x" * BIG)
    bucket.put(key, b"y" * BIG)
    other = clone(project, make_project)
    with bucket.restricted(CACHE_RW) as env:
        statuses, warned = build(other, {**env, **UNSIGNED})
    assert statuses == {"a": "restored", "big": "built"}
    # one line (before: the same rejection twice, and the bad blob kept: the delete failed
    # quietly, then the push's probe found the blob "there")
    assert warned == [f"flowmake: warning: remote blob {bucket.url(key)} of target 'big'"
                      " rejected: its content does not match its digest"]
    assert bucket.get(key) == b"x" * BIG
    assert build(clone(project, make_project, "third"), {**bucket.env, **UNSIGNED}) == (
        {"a": "restored", "big": "restored"}, [])


def test_credentials_that_may_not_write_or_read_are_one_warning(
        project: Any, make_project: Any, bucket: Any) -> None:
    setup(project, bucket)
    build(project, {**bucket.env, **UNSIGNED})
    other = clone(project, make_project)
    other.write("src/a.txt", "changed\n")  # a is built, and cannot be pushed
    with bucket.restricted(["s3:GetObject", "s3:ListBucket"]) as env:
        statuses, warned = build(other, {**env, **UNSIGNED})
    assert statuses == {"a": "built", "big": "restored"}
    assert warned == [f"flowmake: warning: 1 cache entry not pushed to {bucket.url('cache')}:"
                      " PermissionError: Access Denied (credentials that may not write? set"
                      " remote_readonly = true, or FLOWMAKE_REMOTE_READONLY=1)"]
    third = clone(project, make_project, "third")
    with bucket.restricted(["s3:ListAllMyBuckets"]) as env:
        statuses, warned = build(third, {**env, **UNSIGNED})
    assert statuses == {"a": "built", "big": "built"}
    # one line (before: and "2 cache entries not pushed" after "going on without it")
    assert warned == [f"flowmake: warning: remote cache {bucket.url('cache')} unavailable"
                      " (Access Denied); going on without it"]


def test_signed_entries_in_s3(project: Any, make_project: Any, bucket: Any) -> None:
    setup(project, bucket)
    assert build(project, {**bucket.env, **SIGNED}) == ({"a": "built", "big": "built"}, [])
    assert all("signature" in json.loads(bucket.get(k)) for k in bucket.keys("cache/actions/"))
    runs = project.root.parent / "runs.log"
    before = runs.read_text()
    # a signed round trip: restored, nothing ran
    assert build(clone(project, make_project, "c1"), {**bucket.env, **SIGNED}) == (
        {"a": "restored", "big": "restored"}, [])
    assert runs.read_text() == before
    # a's record rewritten to name big's blob (valid, in the bucket, not a's)
    path = record_key(bucket, "a")
    doc = json.loads(bucket.get(path))
    doc["outputs"]["out/a.txt"]["digest"] = hash_bytes(b"x" * BIG)
    bucket.put(path, json.dumps(doc).encode())
    trusting = clone(project, make_project, "c2")  # key unset: as before, trusted whole
    statuses, warned = build(trusting, {**bucket.env, **UNSIGNED,
                                        "FLOWMAKE_REMOTE_READONLY": "1"})
    assert statuses["a"] == "restored" and warned == []
    assert trusting.read("out/a.txt") == "x" * BIG
    other = clone(project, make_project, "c3")
    statuses, warned = build(other, {**bucket.env, **SIGNED})
    assert statuses == {"a": "built", "big": "restored"}
    assert warned == [f"flowmake: warning: remote record {bucket.url(path)} of target 'a'"
                      " rejected: its signature does not match (the record was changed, or"
                      " signed with another FLOWMAKE_CACHE_KEY)"]
    assert other.read("out/a.txt") == "hello\n"
    record = ActionRecord.loads(bucket.get(path))  # the good, signed entry pushed back
    assert record.outputs["out/a.txt"].digest == hash_bytes(b"hello\n")
    assert "signature" in json.loads(bucket.get(path))
    # another key: every record rejected
    statuses, warned = build(clone(project, make_project, "c4"), {
        **bucket.env, "FLOWMAKE_CACHE_KEY": "another", "FLOWMAKE_REMOTE_READONLY": "1"})
    assert statuses == {"a": "built", "big": "built"} and len(warned) == 2
    assert all("its signature does not match" in w for w in warned)


def test_unsigned_entries_in_s3_are_rejected_with_the_key(
        project: Any, make_project: Any, bucket: Any) -> None:
    setup(project, bucket)
    build(project, {**bucket.env, **UNSIGNED})
    assert not any("signature" in json.loads(bucket.get(k))
                   for k in bucket.keys("cache/actions/"))
    statuses, warned = build(clone(project, make_project), {**bucket.env, **SIGNED})
    assert statuses == {"a": "built", "big": "built"} and len(warned) == 2
    assert all("it is not signed, and FLOWMAKE_CACHE_KEY is set" in w for w in warned)
    assert all("signature" in json.loads(bucket.get(k)) for k in bucket.keys("cache/actions/"))
