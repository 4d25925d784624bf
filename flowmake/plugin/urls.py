"""URL inputs and outputs on the client: metadata fingerprints, globs and removal.

Local paths never come here (the stat-cached fast path in fingerprint.py). A URL is
served by the backend a plugin registers for its protocol; one backend instance per
class is kept for the whole command, and plugins are loaded only when a URL shows up.
A backend failure other than "not found" (no credentials, no network) is a
:class:`~flowmake.errors.FlowmakeError` naming the URL, never a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from flowmake.errors import FlowmakeError

if TYPE_CHECKING:
    from flowmake.executor import JobResult
    from flowmake.model import Target
    from flowmake.plan.fingerprint import Hasher


class Urls:
    """The backends behind URL paths, for one command.

    Args:
        plugins: returns the loaded plugin manager (called once, on the first URL).
        options: passed to each backend's constructor.
    """

    def __init__(self, plugins: Callable[[], Any], options: dict[str, Any] | None = None) -> None:
        self._load_plugins = plugins
        self._plugins: Any = None
        self.options = options or {}
        self._backends: dict[type, Any] = {}
        self._lock = threading.Lock()  # the artifact cache's push threads share backends

    @classmethod
    def default(cls, root: str | None = None) -> Urls:
        """Backends from the installed plugins alone (no ``[flow] plugins`` modules)."""

        def load() -> Any:
            from flowmake.plugin.manager import Plugins

            return Plugins((), root)

        return cls(load)

    def backend(self, url: str) -> Any:
        """The backend instance serving ``url``'s protocol (PluginError when none does)."""
        with self._lock:
            if self._plugins is None:
                self._plugins = self._load_plugins()  # first URL: load the plugins now
            cls = self._plugins.backend_class(url)
            if cls not in self._backends:
                self._backends[cls] = cls(self.options)
            return self._backends[cls]

    def fingerprint(self, url: str) -> str | None:
        """A metadata digest (ETag, checksum, size+mtime); None when the object is absent."""
        backend = self.backend(url)
        try:
            return cast("str | None", backend.fingerprint(url))
        except FileNotFoundError:
            return None
        except FlowmakeError:
            raise
        except Exception as exc:  # a storage library's own error: one line, not a traceback
            raise unreachable(url, exc) from None

    def glob(self, pattern: str) -> list[str]:
        try:
            return list(self.backend(pattern).glob(pattern))
        except FileNotFoundError:
            return []
        except FlowmakeError:
            raise
        except Exception as exc:
            raise unreachable(pattern, exc) from None

    def exists(self, url: str) -> bool:
        try:
            return bool(self.backend(url).exists(url))
        except FlowmakeError:
            raise
        except Exception as exc:
            raise unreachable(url, exc) from None

    def remove(self, url: str) -> None:
        try:
            self.backend(url).remove(url)
        except FileNotFoundError:
            pass
        except FlowmakeError:
            raise
        except Exception as exc:
            raise unreachable(url, exc) from None


def unreachable(url: str, exc: BaseException) -> FlowmakeError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FlowmakeError(f"cannot reach {url}: {text}",
                         hint="check the storage credentials and endpoint in the environment"
                              " (for s3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,"
                              " AWS_ENDPOINT_URL)")


def digest_url_outputs(hasher: Hasher, target: Target, result: JobResult) -> JobResult:
    """Add the backend fingerprints of a successful job's URL outputs to its digests.

    Executors skip URL outputs (they may run where the client's credentials are not);
    a URL output the job did not write fails the target, as a missing file does.
    """
    urls = [o.path for o in target.outputs if o.url]
    if not urls or not result.ok:
        return result
    digests = dict(result.digests)
    for url in urls:
        hasher.forget([url])
        try:
            digest = hasher.digest(url)
        except FlowmakeError as exc:
            return result._replace(ok=False, error=str(exc))
        if digest is None:
            return result._replace(ok=False, error=f"declared output not produced: {url}")
        digests[url] = digest
    return result._replace(digests=digests)

