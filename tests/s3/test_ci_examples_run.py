"""The CI examples' commands, run as their CI would run them, against moto's S3 server.

Each job's shell commands are taken from the YAML (GitHub's `run:` steps, GitLab's
`script:` and `after_script:`) and run in order with bash in a copy of the repository's
examples/ci, with the job's environment as its CI would give it: GitHub's `${{ }}`
expressions of the job's `env` and GitLab's `rules:` variables evaluated for a push to
main and for a pull (merge) request, the secrets being credentials of moto users allowed
to read and write the cache bucket, or only to read it. The install step is checked, not
run (this environment has flowmake and flowmake-s3 installed already).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "ci"
BUCKET = "acme-flowmake-cache"  # examples/ci/flow.toml's remote
INSTALL = "pip install . ./plugins/flowmake-s3"
READ = ["s3:GetObject", "s3:ListBucket"]
WRITE = [*READ, "s3:PutObject"]

pytestmark = pytest.mark.slow


def _checkout(tmp: Path) -> Path:
    """A checkout as CI has it: the repository's examples/ci, no state, no outputs."""
    root = tmp / "checkout"
    shutil.copytree(EXAMPLES, root / "examples" / "ci",
                    ignore=shutil.ignore_patterns(".flowmake", "data", "out", "flowmake-*"))
    return root


def _run(commands: list[str], cwd: Path, env: dict[str, str]) -> list[int]:
    """Each command with bash -eo pipefail (GitHub's default shell); the exit codes."""
    codes = []
    for command in commands:
        if command.strip() == INSTALL:
            assert (REPO / "pyproject.toml").is_file()
            assert (REPO / "plugins" / "flowmake-s3" / "pyproject.toml").is_file()
            continue
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                                 command], cwd=cwd, env=env, text=True, capture_output=True,
                                timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        codes.append(result.returncode)
    return codes


