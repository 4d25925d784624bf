"""The build report page in a real browser: headless Chromium driven by Selenium.

The bars are where the recorded times put them (a dependent's bar starts after its
dependency's ends; bars in one lane never overlap; widths follow durations); the table
sorts on a header click and filters; failures show their output; nothing is fetched and
nothing is logged as an error. A screenshot is saved under the test's tmp dir (and to
``$FLOWMAKE_SCREENSHOT_DIR`` when set, for a person to look at).

Chromium comes from Debian (`apt-get install chromium chromium-driver`). Without it these
tests skip, unless ``FLOWMAKE_BROWSER_TESTS=required`` makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

FLOW = """
[targets.a]
cmd     = "sleep 0.4; echo a > ${outputs}"
outputs = ["out/a.txt"]

[targets.b]
cmd     = "sleep 0.3; cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt"]
outputs = ["out/b.txt"]

[targets.c]
cmd     = "sleep 0.8; echo c > ${outputs}"
outputs = ["out/c.txt"]

[targets.d]
cmd     = "sleep 0.2; echo d > ${outputs}"
outputs = ["out/d.txt"]

[targets.bad]
cmd     = "echo loading the table; echo 'ValueError: <empty> & done' >&2; exit 3"
inputs  = ["out/b.txt"]
outputs = ["out/bad.txt"]

[targets.after]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/bad.txt"]
outputs = ["out/after.txt"]
"""


def flowmake(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Run 1 builds everything with -j 2 (bad fails, after skipped); run 2 rebuilds a-d;
    run 3 restores c and fails bad again. Pages of run 1 and of the latest build."""
    root = tmp_path_factory.mktemp("report-page")
    (root / "flow.toml").write_text(textwrap.dedent(FLOW))
    for args, code in ((["build", "-k", "-j", "2"], 1),
                       (["build", "-k", "-j", "2", "-B", "a", "b", "c", "d"], 0),
                       (["clean", "c"], 0), (["build", "-k", "-j", "2"], 1),
                       (["report", "1", "-o", "run1.html"], 0), (["report"], 0)):
        result = flowmake(root, *args)
        assert result.returncode == code, result.stdout + result.stderr
    return root / "run1.html", root / "flowmake-report.html"


def load(driver: Any, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "true")


def bars(driver: Any) -> dict[str, dict[str, Any]]:
    """Each bar's box on the screen, its lane (top) and its fill colour, by target."""
    return driver.execute_script("""
        const out = {};
        for (const bar of document.querySelectorAll('#timeline rect.bar')) {
          const r = bar.getBoundingClientRect();
          out[bar.dataset.name] = {left: r.left, right: r.right, top: r.top, width: r.width,
            fill: getComputedStyle(bar).fill, title: bar.querySelector('title').textContent,
            start: +bar.dataset.start, end: +bar.dataset.end};
        }
        return out;""")


def column(driver: Any, index: int) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#targets tbody tr')].filter(r => !r.hidden)"
        ".map(r => r.cells[arguments[0]].textContent)", index)


def page_errors(driver: Any) -> list[Any]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def test_bars_are_where_the_times_say(driver, pages, tmp_path):
    run1, _ = pages
    load(driver, run1)
    drawn = bars(driver)
    assert set(drawn) == {"a", "b", "c", "d", "bad"}  # after was skipped: no bar
    # A dependent's bar starts after its dependency's bar ends.
    assert drawn["b"]["left"] >= drawn["a"]["right"] - 0.5
    assert drawn["bad"]["left"] >= drawn["b"]["right"] - 0.5
    # -j 2: two lanes; the first two targets side by side from the start, and bars of
    # one lane never overlap.
    tops = sorted({round(b["top"]) for b in drawn.values()})
    assert len(tops) == 2
    first, second = sorted(drawn.values(), key=lambda b: b["start"])[:2]
    assert round(first["top"]) != round(second["top"])
    # ...their left edges as far apart as their recorded starts say (a loaded machine may
    # start the second one late; the page must show when it really started)
    px_per_s = first["width"] / (first["end"] - first["start"])
    assert abs((second["left"] - first["left"])
               - px_per_s * (second["start"] - first["start"])) < 3
    for p, bp in drawn.items():
        for q, bq in drawn.items():
            if p < q and round(bp["top"]) == round(bq["top"]):
                assert bp["right"] <= bq["left"] + 0.5 or bq["right"] <= bp["left"] + 0.5, (p, q)
    # Widths follow durations: pixels per second is one scale for every bar.
    scale = {n: b["width"] / (b["end"] - b["start"]) for n, b in drawn.items() if n != "bad"}
    assert max(scale.values()) / min(scale.values()) < 1.05, scale
    # Each bar is at least as long as its command slept (a loaded machine only records a
    # job longer: the spawn and the scheduler's wake-up are in it; CI under load drew a
    # 1.4-1.7x as wide as c for sleeps of 0.4 and 0.8 s), and c, twice a's sleep, is wider.
    for name, slept in (("a", 0.4), ("b", 0.3), ("c", 0.8), ("d", 0.2)):
        assert drawn[name]["width"] >= slept * px_per_s - 1, (name, drawn[name])
    assert drawn["c"]["width"] > drawn["a"]["width"]
    # Coloured by status; the hover title names the target, its times and reasons.
    assert drawn["a"]["fill"] == drawn["c"]["fill"] != drawn["bad"]["fill"]
    title = drawn["b"]["title"].split("\n")
    assert title[0] == "b" and title[1] == "built" and "→" in title[2]
    assert "why: never built" in drawn["b"]["title"]
    assert driver.execute_script("return performance.getEntriesByType('resource')"
                                 ".filter(e => !/^(data|blob):/.test(e.name)).length") == 0
    assert page_errors(driver) == []

    shot = tmp_path / "report-run1.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("FLOWMAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "flowmake-report-run1.png")


