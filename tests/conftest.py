"""Shared fixtures: a real project folder driven through the real ``flowmake`` command.

``project`` is an empty project folder (``tmp_path/proj``) with helpers to write
flow.toml and files and to run ``python -m flowmake`` there as a user would: a real
subprocess, real files, real SQLite under ``.flowmake/``. No mocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FLOWMAKE = [sys.executable, "-m", "flowmake"]
DEFAULT_TIMEOUT = 60.0

# Variables a test sets on purpose; never inherited from the developer's shell.
_SCRUBBED = ("MYVAR", "FM_DOLLAR", "FORCE_COLOR", "CLICOLOR_FORCE")


Env = dict[str, str | None]


def base_env(extra: Env | None = None) -> dict[str, str]:
    """The environment of a flowmake run: NO_COLOR=1, plus ``extra`` (None unsets)."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["NO_COLOR"] = "1"
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _reset_sigint() -> None:
    """In the child: a default SIGINT handler even when the test runner ignores SIGINT
    (Python only turns SIGINT into KeyboardInterrupt when it is not ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (f"$ {' '.join(map(str, result.args))}\nexit {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie no one reaps counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Project:
    """A project folder and the ways a user touches it."""

    # Test modules cannot import conftest (several conftest.py share the name), so the
    # helpers ride on the fixture.
    wait_for = staticmethod(wait_for)
    pid_alive = staticmethod(pid_alive)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[str]] = []
        self.pid_files: list[str] = []

    # -- files ----------------------------------------------------------------------

    def path(self, rel: str) -> Path:
        return self.root / rel

    def flow(self, text: str, files: dict[str, str] | None = None, *,
             cache: bool = True) -> Project:
        """Write flow.toml (dedented) and ``files`` ({relative path: text}).

        ``cache=False`` turns the artifact cache off (``[flow] cache = false``), for tests
        about building rather than restoring.
        """
        text = textwrap.dedent(text).lstrip("\n")
        if not cache:
            if re.search(r"^\[flow\]\s*$", text, flags=re.M):
                text = re.sub(r"^\[flow\]\s*$", "[flow]\ncache = false", text, count=1,
                              flags=re.M)
            else:
                text = "[flow]\ncache = false\n\n" + text
        self.write("flow.toml", text)
        return self.files(files or {})

    def files(self, mapping: dict[str, str]) -> Project:
        for rel, text in mapping.items():
            self.write(rel, text)
        return self

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n") if rel == "flow.toml" else text,
                        encoding="utf-8")
        return path

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.root / rel)

    def edit_flow(self, old: str, new: str) -> None:
        text = self.read("flow.toml")
        assert old in text, f"{old!r} not in flow.toml"
        (self.root / "flow.toml").write_text(text.replace(old, new), encoding="utf-8")

    # -- running flowmake -----------------------------------------------------------

    def run(self, *args: str, check: int | bool | None = None, env: Env | None = None,
            timeout: float = DEFAULT_TIMEOUT, cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``flowmake ARGS`` in the project. ``check``: True (exit 0) or an exit code."""
        result = subprocess.run(
            [*FLOWMAKE, *args], cwd=cwd or self.root, env=base_env(env), text=True,
            capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
            preexec_fn=_reset_sigint)
        if check is not None and check is not False:
            expected = 0 if check is True else check
            assert result.returncode == expected, describe(result)
        return result

    def json(self, *args: str, check: int | bool | None = None,
             env: Env | None = None) -> Any:
        """Run with ``--json`` (added when missing) and parse stdout."""
        if "--json" not in args:
            args = (*args, "--json")
        result = self.run(*args, check=check, env=env)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"stdout is not one JSON document: {exc}\n{describe(result)}"
                                 ) from None

    def build(self, *args: str, check: int | bool | None = True,
              env: Env | None = None) -> dict[str, str]:
        """``build --json``: {target name: status}."""
        doc = self.json("build", *args, check=check, env=env)
        return {t["name"]: t["status"] for t in doc["targets"]}

    def states(self, *args: str, env: Env | None = None) -> dict[str, dict[str, Any]]:
        """``status --json``: {target name: its entry}."""
        doc = self.json("status", *args, check=True, env=env)
        return {t["name"]: t for t in doc["targets"]}

    def popen(self, *args: str, env: Env | None = None,
              stderr_to: Path | None = None) -> subprocess.Popen[str]:
        """Start ``flowmake ARGS`` in the background (killed at teardown if still running).

        ``stderr_to`` sends stderr to a file, to watch for a message while it runs.
        """
        stderr: Any = subprocess.PIPE
        if stderr_to is not None:
            stderr = open(stderr_to, "w")  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(
                [*FLOWMAKE, *args], cwd=self.root, env=base_env(env), text=True,
                stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                preexec_fn=_reset_sigint)
        finally:
            if stderr_to is not None:
                stderr.close()
        self.procs.append(proc)
        return proc

    def terminal(self, *args: str, env: Env | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
        """Run ``flowmake ARGS`` with stdin/stdout/stderr on a pseudo-terminal: (exit, output)."""
        import pty
        import select

        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([*FLOWMAKE, *args], cwd=self.root, env=base_env(env),
                                    stdin=slave, stdout=slave, stderr=slave,
                                    preexec_fn=_reset_sigint)
        finally:
            os.close(slave)
        self.procs.append(proc)  # type: ignore[arg-type]
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(master)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        return code, b"".join(chunks).decode("utf-8", errors="replace")

    def track_pid_file(self, rel: str) -> None:
        """At teardown, SIGKILL the process group whose leader's pid is in ``rel``."""
        self.pid_files.append(rel)

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(Exception):
                proc.communicate(timeout=10)
        for rel in self.pid_files:
            try:
                pid = int(self.read(rel).split()[0])
                # Only the shell the test started, still leading its own process group.
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    is_shell = f.read().split(b"\0")[0].endswith(b"sh")
                if is_shell and os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                continue


@pytest.fixture(scope="session", autouse=True)
def resident_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The suite's commands go through resident servers as a user's do (docs/resident.md),
    but servers of this session only: their sockets in a folder of its own, a short idle
    time, and each one stopped at the end."""
    folder = Path(tempfile.mkdtemp(prefix="fmr-"))  # short: a socket path holds 108 bytes
    os.environ["FLOWMAKE_RESIDENT_DIR"] = str(folder)
    os.environ["FLOWMAKE_RESIDENT_IDLE"] = "30"
    try:
        yield folder
    finally:
        stop_servers(folder)
        shutil.rmtree(folder, ignore_errors=True)


def stop_servers(folder: Path) -> None:
    """SIGTERM to every server whose lock file is in ``folder``."""
    for lock in folder.glob("*.lock"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(lock.read_text().strip())
            if pid > 0:
                os.kill(pid, signal.SIGTERM)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """An empty project folder at ``tmp_path/proj``; write flow.toml with ``.flow()``."""
    proj = Project(tmp_path / "proj")
    try:
        yield proj
    finally:
        proj.cleanup()


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[[str], Project]]:
    """Further projects under tmp_path, by folder name."""
    made: list[Project] = []

    def make(name: str) -> Project:
        proj = Project(tmp_path / name)
        made.append(proj)
        return proj

    try:
        yield make
    finally:
        for proj in made:
            proj.cleanup()


# -- a headless Chromium for the HTML pages (graph, report) ------------------------------
# Debian's chromium and chromium-driver (the README's install command puts them in place).
# Without them browser tests skip, unless FLOWMAKE_BROWSER_TESTS=required (.ci/run) makes
# that a failure.

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = _browser_missing()
    if missing:
        if os.environ.get("FLOWMAKE_BROWSER_TESTS") == "required":
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()
