"""The HTML graph page in a real browser: headless Chromium driven by Selenium.

Every target's node is drawn, visible and coloured by its state; clicking one shows its
details; the page loads nothing from the network. A screenshot is saved (to
``$FLOWMAKE_SCREENSHOT_DIR`` when set, for a person to look at).

Chromium comes from Debian (`apt-get install chromium chromium-driver`, done by the
README's install command). Without it these tests skip, unless
``FLOWMAKE_BROWSER_TESTS=required`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

# After the builds below: c fresh; a and b restorable (their n=1 keys are cached, the files
# hold n=2); d never built (stale).
FLOW = """
[params]
n = 1

[targets.a]
help    = "Write n"
cmd     = "echo ${params.n} > ${outputs}"
outputs = ["out/a.txt"]

[targets.b]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt"]
outputs = ["out/b.txt"]

[targets.c]
cmd     = "echo c > ${outputs}"
outputs = ["out/c.txt"]

[targets.wide]
matrix  = { k = [1, 2, 3] }
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/b.txt", "out/c.txt"]
outputs = ["out/wide-${k}.txt"]

[targets.d]
help    = "Never built"
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/wide-*.txt", "out/a.txt"]
outputs = ["out/d.txt"]
"""


def flowmake(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "flowmake", "-C", str(root), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The project, its page and the JSON document the page was drawn from."""
    root = tmp_path_factory.mktemp("graph-page")
    (root / "flow.toml").write_text(textwrap.dedent(FLOW))
    for args in (["build", "a", "b", "c"], ["build", "-p", "n=2", "a", "b"]):
        result = flowmake(root, *args)
        assert result.returncode == 0, result.stderr
    result = flowmake(root, "graph", "--format", "html", "-o", "graph.html")
    assert result.returncode == 0, result.stderr
    doc = json.loads(flowmake(root, "graph", "--format", "json").stdout)
    return root / "graph.html", doc


def load(driver: Any, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return document.body.dataset.ready") == "true")


def node(driver: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'g.node[data-name="{name}"]')


def test_states_are_what_the_page_should_show(page):
    _, doc = page
    states = {n["name"]: n["state"] for n in doc["nodes"]}
    assert states == {"a": "restorable", "b": "restorable", "c": "fresh", "d": "stale",
                      "wide[k=1]": "stale", "wide[k=2]": "stale", "wide[k=3]": "stale"}


def test_every_node_is_drawn_visible_and_coloured_by_state(driver, page):
    path, doc = page
    load(driver, path)
    fills: dict[str, set[str]] = {}
    boxes = {}
    for item in doc["nodes"]:
        element = node(driver, item["name"])
        assert element.is_displayed(), item["name"]
        assert f"state-{item['state']}" in element.get_attribute("class")
        fill = driver.execute_script(
            "return getComputedStyle(arguments[0].querySelector('rect')).fill", element)
        fills.setdefault(item["state"], set()).add(fill)
        boxes[item["name"]] = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "return [r.left, r.top, r.right, r.bottom];", element)
        label = driver.execute_script("return arguments[0].textContent", element)
        assert item["name"] in label
    # One colour per state, and different states never share one.
    assert all(len(f) == 1 for f in fills.values())
    assert len({next(iter(f)) for f in fills.values()}) == len(fills) == 3
    # A readable layout: no two nodes overlap, and every edge runs left to right.
    names = list(boxes)
    for i, p in enumerate(names):
        for q in names[i + 1:]:
            a, b = boxes[p], boxes[q]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (p, q)
    for edge in doc["edges"]:
        assert boxes[edge["from"]][2] < boxes[edge["to"]][0], edge
    drawn = driver.execute_script("return document.querySelectorAll('path.edge').length")
    assert drawn == len(doc["edges"]) == 11
    # Legend counts, and nothing was fetched: no resource entries, no console errors.
    assert driver.find_element("id", "count-restorable").text == "2"
    assert driver.find_element("id", "count-stale").text == "4"
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_clicking_a_node_shows_its_details(driver, page, tmp_path):
    from selenium.webdriver.common.by import By

    path, _ = page
    load(driver, path)
    details = driver.find_element(By.ID, "details")
    assert not details.is_displayed()

    node(driver, "a").click()
    assert details.is_displayed()
    assert driver.find_element(By.ID, "d-name").text == "a"
    assert driver.find_element(By.ID, "d-state").text == "restorable"
    reasons = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#d-reasons li")]
    assert reasons == ["command changed", "param params.n: 2 → 1"]
    durations = driver.find_element(By.ID, "d-durations").text
    assert "run 2: built" in durations and "took" in durations
    assert driver.find_element(By.ID, "d-action").text == "echo 1 > out/a.txt"
    assert driver.find_element(By.ID, "d-help").text == "Write n"
    downstream = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#d-downstream li")]
    assert downstream == ["b", "d"]
    assert "selected" in node(driver, "a").get_attribute("class")
    hot = driver.execute_script("return document.querySelectorAll('path.edge.hot').length")
    assert hot == 2

    # The never-built target: no history, and a link to its upstream.
    node(driver, "d").click()
    assert driver.find_element(By.ID, "d-state").text == "stale"
    assert "never built" in driver.find_element(By.ID, "d-durations").text
    driver.find_element(By.LINK_TEXT, "wide[k=2]").click()
    assert driver.find_element(By.ID, "d-name").text == "wide[k=2]"
    assert "matrix wide" in driver.find_element(By.ID, "d-kind").text

    shot = tmp_path / "graph.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("FLOWMAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "flowmake-graph.png")

    driver.find_element(By.ID, "close").click()
    assert not details.is_displayed()