def test_the_table_sorts_when_a_header_is_clicked_and_filters(driver, pages):
    from selenium.webdriver.common.by import By

    run1, _ = pages
    load(driver, run1)
    header = {th.text.rstrip(" ↕▲▼"): th
              for th in driver.find_elements(By.CSS_SELECTOR, "#targets th")}
    ended = sorted(bars(driver).items(), key=lambda item: item[1]["end"])
    assert column(driver, 0) == [name for name, _ in ended]  # as the build finished them

    def durations() -> list[float]:
        return driver.execute_script(
            "return [...document.querySelectorAll('#targets tbody tr')]"
            ".map(r => JSON.parse(document.getElementById('flowmake-data').textContent)"
            ".targets[+r.dataset.index].duration)")

    header["duration"].click()
    assert durations() == sorted(durations())
    assert header["duration"].get_attribute("aria-sort") == "ascending"
    assert column(driver, 0)[-1] == "c"
    header["duration"].click()
    assert durations() == sorted(durations(), reverse=True)
    assert header["duration"].get_attribute("aria-sort") == "descending"
    assert header["target"].get_attribute("aria-sort") is None
    header["target"].click()
    assert column(driver, 0) == ["a", "b", "bad", "c", "d"]
    header["status"].click()
    assert column(driver, 1) == sorted(column(driver, 1))

    box = driver.find_element(By.ID, "filter")
    box.send_keys("bad")
    assert column(driver, 0) == ["bad"]
    assert driver.find_element(By.ID, "shown").text == "1 of 5 targets"
    box.clear()
    box.send_keys("never built")  # reasons are searched too
    assert len(column(driver, 0)) == 5
    assert "Not listed: 1 skipped" in driver.find_element(By.ID, "unlisted").text
    assert page_errors(driver) == []


def test_failures_show_their_output_and_recent_builds_are_charted(driver, pages, tmp_path):
    from selenium.webdriver.common.by import By

    _, latest = pages
    load(driver, latest)
    failure = driver.find_element(By.CSS_SELECTOR, '.failure[data-name="bad"]')
    assert "exit code 3" in failure.text
    output = failure.find_element(By.TAG_NAME, "pre").text
    assert output.splitlines() == ["loading the table", "ValueError: <empty> & done"]
    rows = {r.get_attribute("data-name"): r
            for r in driver.find_elements(By.CSS_SELECTOR, "#targets tbody tr")}
    assert set(rows) == {"c", "bad"}
    assert "restored from the cache" in rows["c"].text
    drawn = bars(driver)
    assert drawn["c"]["fill"] != drawn["bad"]["fill"]  # restored and failed differ
    # c ran in builds 1 and 2 and was restored in 3: three points, this build marked.
    spark = rows["c"].find_element(By.CSS_SELECTOR, "svg.spark")
    points = spark.find_element(By.TAG_NAME, "polyline").get_attribute("points").split()
    assert len(points) == 3
    assert len(spark.find_elements(By.CSS_SELECTOR, "circle.now")) == 1
    tip = driver.execute_script("return arguments[0].querySelector('title').textContent", spark)
    assert tip.splitlines()[0].startswith("run 1: ") and tip.splitlines()[2].endswith("(restored)")
    # The restored c's point is far below the built ones (a copy, not a 0.8 s sleep).
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[2] > ys[0] and ys[2] > ys[1]
    # Clicking a bar flashes its row.
    driver.find_element(By.CSS_SELECTOR, 'rect.bar[data-name="bad"]').click()
    assert "flash" in rows["bad"].get_attribute("class")
    assert page_errors(driver) == []
    shot = tmp_path / "report-latest.png"
    assert driver.save_screenshot(str(shot))
    keep = os.environ.get("FLOWMAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "flowmake-report-latest.png")
