"""`flowmake report` charts each metric over the builds up to the reported one: the
page's data, and the charts drawn in headless Chromium (skipped without it, as in
test_report_browser.py; the driver fixture is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.e2e.test_report import page_data
from tests.e2e.test_report_browser import load, page_errors

FLOW = """
[params]
acc = 0.8

[targets.eval]
cmd = "echo '{\\"accuracy\\": ${params.acc}, \\"roc\\": {\\"auc\\": 0.9}}' > ${outputs}"
outputs = ["eval/metrics.json"]
metrics = ["eval/metrics.json"]
"""


@pytest.fixture
def reported(project):
    project.flow(FLOW)
    for acc in ("0.8", "0.85", "0.9"):
        project.build("-p", f"acc={acc}")
    project.run("report", "-o", "latest.html", check=True)
    project.run("report", "2", "-o", "run2.html", check=True)
    return project


def test_the_page_data_holds_each_metric_up_to_the_run(reported):
    latest = page_data(reported.read("latest.html"))["metrics"]
    by_name = {m["name"]: m for m in latest}
    assert set(by_name) == {"accuracy", "roc.auc"}
    assert by_name["accuracy"]["points"] == [[1, 0.8], [2, 0.85], [3, 0.9]]
    assert by_name["accuracy"]["target"] == "eval"
    assert by_name["accuracy"]["path"] == "eval/metrics.json"
    run2 = {m["name"]: m for m in page_data(reported.read("run2.html"))["metrics"]}
    assert run2["accuracy"]["points"] == [[1, 0.8], [2, 0.85]]  # nothing after run 2


def test_no_metrics_no_section(project):
    project.flow('[targets.a]\ncmd = "echo a > ${outputs}"\noutputs = ["a.txt"]\n')
    project.build()
    project.run("report", check=True)
    assert page_data(project.read("flowmake-report.html"))["metrics"] == []


@pytest.mark.slow
def test_the_charts_in_a_browser(driver, reported):
    from selenium.webdriver.common.by import By

    load(driver, reported.root / "latest.html")
    assert driver.find_element(By.ID, "metrics-box").is_displayed()
    charts = {f.get_attribute("data-name"): f
              for f in driver.find_elements(By.CSS_SELECTOR, "figure.metric")}
    assert set(charts) == {"accuracy", "roc.auc"}
    acc = charts["accuracy"]
    points = acc.find_element(By.TAG_NAME, "polyline").get_attribute("points").split()
    ys = [float(p.split(",")[1]) for p in points]
    assert len(points) == 3 and ys[0] > ys[1] > ys[2]  # rising values drawn higher
    assert acc.find_element(By.CSS_SELECTOR, ".value").text == "0.9"
    assert len(acc.find_elements(By.CSS_SELECTOR, "circle.now")) == 1
    assert "runs 1–3" in acc.text
    assert page_errors(driver) == []
