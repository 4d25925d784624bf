"""The size of `flowmake report`'s page and its render time in headless Chromium, for a
build of N targets (default 1,000).

The project: N targets in layers of 100, each copying the output of one target of the
layer before (the first layer copies a source file); 5 of them fail, so the page has
failures and skipped targets. It is built three times (-B), so every target's chart has
three builds, then `flowmake report` writes the page of the latest build, which is loaded
LOADS times in Chromium (Debian's /usr/bin/chromium through Selenium). Printed: the page's
size, the time to write it, and the median time to DOMContentLoaded (the page's script
runs before it: data parsed, timeline, failures and table drawn), to the load event
and to first paint (layout and painting included).

    python benchmarks/report_size.py [-n 1000] [--loads 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYER = 100
FAILING = 5


def generate(root: Path, n: int) -> None:
    (root / "src").mkdir(parents=True)
    lines = ["[flow]", "history = 10", ""]
    for i in range(n):
        layer, slot = divmod(i, LAYER)
        if layer == 0:
            (root / "src" / f"in{i}.txt").write_text(f"input {i}\n")
            source = f"src/in{i}.txt"
        else:
            source = f"out/t{(layer - 1) * LAYER + (slot * 7) % LAYER}.txt"
        cmd = "cp ${inputs} ${outputs}"
        if i % (n // FAILING) == n // FAILING - 1:
            cmd = "echo checking ${inputs}; echo 'error: the check failed' >&2; exit 1"
        lines += [f"[targets.t{i}]", f'cmd     = "{cmd}"', f'inputs  = ["{source}"]',
                  f'outputs = ["out/t{i}.txt"]', ""]
    (root / "flow.toml").write_text("\n".join(lines))


def flowmake(root: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env={**os.environ, "NO_COLOR": "1"})
    return time.perf_counter() - start


def render_times(page: Path, loads: int) -> tuple[list[float], list[float], list[float], int]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    dom, paint, load = [], [], []
    try:
        for _ in range(loads):
            driver.get("about:blank")
            driver.get(page.as_uri())
            WebDriverWait(driver, 60).until(
                lambda d: d.execute_script("return document.body.dataset.ready") == "true")
            time.sleep(0.2)  # let the first paint be recorded
            nav = driver.execute_script(
                "return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
            fcp = driver.execute_script(
                "const p = performance.getEntriesByName('first-contentful-paint');"
                "return p.length ? p[0].startTime : null")
            dom.append(nav)
            load.append(driver.execute_script(
                "return performance.getEntriesByType('navigation')[0].loadEventEnd"))
            paint.append(fcp if fcp is not None else float("nan"))
        rows = driver.execute_script("return document.querySelectorAll('#targets tbody tr').length")
    finally:
        driver.quit()
    return dom, paint, load, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1000, help="targets (default 1000)")
    parser.add_argument("--loads", type=int, default=5, help="page loads to time")
    parser.add_argument("--keep", type=Path, help="build in DIR (kept) instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp) / "project"
        generate(root, args.n)
        builds = [flowmake(root, "build", "-k", *(["-B"] if i else [])) for i in range(3)]
        took = flowmake(root, "report", "-o", "report.html")
        page = root / "report.html"
        size = page.stat().st_size
        dom, paint, load, rows = render_times(page, args.loads)
    print(f"targets: {args.n} (builds took {', '.join(f'{b:.1f}s' for b in builds)})")
    print(f"report: {size:,} bytes ({size / 1024:.0f} KiB), written in {took:.2f}s")
    print(f"table rows drawn: {rows}")
    print(f"Chromium, median of {args.loads} loads: DOMContentLoaded (script done)"
          f" {statistics.median(dom):.0f} ms, load {statistics.median(load):.0f} ms,"
          f" first contentful paint {statistics.median(paint):.0f} ms")
    print(f"  first (cold) load: DOMContentLoaded {dom[0]:.0f} ms, first paint {paint[0]:.0f} ms")


if __name__ == "__main__":
    main()
