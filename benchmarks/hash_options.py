"""Ways to hash one large file with XXH3-128, timed side by side (issue 17).

    python benchmarks/hash_options.py [--size-mib 1024] [--repeat 5] [--file PATH]

Writes a random file (unless --file), reads it once so it is in the page cache, then
times each way of hashing it (best and median of --repeat, in GiB/s) and checks that all
give the same digest. Also: XXH3 over bytes already in memory (the ceiling), and whether
xxhash releases the GIL (two threads hashing at once against one). Plain script, not a
test; on a shared machine compare the rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import xxhash

GIB = 1 << 30


def read_chunks(chunk: int, fadvise: bool = False) -> Callable[[str], str]:
    def run(path: str) -> str:
        with open(path, "rb", buffering=0) as f:
            if fadvise:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            h = xxhash.xxh3_128()
            buf = bytearray(chunk)
            view = memoryview(buf)
            while n := f.readinto(buf):
                h.update(view[:n])
        return h.hexdigest()
    return run


def read_threaded(chunk: int) -> Callable[[str], str]:
    """A reader thread fills one buffer while the caller hashes the other."""
    def run(path: str) -> str:
        bufs = [bytearray(chunk), bytearray(chunk)]
        h = xxhash.xxh3_128()
        with open(path, "rb", buffering=0) as f:
            n = f.readinto(bufs[0])
            i = 0
            while n:
                box: list[int] = [0]
                nxt = bufs[1 - i]
                t = threading.Thread(target=lambda b=nxt, o=box: o.__setitem__(0, f.readinto(b)))
                t.start()
                h.update(memoryview(bufs[i])[:n])
                t.join()
                n, i = box[0], 1 - i
        return h.hexdigest()
    return run


def mapped(flags: int = 0, advice: tuple[int, ...] = (), hugepage: bool = False,
           one_shot: bool = True) -> Callable[[str], str]:
    """One map of the whole file, hashed in one call: the one-shot function (holds the
    GIL) or a hash object's update() (releases it)."""
    def run(path: str) -> str:
        with open(path, "rb", buffering=0) as f:
            m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | flags, prot=mmap.PROT_READ)
        try:
            for one in advice:
                m.madvise(one)
            if hugepage:
                m.madvise(mmap.MADV_HUGEPAGE)
            if one_shot:
                return xxhash.xxh3_128_hexdigest(m)
            h = xxhash.xxh3_128()
            h.update(m)
            return h.hexdigest()
        finally:
            m.close()
    return run


def mapped_chunks(chunk: int) -> Callable[[str], str]:
    """One map, hashed in slices (a Python loop over memoryview slices)."""
    def run(path: str) -> str:
        with open(path, "rb", buffering=0) as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            m.madvise(mmap.MADV_SEQUENTIAL)
            h = xxhash.xxh3_128()
            view = memoryview(m)
            for off in range(0, len(m), chunk):
                h.update(view[off:off + chunk])
            view.release()
            return h.hexdigest()
        finally:
            m.close()
    return run


def gil_check(hash_once: Callable[[], object], threads: int = 2) -> tuple[float, float]:
    """Seconds to run ``hash_once`` ``threads`` times one after another, and all at once."""
    t0 = time.perf_counter()
    for _ in range(threads):
        hash_once()
    serial = time.perf_counter() - t0
    workers = [threading.Thread(target=hash_once) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return serial, time.perf_counter() - t0


def updated(data: bytes) -> str:
    h = xxhash.xxh3_128()
    h.update(data)
    return h.hexdigest()


def timed(fn: Callable[[str], str], path: str, repeat: int) -> tuple[str, list[float]]:
    times = []
    digest = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        digest = fn(path)
        times.append(time.perf_counter() - t0)
    return digest, times


def ways() -> dict[str, Callable[[str], str]]:
    found: dict[str, Callable[[str], str]] = {}
    for kib in (128, 256, 512, 1024, 4096, 16384, 65536):
        found[f"readinto {kib} KiB"] = read_chunks(kib << 10)
    found["readinto 1 MiB + fadvise SEQUENTIAL"] = read_chunks(1 << 20, fadvise=True)
    found["readinto 4 MiB, reader thread"] = read_threaded(4 << 20)
    found["readinto 16 MiB, reader thread"] = read_threaded(16 << 20)
    seq, need = mmap.MADV_SEQUENTIAL, mmap.MADV_WILLNEED
    found["mmap, one call"] = mapped()
    found["mmap MAP_POPULATE, one call"] = mapped(mmap.MAP_POPULATE)
    found["mmap + MADV_SEQUENTIAL"] = mapped(advice=(seq,))
    found["mmap + MADV_WILLNEED"] = mapped(advice=(need,))
    found["mmap + SEQUENTIAL + WILLNEED"] = mapped(advice=(seq, need))
    found["mmap + SEQUENTIAL + WILLNEED, update()"] = mapped(advice=(seq, need), one_shot=False)
    found["mmap MAP_POPULATE + MADV_HUGEPAGE"] = mapped(mmap.MAP_POPULATE, hugepage=True)
    found["mmap, 16 MiB slices"] = mapped_chunks(16 << 20)
    try:
        from flowmake.digest import hash_file
    except ImportError:  # run outside flowmake's environment
        pass
    else:
        found["flowmake.digest.hash_file (this tree)"] = hash_file
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--file", help="hash this file instead of a random one")
    parser.add_argument("--only", help="only the ways whose name contains this")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}, python {sys.version.split()[0]}, xxhash {xxhash.VERSION}")
    if args.file:
        report(args.file, args.repeat, args.only)
        return
    fd, path = tempfile.mkstemp(prefix="hash-options-")
    try:
        block = os.urandom(1 << 20)
        with os.fdopen(fd, "wb") as f:
            for _ in range(args.size_mib):
                f.write(block)
        report(path, args.repeat, args.only)
    finally:
        os.unlink(path)


def report(path: str, repeat: int, only: str | None) -> None:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read()  # warms the page cache, and is the in-memory ceiling's input
    expected = xxhash.xxh3_128_hexdigest(data)
    _, times = timed(lambda _p: xxhash.xxh3_128_hexdigest(data), path, repeat)
    print(f"{size / GIB:.2f} GiB, page cache warm\n")
    print("| way | best GiB/s | median GiB/s |\n|---|---|---|")
    print(f"| in memory (ceiling) | {size / GIB / min(times):.2f} "
          f"| {size / GIB / statistics.median(times):.2f} |")
    chosen = {n: fn for n, fn in ways().items() if not only or only in n}
    times_of: dict[str, list[float]] = {n: [] for n in chosen}
    bad: set[str] = set()
    for _ in range(repeat):  # interleaved: load drifting on a shared machine hits all alike
        for name, fn in chosen.items():
            digest, took = timed(fn, path, 1)
            times_of[name] += took
            if digest != expected:
                bad.add(name)
    for name, times in times_of.items():
        flag = " **DIGEST DIFFERS**" if name in bad else ""
        print(f"| {name}{flag} | {size / GIB / min(times):.2f} "
              f"| {size / GIB / statistics.median(times):.2f} |")
    part = data[: 256 << 20]
    print()
    for label, once in [("xxh3_128_hexdigest(data)", lambda: xxhash.xxh3_128_hexdigest(part)),
                        ("xxh3_128().update(data)", lambda: updated(part))]:
        serial, parallel = gil_check(once)
        print(f"GIL, {label}: 256 MiB twice took {serial:.3f} s in a row, {parallel:.3f} s "
              f"in two threads at once ({'released' if parallel < 0.75 * serial else 'held'}?"
              f" {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")

if __name__ == "__main__":
    main()