def _base_env(bucket, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()  # the session's resident servers kept
           if not k.startswith(("AWS_", "FLOWMAKE_", "GITHUB_", "CI_"))
           or k in ("FLOWMAKE_RESIDENT_DIR", "FLOWMAKE_RESIDENT_IDLE")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env["PATH"]
    env["NO_COLOR"] = "1"
    env.update({k: v for k, v in bucket.env.items() if v is not None and k not in
                ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})
    env.update(extra)
    return env


# -- GitHub ------------------------------------------------------------------------------

_CHOICE = re.compile(r"\$\{\{ github\.event_name == 'pull_request' && (\S+) \|\| (\S+) \}\}")


def _github_value(value: str, pull_request: bool, secrets: dict[str, str]) -> str:
    """The one expression form the job's env uses: `A if pull request else B`."""
    if "${{" not in str(value):
        return str(value)
    match = _CHOICE.fullmatch(value)
    assert match, f"an expression this test cannot evaluate: {value}"
    chosen = match.group(1) if pull_request else match.group(2)
    if chosen.startswith("secrets."):
        return secrets[chosen.removeprefix("secrets.")]
    return chosen.strip("'")


def _github_job(pull_request: bool, secrets: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    job = yaml.safe_load((EXAMPLES / "github-workflow.yml").read_text())["jobs"]["build"]
    env = {k: _github_value(v, pull_request, secrets) for k, v in job["env"].items()}
    return env, [step["run"] for step in job["steps"] if "run" in step]


# -- GitLab ------------------------------------------------------------------------------


def _gitlab_job(merge_request: bool, secrets: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["flowmake"]
    source = "merge_request_event" if merge_request else "push"
    rule = next(r for r in job["rules"] if (
        r["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"') == merge_request)
    assert ("merge_request_event" in rule["if"]) == (source == "merge_request_event")
    env = {k: v for k, v in job["variables"].items() if "$CI_" not in v}
    for name, value in rule["variables"].items():
        env[name] = secrets[value[1:]] if value.startswith("$") else value
    return env, [*job["script"], *job["after_script"]]


# -- the jobs ----------------------------------------------------------------------------


@pytest.fixture
def cache(bucket):
    """examples/ci's bucket on the moto server, empty; and the moto users' credentials."""
    try:
        bucket.client.create_bucket(Bucket=BUCKET)
    except bucket.client.exceptions.BucketAlreadyOwnedByYou:
        pass
    shared = type(bucket)(BUCKET, bucket.endpoint, bucket.client)
    for key in list(shared.keys()):  # Bucket.keys() lists the bucket
        bucket.client.delete_object(Bucket=BUCKET, Key=key)
    return shared


def _secrets(read: dict[str, str | None], write: dict[str, str | None]) -> dict[str, str]:
    return {"CACHE_READ_KEY_ID": read["AWS_ACCESS_KEY_ID"],
            "CACHE_READ_SECRET": read["AWS_SECRET_ACCESS_KEY"],
            "CACHE_WRITE_KEY_ID": write["AWS_ACCESS_KEY_ID"],
            "CACHE_WRITE_SECRET": write["AWS_SECRET_ACCESS_KEY"]}


def _statuses(root: Path) -> dict[str, str]:
    suite = ET.parse(root / "examples" / "ci" / "flowmake-junit.xml").getroot().find("testsuite")
    found = {}
    for case in suite.findall("testcase"):
        out = case.find("system-out")
        found[case.get("name")] = "failed" if case.find("failure") is not None else \
            out.text.split()[0]
    return found


def _reports_written(root: Path) -> dict:
    folder = root / "examples" / "ci"
    page = (folder / "flowmake-report.html").read_text()
    assert '<script id="flowmake-data" type="application/json">' in page
    log = json.loads((folder / "flowmake-log.json").read_text())
    return log["runs"][0]


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_main_pushes_to_the_cache_and_a_pull_request_restores_read_only(ci, cache, tmp_path):
    jobs = {"github": _github_job, "gitlab": _gitlab_job}[ci]
    extra = {"github": {"GITHUB_ACTIONS": "true",
                        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")},
             "gitlab": {"GITLAB_CI": "true"}}[ci]
    # The write secrets: the moto account's own credentials (IAM not enforced).
    writer = {k: cache.env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}

    # A push to main: builds everything, pushes it to the bucket, writes the reports.
    main = _checkout(tmp_path / "main")
    job_env, commands = jobs(False, _secrets({"AWS_ACCESS_KEY_ID": "unused",
                                              "AWS_SECRET_ACCESS_KEY": "unused"}, writer))
    assert job_env["FLOWMAKE_REMOTE_READONLY"] == "0"
    assert job_env["AWS_ACCESS_KEY_ID"] == writer["AWS_ACCESS_KEY_ID"]
    assert INSTALL in [c.strip() for c in commands]
    codes = _run(commands, main, _base_env(cache, {**job_env, **extra}))
    assert codes == [0] * len(codes) and len(codes) >= 2
    assert _statuses(main) == {"words": "built", "counts": "built", "report": "built"}
    assert _reports_written(main)["counts"]["built"] == 3
    pushed = cache.keys()
    assert pushed, "main's build pushed nothing"

    # A pull request in a fresh checkout, with credentials that may only read the bucket
    # (moto enforcing IAM): everything restored from it, nothing run, nothing pushed.
    with cache.restricted(READ) as read_env:
        pr = _checkout(tmp_path / "pr")
        job_env, commands = jobs(True, _secrets(read_env, {
            "AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused"}))
        assert job_env["FLOWMAKE_REMOTE_READONLY"] == "1"
        assert job_env["AWS_ACCESS_KEY_ID"] == read_env["AWS_ACCESS_KEY_ID"]
        env = _base_env(cache, {**job_env, **extra})
        codes = _run(commands, pr, env)
        assert codes == [0] * len(codes)
        warned = subprocess.run(["flowmake", "-C", "examples/ci", "build"], cwd=pr, env=env,
                                text=True, capture_output=True, timeout=120)
        assert warned.returncode == 0 and "warning" not in warned.stderr, warned.stderr
    assert _statuses(pr) == {"words": "restored", "counts": "restored", "report": "restored"}
    assert _reports_written(pr)["counts"]["restored"] == 3
    assert cache.keys() == pushed  # the pull request wrote nothing
    assert (pr / "examples" / "ci" / "out" / "report.txt").read_text().startswith("Top 3 words:")
    if ci == "github":
        summary = (tmp_path / "summary.md").read_text()
        assert "flowmake build: success" in summary and "Restored from the cache (3)" in summary
