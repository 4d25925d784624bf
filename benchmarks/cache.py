"""Artifact cache benchmarks: restoring vs rebuilding, and S3 push/pull (moto on 127.0.0.1).

* ``restore``: N independent ``cp`` targets (gen.py's copy project). Rebuilding them
  (``clean --all`` then ``build --no-cache``) against restoring them from the local cache
  (``clean --all`` then ``build``); also the first build, which saves every output.
* ``s3``: the same project and a moto S3 server in this process. ``cache push`` of the
  N entries (then again, when all are there), ``cache pull`` into a fresh clone, the
  clone's build from the pulled local cache, a second clone's build straight from the
  remote, and a cold build that pushes in the background. moto answers about a hundred
  requests a second here, whatever the client: a row of raw boto3 PUTs gives that ceiling.

Every command is a real ``python -m flowmake`` subprocess timed from spawn to exit, so
start-up is included (importing s3fs alone takes a large part of a second); the script
prints that import time too. Usage::

    python benchmarks/cache.py                # N = 1000, 3 repeats
    python benchmarks/cache.py -n 200 --repeat 1 --only restore
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen import write_copy_project

FLOWMAKE = [sys.executable, "-m", "flowmake"]


def flowmake(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run one command; (wall seconds, stdout). A failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run([*FLOWMAKE, "-C", str(root), "-q", *args], capture_output=True,
                          text=True, env={**os.environ, "NO_COLOR": "1", **(env or {})})
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"flowmake {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, proc.stdout


def statuses(stdout: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for target in json.loads(stdout)["targets"]:
        found[target["status"]] = found.get(target["status"], 0) + 1
    return found


def timed(label: str, repeat: int, setup: Callable[[], None], run: Callable[[], float]) -> dict:
    times = []
    for _ in range(repeat):
        setup()
        times.append(run())
    row = {"what": label, "median_s": round(statistics.median(times), 3),
           "min_s": round(min(times), 3), "repeats": repeat}
    print(f"| {label} | {row['median_s']:.2f} | {row['min_s']:.2f} |", flush=True)
    return row


def bench_restore(base: Path, n: int, jobs: int, repeat: int) -> list[dict]:
    root = base / "restore"
    write_copy_project(root, n)
    rows = []

    def clean() -> None:
        flowmake(root, "clean", "--all")

    def check(args: tuple[str, ...], expected: str) -> Callable[[], float]:
        def run() -> float:
            elapsed, out = flowmake(root, "build", f"-j{jobs}", "--json", *args)
            assert statuses(out) == {expected: n}, statuses(out)
            return elapsed
        return run

    rows.append(timed(f"rebuild {n} targets (`--no-cache`)", repeat, clean,
                      check(("--no-cache",), "built")))

    def wipe() -> None:
        clean()
        shutil.rmtree(root / ".flowmake" / "cache", ignore_errors=True)

    rows.append(timed(f"first build of {n} targets, saving to the cache", repeat, wipe,
                      check((), "built")))
    rows.append(timed(f"restore {n} targets from the local cache", repeat, clean,
                      check((), "restored")))
    return rows


def start_moto() -> tuple[object, str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def raw_puts(s3: object, count: int) -> float:
    """The server's own pace: what any client could reach, for scale."""
    from concurrent.futures import ThreadPoolExecutor

    bucket = f"raw-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: s3.put_object(  # type: ignore[attr-defined]
            Bucket=bucket, Key=f"k{i}", Body=b"x" * 16), range(count)))
    return time.perf_counter() - start


def clone(source: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".flowmake", "out"))
    return dest


def bench_s3(base: Path, n: int, jobs: int, repeat: int) -> list[dict]:
    import boto3

    server, endpoint = start_moto()
    env = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    rows = []
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import s3fs"], check=True)
        print(f"| (python -c 'import s3fs', for scale) | {time.perf_counter() - start:.2f} | |")
        rows.append(timed(f"moto alone: {3 * n} small PUTs from 16 boto3 threads (ceiling)",
                          1, lambda: None, lambda: raw_puts(s3, 3 * n)))
        root = base / "s3"
        write_copy_project(root, n)
        flowmake(root, "build", f"-j{jobs}")

        targets = (root / "flow.toml").read_text()

        def new_bucket() -> None:
            bucket = f"bench-{uuid.uuid4().hex[:10]}"
            s3.create_bucket(Bucket=bucket)
            (root / "flow.toml").write_text(f'[flow]\nremote = "s3://{bucket}/cache"\n{targets}')

        rows.append(timed(f"cache push {n} entries to S3 (empty bucket)", repeat, new_bucket,
                          lambda: flowmake(root, "cache", "push", env=env)[0]))
        rows.append(timed(f"cache push {n} entries again (all there)", repeat, lambda: None,
                          lambda: flowmake(root, "cache", "push", env=env)[0]))

        def fresh_clone() -> None:
            clone(root, base / "clone")

        rows.append(timed(f"cache pull {n} entries into a fresh clone", repeat, fresh_clone,
                          lambda: flowmake(base / "clone", "cache", "pull", env=env)[0]))

        def restore_clone() -> float:
            elapsed, out = flowmake(base / "clone", "build", f"-j{jobs}", "--json", env=env)
            assert statuses(out) == {"restored": n}, statuses(out)
            return elapsed

        rows.append(timed(f"then build the clone: {n} restores from the pulled cache", 1,
                          lambda: None, restore_clone))
        rows.append(timed(f"build a fresh clone straight from S3 ({n} restores)", repeat,
                          fresh_clone, restore_clone))

        def cold_build(remote: bool) -> Callable[[], float]:
            def run() -> float:
                elapsed, out = flowmake(root, "build", f"-j{jobs}", "--json", env=env)
                assert statuses(out) == {"built": n}, statuses(out)
                return elapsed
            return run

        def reset(remote: bool) -> Callable[[], None]:
            def setup() -> None:
                shutil.rmtree(root / ".flowmake", ignore_errors=True)
                shutil.rmtree(root / "out", ignore_errors=True)
                (root / "out").mkdir()
                if remote:
                    new_bucket()
                else:
                    (root / "flow.toml").write_text(targets)
            return setup

        rows.append(timed(f"cold build of {n} targets, no remote", repeat, reset(False),
                          cold_build(False)))
        rows.append(timed(f"cold build of {n} targets, pushing to S3 in the background",
                          repeat, reset(True), cold_build(True)))
    finally:
        server.stop()  # type: ignore[attr-defined]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="targets (default 1000)")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["restore", "s3"])
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="flowmake-cache-bench-"))
    print("| what | median s | min s |\n|---|---|---|")
    rows: list[dict] = []
    try:
        if args.only in (None, "restore"):
            rows += bench_restore(base, args.n, args.jobs, args.repeat)
        if args.only in (None, "s3"):
            rows += bench_s3(base, args.n, args.jobs, args.repeat)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
