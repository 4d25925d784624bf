"""The Backend interface: where inputs and outputs named by URL live (s3://, memory://).

Local paths never go through a backend (the stat-cached fast path in fingerprint.py);
every other protocol is served by the backend a plugin registers for it.

A whole minimal backend plugin::

    import flowmake

    class HttpBackend:
        NAME = "http"
        PROTOCOLS = ("http", "https")

        def __init__(self, options):
            import fsspec
            self.fs = fsspec.filesystem("http")

        def fingerprint(self, url):
            info = self.fs.info(url)
            return info.get("ETag") or f"{info.get('size')}"
        def open(self, url, mode="rb"): return self.fs.open(url, mode)
        def exists(self, url): return self.fs.exists(url)
        def remove(self, url): raise PermissionError("read-only")
        def glob(self, pattern): return []

    @flowmake.hookimpl
    def flowmake_register_backends():
        return [HttpBackend]

Three optional methods make a remote artifact cache (``[flow] remote``) on the backend
cheaper: ``object_exists(url) -> bool`` (one metadata request, no probe for a folder),
``read_stream(url) -> IO[bytes]`` (one sequential read with no metadata request first;
FileNotFoundError when absent) and ``find(prefix) -> list[str]`` (every object URL under
a prefix from one flat listing, for ``cache push``). Without them the cache uses
``exists``, ``open`` and ``glob``. flowmake-s3 has all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any, ClassVar, Protocol


class Backend(Protocol):
    """Reads, writes and fingerprints objects of the URL protocols it serves."""

    NAME: ClassVar[str]
    PROTOCOLS: ClassVar[tuple[str, ...]]

    def __init__(self, options: Mapping[str, Any]) -> None: ...

    def fingerprint(self, url: str) -> str | None:
        """A digest from metadata alone (ETag, checksum, or size and mtime), without
        downloading; None when the object does not exist."""
        ...

    def open(self, url: str, mode: str = "rb") -> IO[bytes]:
        """Open an object for binary reading (``rb``) or writing (``wb``)."""
        ...

    def exists(self, url: str) -> bool: ...

    def remove(self, url: str) -> None:
        """Delete an object (or a prefix, for folder-like outputs)."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """URLs matching a glob pattern, sorted."""
        ...


def protocol(url: str) -> str:
    """``s3`` for ``s3://bucket/key``; ``file`` for plain paths."""
    head, sep, _ = url.partition("://")
    return head.lower() if sep else "file"
