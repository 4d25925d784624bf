"""flowmake-s3: ``s3://`` inputs, outputs and remote caches through s3fs.

Credentials, region and endpoint come from the standard AWS environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``). s3fs is imported on
first use, so installing this plugin costs flowmake's start-up nothing.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Mapping
from typing import IO, Any, cast

import flowmake

__version__ = "0.1.0"


def filesystem_options(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """s3fs keyword arguments from the environment.

    Recent botocore reads ``AWS_ENDPOINT_URL`` itself; passing it explicitly also covers
    older versions, and ``AWS_ENDPOINT_URL_S3`` (the S3-specific setting) wins over it.
    """
    options: dict[str, Any] = {"use_listings_cache": False}  # never a stale listing
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    client: dict[str, Any] = {}
    if endpoint:
        client["endpoint_url"] = endpoint
    region = environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION")
    if region:
        client["region_name"] = region
    if client:
        options["client_kwargs"] = client
    return options


def _url(path: str) -> str:
    return path if "://" in path else f"s3://{path}"


class S3Backend:
    """Objects in S3 or an S3-compatible store.

    ``options`` are extra s3fs.S3FileSystem keyword arguments (merged over those the
    environment gives).
    """

    NAME = "s3"
    PROTOCOLS = ("s3", "s3a")

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = {**filesystem_options(), **dict(options or {})}
        self._fs: Any = None
        self._lock = threading.Lock()

    @property
    def fs(self) -> Any:
        with self._lock:
            if self._fs is None:
                import s3fs

                self._fs = s3fs.S3FileSystem(**self.options)
            return self._fs

    def fingerprint(self, url: str) -> str | None:
        """``etag:ETAG:SIZE``; for a prefix, a digest of every object's key, ETag and size."""
        try:
            info = self.fs.info(url)
        except FileNotFoundError:
            return None
        if info.get("type") != "directory":
            return f"etag:{str(info.get('ETag', '')).strip(chr(34))}:{info.get('size')}"
        return _tree_fingerprint(self.fs.find(url, detail=True), info["name"])

    def open(self, url: str, mode: str = "rb") -> IO[bytes]:
        return cast("IO[bytes]", self.fs.open(url, mode))

    def exists(self, url: str) -> bool:
        return bool(self.fs.exists(url))

    def remove(self, url: str) -> None:
        if self.fs.exists(url):
            self.fs.rm(url, recursive=True)

    def glob(self, pattern: str) -> list[str]:
        return sorted(_url(p) for p in self.fs.glob(pattern))

    def find(self, prefix: str) -> list[str]:
        """Every object under a prefix: a flat listing, 1,000 keys a request."""
        return sorted(_url(p) for p in self.fs.find(prefix))

    # -- what the remote cache asks of immutable objects: one request each ---------------

    def object_exists(self, url: str) -> bool:
        """One HEAD request (``exists`` also probes for a folder-like prefix when absent)."""
        from fsspec.asyn import sync

        bucket, key, _ = self.fs.split_path(url)
        try:
            sync(self.fs.loop, self.fs._call_s3, "head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return False
        return True

    def read_stream(self, url: str) -> IO[bytes]:
        """One GET, read as it arrives: no HEAD first, not seekable.

        Raises FileNotFoundError when the object does not exist.
        """
        from fsspec.asyn import sync

        bucket, key, _ = self.fs.split_path(url)
        response = sync(self.fs.loop, self.fs._call_s3, "get_object", Bucket=bucket, Key=key)
        return io.BufferedReader(_Body(self.fs.loop, response["Body"]), 1 << 20)


class _Body(io.RawIOBase):
    """A GetObject response body, read from the filesystem's event loop."""

    def __init__(self, loop: Any, body: Any) -> None:
        self.loop, self.body = loop, body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        from fsspec.asyn import sync

        data = sync(self.loop, self.body.read, len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.body.close()
        super().close()


def _tree_fingerprint(found: Mapping[str, Mapping[str, Any]], base: str) -> str:
    from flowmake.digest import hash_bytes

    lines = sorted(f"{name[len(base):].lstrip('/')}\0{str(info.get('ETag', '')).strip(chr(34))}"
                   f"\0{info.get('size')}" for name, info in found.items())
    return "d" + hash_bytes("\n".join(lines))[1:]


@flowmake.hookimpl
def flowmake_register_backends() -> list[type]:
    return [S3Backend]