def test_search_highlights_and_selects(driver, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    path, _ = page
    load(driver, path)
    box = driver.find_element(By.ID, "search")
    box.send_keys("wide")
    matches = driver.execute_script(
        "return [...document.querySelectorAll('g.node.match')].map(g => g.dataset.name)")
    assert sorted(matches) == ["wide[k=1]", "wide[k=2]", "wide[k=3]"]
    box.send_keys(Keys.ENTER)
    assert driver.find_element(By.ID, "d-name").text == "wide[k=1]"
    assert driver.execute_script("return decodeURIComponent(location.hash)") == "#wide[k=1]"


# A failed target (its error in the history), an always target and a matrix of four.
FAILING = """
[targets.a]
cmd     = "echo a > ${outputs}"
outputs = ["out/a.txt"]

[targets.sweep]
matrix  = { k = [1, 2], m = ["x", "y"] }
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/a.txt"]
outputs = ["out/sweep-${k}-${m}.txt"]

[targets.broken]
cmd     = "echo loading; echo 'ValueError: the table is empty' >&2; exit 3"
inputs  = ["out/a.txt"]
outputs = ["out/broken.txt"]

[targets.stamp]
cmd     = "date > ${outputs}"
outputs = ["out/stamp.txt"]
always  = true

[targets.report]
cmd     = "cat ${inputs} > ${outputs}"
inputs  = ["out/sweep-*.txt", "out/broken.txt", "out/stamp.txt"]
outputs = ["out/report.txt"]
"""


@pytest.fixture(scope="module")
def failing_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("graph-failing")
    (root / "flow.toml").write_text(textwrap.dedent(FAILING))
    assert flowmake(root, "build", "-k").returncode == 1
    result = flowmake(root, "graph", "--format", "html", "-o", "graph.html")
    assert result.returncode == 0, result.stderr
    return root / "graph.html", json.loads(flowmake(root, "graph", "--format", "json").stdout)


def test_the_page_data_says_failed_and_always(failing_page):
    _, doc = failing_page
    nodes = {n["name"]: n for n in doc["nodes"]}
    assert nodes["broken"]["state"] == "stale" and nodes["broken"]["display"] == "failed"
    failure = nodes["broken"]["last_failure"]
    assert failure["run_id"] == 1 and "ValueError: the table is empty" in failure["output"]
    assert nodes["stamp"]["always"] is True and nodes["stamp"]["display"] == "always"
    assert nodes["a"]["display"] == "fresh" and "last_failure" not in nodes["a"]
    assert nodes["report"]["display"] == "stale"  # skipped, never failed itself


def _box(driver: Any, element: Any) -> list[float]:
    return driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];",
        element)


def test_failed_and_always_targets_are_drawn_as_such(driver, failing_page, tmp_path):
    from selenium.webdriver.common.by import By

    path, _ = failing_page
    load(driver, path)
    fill = "return getComputedStyle(arguments[0].querySelector('rect')).fill"
    fills = {name: driver.execute_script(fill, node(driver, name))
             for name in ("broken", "stamp", "report", "a")}
    assert len(set(fills.values())) == 4, fills  # failed, always, stale, fresh: four colours
    assert "show-failed" in node(driver, "broken").get_attribute("class")
    assert "show-always" in node(driver, "stamp").get_attribute("class")
    assert driver.find_element(By.ID, "count-failed").text == "1"
    assert driver.find_element(By.ID, "count-always").text == "1"
    assert driver.find_element(By.ID, "count-stale").text == "1"

    node(driver, "broken").click()
    assert driver.find_element(By.ID, "d-state").text == "failed"
    assert driver.find_element(By.ID, "d-failure-box").is_displayed()
    assert "run 1" in driver.find_element(By.ID, "d-failure-run").text
    error = driver.find_element(By.ID, "d-failure").text
    assert error.splitlines() == ["loading", "ValueError: the table is empty"]
    shot = tmp_path / "graph-failed.png"
    assert driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("FLOWMAKE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "flowmake-graph-failed.png")

    node(driver, "stamp").click()
    assert driver.find_element(By.ID, "d-state").text == "always"
    assert not driver.find_element(By.ID, "d-failure-box").is_displayed()
    assert [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#d-reasons li")] == [
        "always"]


def test_matrix_instances_are_framed_as_one_group(driver, failing_page):
    from selenium.webdriver.common.by import By

    path, doc = failing_page
    load(driver, path)
    groups = driver.find_elements(By.CSS_SELECTOR, "g.group")
    assert [g.get_attribute("data-matrix") for g in groups] == ["sweep"]
    frame = _box(driver, groups[0].find_element(By.TAG_NAME, "rect"))
    assert "sweep ×4" in groups[0].text
    for item in doc["nodes"]:
        box = _box(driver, node(driver, item["name"]))
        inside = (frame[0] <= box[0] and box[2] <= frame[2] and frame[1] <= box[1]
                  and box[3] <= frame[3])
        apart = box[2] <= frame[0] or frame[2] <= box[0] or box[3] <= frame[1] \
            or frame[3] <= box[1]
        if item["matrix"] == "sweep":
            assert inside, (item["name"], box, frame)
        else:
            assert apart, (item["name"], box, frame)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
