"""The environment a build ran in (SPEC §9): Python, platform, flowmake and its plugins,
the installed distributions (a digest and the list) and the project's git commit.

Only a real build computes it (never the no-op fast path). Listing the distributions
takes ~90 ms, so the list is kept in ``.flowmake/distributions.json`` with the mtimes of
the ``sys.path`` folders that hold distributions (installing or removing one changes its
folder's mtime). A build takes it in a thread once its first commands are started
(``Background``), all but the git state, taken before any command runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from flowmake.fsutil import atomic_write
from flowmake.store import paths

GIT_TIMEOUT = 2.0  # seconds for each git command; a slower git records no commit


def environment(root: Path, state_dir: Path, plugins: dict[str, str],
                git: dict[str, Any] | bool | None = True) -> dict[str, Any]:
    """What to keep with a run. ``plugins``: entry-point plugin name → "dist version";
    ``git``: the git state taken already (True: take it now)."""
    import hashlib
    import platform

    from flowmake import __version__

    dists = distributions(state_dir, root)
    digest = hashlib.sha256("\n".join(dists).encode()).hexdigest()[:16]
    return {"python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(), "executable": sys.executable,
            "flowmake": __version__, "plugins": dict(sorted(plugins.items())),
            "distributions_digest": digest, "distributions": dists,
            "git": git_state(root) if git is True else git}


class Background:
    """The environment taken in a thread, so that the distributions' list, ``platform``
    and the digest are off the path to the first command (the build starts it once its
    first jobs are started, and collects it when the jobs are done). The git state is taken
    before (``git_state``, handed in): a command may change a tracked file, and ``dirty``
    is the state the build started from."""

    def __init__(self, root: Path, state_dir: Path, plugins: dict[str, str],
                 git: dict[str, Any] | None) -> None:
        self._args = (root, state_dir, plugins, git)
        self._thread: threading.Thread | None = None
        self._value: dict[str, Any] | None = None
        self._error: OSError | ValueError | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._take, name="flowmake-environment",
                                            daemon=True)
            self._thread.start()

    def _take(self) -> None:
        try:
            self._value = environment(*self._args)
        except (OSError, ValueError) as exc:
            self._error = exc

    def result(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The environment (taken now if nothing started it); None if not taken within
        ``timeout`` seconds.

        Raises:
            OSError, ValueError: it could not be found out.
        """
        self.start()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self._value


DIST_SUFFIXES = (".dist-info", ".egg-info")


def _signature(root: Path | None = None) -> list[Any]:
    """The ``sys.path`` folders that hold distributions, with their mtimes (installing or
    removing one changes them); for the project's own folder (on ``sys.path`` for its
    plugins), the names of the distributions in it instead: every build changes its mtime
    (flow.lock is written there). A folder that holds none (the script's ``bin``, the
    working folder under ``python -m``, the standard library) is left out, so the
    ``flowmake`` script and ``python -m flowmake`` share one cached list."""
    # The environment, not the path it was started by: `flowmake` runs bin/python3 (its #!
    # line), `python -m flowmake` often bin/python; both are one interpreter and one list.
    found: list[Any] = [sys.prefix, sys.version]
    project = None if root is None else os.path.abspath(root)
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as listing:
                names = sorted(e.name for e in listing if e.name.endswith(DIST_SUFFIXES))
            if not names:
                continue
            if project is not None and os.path.abspath(entry or ".") == project:
                found.append([entry, names])
            else:
                found.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:  # not a folder (a zip), or gone
            continue
    return found


# A resident server's list (keep_distributions), with the signature it was taken at: its
# forks' first build in a project (no distributions.json yet) need not list them again.
_kept: tuple[list[Any], list[str]] | None = None


def keep_distributions() -> None:
    """List the distributions now and keep them for this process and its forks (a
    resident server: the list took 30-90 ms of a first build's thread, the interpreter's
    lock taken from the scheduler's as it started the first commands)."""
    global _kept
    _kept = (_signature(), _scan())


def _scan() -> list[str]:
    from importlib.metadata import distributions as scan

    return sorted({f"{d.metadata['Name']}=={d.version}" for d in scan()
                   if d.metadata["Name"]}, key=str.lower)


def distributions(state_dir: Path, root: Path | None = None) -> list[str]:
    """``name==version`` of every installed distribution, sorted (cached, see above;
    ``root``: the project's folder)."""
    cache = state_dir / paths.DISTRIBUTIONS
    signature = _signature(root)
    try:
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved["signature"] == signature:
            return list(saved["distributions"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = list(_kept[1]) if _kept is not None and _kept[0] == signature else _scan()
    try:
        atomic_write(cache, json.dumps({"signature": signature, "distributions": found}
                                       ).encode(), fsync=False)
    except OSError:
        pass  # a read-only state folder: computed again next time
    return found


def _in_work_tree(root: Path) -> bool:
    """A ``.git`` (folder or file: a worktree, a submodule) in ``root`` or a folder above
    it, or a ``GIT_DIR``/``GIT_WORK_TREE`` that may point git elsewhere: as git searches,
    but a few stats instead of two processes (most of a small build's path to its first
    command when there is no repository)."""
    if os.environ.get("GIT_DIR") or os.environ.get("GIT_WORK_TREE"):
        return True
    folder = root.resolve()
    return any(os.path.lexists(candidate / ".git") for candidate in (folder, *folder.parents))


def _start_git(root: Path, *args: str) -> subprocess.Popen[str] | None:
    try:
        return subprocess.Popen(["git", *args], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    except OSError:
        return None


def _answer(proc: subprocess.Popen[str] | None, deadline: float) -> str | None:
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out if proc.returncode == 0 else None


def git_state(root: Path) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` when the project is in a git work tree with a commit. The
    two git commands run at once (the build waits for the slower, not for both); none
    runs outside a work tree (no ``.git`` here or above, no ``GIT_DIR``)."""
    if not _in_work_tree(root):
        return None
    deadline = time.monotonic() + GIT_TIMEOUT
    head = _start_git(root, "rev-parse", "HEAD")
    # Uncommitted changes to tracked files; untracked ones (outputs, .flowmake) do not count.
    status = _start_git(root, "status", "--porcelain", "--untracked-files=no")
    commit, porcelain = _answer(head, deadline), _answer(status, deadline)
    if commit is None:
        return None
    return {"commit": commit.strip(), "dirty": None if porcelain is None else bool(porcelain)}


def environment_lines(env: dict[str, Any] | None) -> list[str]:
    """A few lines for ``flowmake log RUN_ID``."""
    if not env:
        return ["  environment: not recorded"]
    plugins = ", ".join(f"{n} ({v})" if v else n for n, v in env.get("plugins", {}).items())
    git = env.get("git")
    where = "not a git repository" if not git else \
        git["commit"][:12] + (" (dirty)" if git.get("dirty") else "")
    return [f"  python: {env.get('python')} ({env.get('implementation')}), {env.get('platform')}",
            f"  flowmake: {env.get('flowmake')}; plugins: {plugins or 'none'}",
            f"  distributions: {len(env.get('distributions', []))}"
            f" (digest {env.get('distributions_digest')})",
            f"  git: {where}"]


def summary_json(env: dict[str, Any] | None) -> dict[str, Any] | None:
    """The list view's environment: everything but the distributions' list."""
    if env is None:
        return None
    return {k: v for k, v in env.items() if k != "distributions"}
