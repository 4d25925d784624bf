"""Built-in storage backends: local files, and any protocol fsspec itself knows.

Local paths normally bypass backends (the stat-cached fast path); ``file://`` URLs and
the artifact cache use :class:`LocalBackend`. :class:`FsspecBackend` serves the
protocols fsspec implements whose libraries are installed (``memory://`` always); S3 is
left to the ``flowmake-s3`` plugin.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any, cast

from flowmake.hookspecs import hookimpl


class LocalBackend:
    NAME = "local"
    PROTOCOLS = ("file",)

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = options or {}

    @staticmethod
    def _path(url: str) -> str:
        return url[len("file://"):] if url.startswith("file://") else url

    def fingerprint(self, url: str) -> str | None:
        from flowmake.digest import digest_path

        return digest_path(self._path(url))

    def open(self, url: str, mode: str = "rb") -> IO[bytes]:
        path = self._path(url)
        if "w" in mode:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, mode)

    def exists(self, url: str) -> bool:
        return os.path.lexists(self._path(url))

    def remove(self, url: str) -> None:
        import shutil

        path = self._path(url)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)

    def glob(self, pattern: str) -> list[str]:
        import glob

        prefix = "file://" if pattern.startswith("file://") else ""
        return sorted(prefix + p for p in glob.glob(self._path(pattern), recursive=True))


class FsspecBackend:
    """Any fsspec filesystem; metadata fingerprints, never a download to compare."""

    NAME = "fsspec"
    # The fallback for protocols no plugin claims; importing fsspec's registry costs
    # ~60 ms, so which protocols it really serves is asked only when a URL shows up.
    PROTOCOLS: tuple[str, ...] = ("*",)

    @classmethod
    def serves(cls, proto: str) -> bool:
        return proto in available_protocols()

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self._fs: dict[str, Any] = {}

    def fs(self, url: str) -> Any:
        import fsspec

        proto = url.split("://", 1)[0]
        if proto not in self._fs:
            self._fs[proto] = fsspec.filesystem(proto, **self.options.get(proto, {}))
        return self._fs[proto]

    def fingerprint(self, url: str) -> str | None:
        fs = self.fs(url)
        try:
            info = fs.info(url)
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":  # a folder-like prefix: every object under it
            from flowmake.digest import hash_bytes

            found = fs.find(url, detail=True)
            lines = sorted(f"{name}\0{fingerprint_from_info(i)}" for name, i in found.items())
            return "d" + hash_bytes("\n".join(lines))[1:]
        return fingerprint_from_info(info)

    def open(self, url: str, mode: str = "rb") -> IO[bytes]:
        return cast("IO[bytes]", self.fs(url).open(url, mode))

    def exists(self, url: str) -> bool:
        return bool(self.fs(url).exists(url))

    def remove(self, url: str) -> None:
        fs = self.fs(url)
        if fs.exists(url):
            fs.rm(url, recursive=True)

    def glob(self, pattern: str) -> list[str]:
        return _as_urls(pattern, self.fs(pattern).glob(pattern))

    def find(self, prefix: str) -> list[str]:
        return _as_urls(prefix, self.fs(prefix).find(prefix))


def _as_urls(like: str, paths: Iterable[str]) -> list[str]:
    """fsspec's paths (which drop the protocol) as sorted URLs of ``like``'s protocol."""
    proto = like.split("://", 1)[0]
    return sorted(p if "://" in p else f"{proto}://{p.lstrip('/')}" for p in paths)


def fingerprint_from_info(info: Mapping[str, Any]) -> str:
    """The best change detector an object store gives without reading the object."""
    from flowmake.digest import hash_bytes

    if info.get("type") == "directory":
        return "d" + hash_bytes(repr(sorted(info.items())))[1:]
    for key in ("ETag", "etag", "md5Hash", "crc32c", "checksum", "content_md5"):
        if info.get(key):
            return f"{key}:{str(info[key]).strip(chr(34))}:{info.get('size')}"
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    return f"size:{info.get('size')}:mtime:{mtime}"


@functools.lru_cache(maxsize=1)
def available_protocols() -> tuple[str, ...]:
    """fsspec protocols whose implementation can be imported here, except s3 (a plugin)."""
    try:
        from fsspec.registry import known_implementations
    except ImportError:  # pragma: no cover - fsspec is a core dependency
        return ()
    found = []
    for proto, spec in known_implementations.items():
        if proto in ("s3", "s3a", "file", "local"):
            continue
        module = spec["class"].split(".", 1)[0]
        if module == "fsspec" or importlib.util.find_spec(module) is not None:
            found.append(proto)
    return tuple(found)


@hookimpl
def flowmake_register_backends() -> list[type]:
    return [LocalBackend, FsspecBackend]
