"""s3:// inputs, outputs and remote caches against a real S3 API (moto's server), through
the ``flowmake`` command and the flowmake-s3 plugin (s3fs)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from flowmake.digest import hash_bytes

# Every flowmake run here imports s3fs (and its python workers do too): seconds each.
pytestmark = pytest.mark.slow

STEPS = """
import os

import pandas as pd


def mark(name):
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "runs.log"), "a") as f:
        f.write(name + "\\n")


def make(n):
    mark("make")
    print("making", n, "rows")
    return pd.DataFrame({"i": range(n), "sq": [i * i for i in range(n)]})


def total(df):
    mark("total")
    return {"total": int(df["sq"].sum()), "rows": len(df)}


def load(rows):
    mark("load")
    return {"sum": sum(rows)}
"""


def pipeline(project: Any, bucket: Any, head: str = "") -> Any:
    return project.flow(head + f"""
        [params]
        n = 4

        [targets.make]
        python = "pipe.steps:make"
        params = {{ n = "${{params.n}}" }}
        outputs = ["{bucket.url('data/x.parquet')}"]

        [targets.total]
        python = "pipe.steps:total"
        inputs = {{ df = "{bucket.url('data/x.parquet')}" }}
        outputs = ["out/total.json"]

        [targets.report]
        cmd = "echo reporting; mark=report; echo $$mark >> ../runs.log; cat ${{inputs}} > ${{outputs}}"
        inputs = ["out/total.json"]
        outputs = ["out/report.txt"]
        """, {"pipe/__init__.py": "", "pipe/steps.py": STEPS})


def runs(project: Any) -> list[str]:
    log = project.root.parent / "runs.log"
    return log.read_text().split() if log.exists() else []


def clone(source: Any, make_project: Any, name: str = "clone") -> Any:
    other = make_project(name)
    shutil.copytree(source.root, other.root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".flowmake", "out", "__pycache__"))
    return other


def parquet_bytes(values: list[int]) -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"i": values, "sq": values}).to_parquet(buf)
    return buf.getvalue()


def test_parquet_in_s3_feeds_a_downstream_target(project: Any, bucket: Any) -> None:
    pipeline(project, bucket, "[flow]\ncache = false\n")
    assert project.build(env=bucket.env) == {"make": "built", "total": "built",
                                             "report": "built"}
    assert bucket.keys() == ["data/x.parquet"]
    assert bucket.get("data/x.parquet")[:4] == b"PAR1"
    assert json.loads(project.read("out/total.json")) == {"total": 14, "rows": 4}
    assert set(project.build(env=bucket.env).values()) == {"fresh"}
    assert project.build("-p", "n=5", env=bucket.env) == {"make": "built", "total": "built",
                                                          "report": "built"}
    assert json.loads(project.read("out/total.json")) == {"total": 30, "rows": 5}


def test_an_object_changed_in_s3_makes_its_reader_stale(project: Any, bucket: Any) -> None:
    pipeline(project, bucket)
    project.build(env=bucket.env)
    bucket.put("data/x.parquet", parquet_bytes([1, 2]))  # behind flowmake's back
    states = project.states(env=bucket.env)
    assert states["make"]["state"] == "restorable"
    assert any(r.startswith("output modified") for r in states["make"]["reasons"])
    # The restore puts the recorded object back: the reader is judged on that (fresh).
    assert states["total"]["state"] == "fresh"
    before = runs(project)
    # The writer's output is put back from the cache; its ETag is as recorded again, so
    # the reader is fresh without running (nothing ran at all).
    assert project.build(env=bucket.env) == {"make": "restored", "total": "fresh",
                                             "report": "fresh"}
    assert runs(project) == before
    assert bucket.get("data/x.parquet") != parquet_bytes([1, 2])


def test_a_source_object_changed_in_s3_rebuilds_its_reader(project: Any, bucket: Any) -> None:
    bucket.put("raw/rows.json", b"[1, 2, 3]")
    project.flow(f"""
        [targets.load]
        python = "pipe.steps:load"
        inputs = {{ rows = "{bucket.url('raw/rows.json')}" }}
        outputs = ["out/sum.json"]
        """, {"pipe/__init__.py": "", "pipe/steps.py": STEPS})
    assert project.build(env=bucket.env) == {"load": "built"}
    assert project.build(env=bucket.env) == {"load": "fresh"}
    bucket.put("raw/rows.json", b"[10, 20]")
    reasons = project.states(env=bucket.env)["load"]["reasons"]
    assert reasons == [f"input changed: {bucket.url('raw/rows.json')}"]
    assert project.build(env=bucket.env) == {"load": "built"}
    assert json.loads(project.read("out/sum.json")) == {"sum": 30}


def test_a_second_clone_restores_everything_from_the_s3_remote(
        project: Any, make_project: Any, bucket: Any) -> None:
    pipeline(project, bucket, f'[flow]\nremote = "{bucket.url("cache")}"\n')
    assert set(project.build(env=bucket.env).values()) == {"built"}
    assert runs(project) == ["make", "total", "report"]
    listing = bucket.keys()
    assert len([k for k in listing if k.startswith("cache/actions/")]) == 3
    other = clone(project, make_project)
    result = other.run("build", "--json", env=bucket.env, check=True)
    doc = json.loads(result.stdout)
    # make's output is an S3 object, there for every clone: fresh through flow.lock.
    assert {t["name"]: t["status"] for t in doc["targets"]} == {
        "make": "fresh", "total": "restored", "report": "restored"}
    assert runs(project) == ["make", "total", "report"]  # nothing ran in the clone
    assert "reporting" in result.stderr  # replayed
    assert other.read("out/report.txt") == project.read("out/report.txt")
    assert bucket.keys() == listing  # restoring pushes nothing
    assert set(other.build(env=bucket.env).values()) == {"fresh"}


def test_a_corrupt_blob_in_s3_is_rejected_and_rebuilt(project: Any, make_project: Any,
                                                      bucket: Any) -> None:
    pipeline(project, bucket, f'[flow]\nremote = "{bucket.url("cache")}"\n')
    project.build(env=bucket.env)
    content = project.path("out/total.json").read_bytes()
    key = f"cache/blobs/{hash_bytes(content)[:2]}/{hash_bytes(content)}"
    assert bucket.get(key) == content
    bucket.put(key, content.replace(b"14", b"99"))
    other = clone(project, make_project)
    result = other.run("build", "--json", env=bucket.env, check=True)
    statuses = {t["name"]: t["status"] for t in json.loads(result.stdout)["targets"]}
    assert statuses == {"make": "fresh", "total": "built", "report": "restored"}
    assert key in result.stderr and "does not match its digest" in result.stderr
    assert json.loads(other.read("out/total.json"))["total"] == 14
    assert bucket.get(key) == content  # the rebuild pushed the good blob again


def test_a_read_only_remote_is_never_written(project: Any, make_project: Any,
                                             bucket: Any) -> None:
    pipeline(project, bucket, f'[flow]\nremote = "{bucket.url("cache")}"\n')
    project.build(env=bucket.env)
    other = clone(project, make_project)
    other.edit_flow("[flow]", "[flow]\nremote_readonly = true")
    other.edit_flow("n = 4", "n = 6")  # new keys: built here, and never pushed
    listing = bucket.keys("cache/")
    assert other.build(env=bucket.env) == {"make": "built", "total": "built", "report": "built"}
    assert bucket.keys("cache/") == listing
    other.edit_flow("n = 6", "n = 4")  # the remote's keys: pulled, still nothing written
    assert set(other.build(env=bucket.env).values()) == {"restored"}
    assert bucket.keys("cache/") == listing


def test_cache_push_pull_and_status_with_s3(project: Any, make_project: Any,
                                            bucket: Any) -> None:
    pipeline(project, bucket)
    project.build(env=bucket.env)
    project.edit_flow("[params]", f'[flow]\nremote = "{bucket.url("team/cache")}"\n\n[params]')
    status = project.json("cache", "status", env=bucket.env, check=True)
    assert status["remote"] == bucket.url("team/cache") and status["remote_readonly"] is False
    assert status["entries"] == 3 and status["current"] == 3
    pushed = project.json("cache", "push", env=bucket.env, check=True)
    # report.txt is a copy of total.json: 3 references, 2 blobs
    assert pushed["entries"] == 3 and pushed["uploaded"] + pushed["present"] == 3
    assert len(bucket.keys("team/cache/blobs/")) == 2
    assert len(bucket.keys("team/cache/actions/")) == 3
    before = {k: bucket.client.head_object(Bucket=bucket.name, Key=k)["LastModified"]
              for k in bucket.keys("team/cache/")}
    again = project.json("cache", "push", env=bucket.env, check=True)  # found by one listing
    assert (again["uploaded"], again["present"]) == (0, 3)
    assert {k: bucket.client.head_object(Bucket=bucket.name, Key=k)["LastModified"]
            for k in bucket.keys("team/cache/")} == before  # nothing rewritten
    other = clone(project, make_project)
    pulled = other.json("cache", "pull", env=bucket.env, check=True)
    assert (pulled["entries"], pulled["blobs"], pulled["missing"]) == (3, 2, 0)
    for key in bucket.keys("team/cache/"):
        bucket.client.delete_object(Bucket=bucket.name, Key=key)
    # all from the local cache (make's S3 output is there already: fresh through flow.lock)
    assert other.build(env=bucket.env) == {"make": "fresh", "total": "restored",
                                           "report": "restored"}


def test_a_shell_target_gets_the_url_and_clean_removes_it(project: Any, bucket: Any) -> None:
    project.flow(f"""
        [targets.upload]
        cmd = "python put.py ${{outputs}}"
        inputs = ["put.py"]
        outputs = ["{bucket.url('up/hello.txt')}"]
        """, {"put.py": (
        "import sys, boto3\n"
        "bucket, _, key = sys.argv[1].removeprefix('s3://').partition('/')\n"
        "boto3.client('s3').put_object(Bucket=bucket, Key=key, Body=b'hello')\n"
        "print('uploaded', sys.argv[1])\n")}, cache=False)
    result = project.run("build", env=bucket.env, check=True)
    assert f"uploaded {bucket.url('up/hello.txt')}" in result.stdout
    assert bucket.get("up/hello.txt") == b"hello"
    assert project.build(env=bucket.env) == {"upload": "fresh"}
    out = project.run("clean", "upload", env=bucket.env, check=True).stdout
    assert f"removed {bucket.url('up/hello.txt')}" in out
    assert bucket.keys() == []


def test_a_missing_s3_input_is_exit_2(project: Any, bucket: Any) -> None:
    project.flow(f"""
        [targets.t]
        cmd = "true"
        inputs = ["{bucket.url('nope.csv')}"]
        outputs = ["out/x"]
        """)
    result = project.run("build", env=bucket.env, check=2)
    assert f"input '{bucket.url('nope.csv')}' of target 't' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_endpoint_is_one_line(project: Any, bucket: Any,
                                             tmp_path: Path) -> None:
    dead = {**bucket.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    project.flow(f"""
        [targets.t]
        cmd = "true"
        inputs = ["{bucket.url('in.csv')}"]
        outputs = ["out/x"]
        """)
    result = project.run("build", env=dead, check=2)
    assert f"cannot reach {bucket.url('in.csv')}" in result.stderr
    assert "Traceback" not in result.stderr
    # A remote cache that cannot be reached is a warning; the build goes on without it.
    project.flow(f"""
        [flow]
        remote = "{bucket.url('cache')}"

        [targets.t]
        cmd = "echo hi > ${{outputs}}"
        outputs = ["out/x"]
        """)
    result = project.run("build", "--json", env=dead, check=True)
    assert json.loads(result.stdout)["targets"][0]["status"] == "built"
    (line,) = [w for w in result.stderr.splitlines() if "warning" in w]  # no "not pushed"
    assert "remote cache" in line and "unavailable" in line and "going on without it" in line
