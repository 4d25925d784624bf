"""Installed ``flowmake`` entry points, found without importing them, and the profiles
that say what each registers (so one that only registers names is imported on demand).

Both answers are cached in the user's cache folder (``$XDG_CACHE_HOME/flowmake``), keyed
by what would change them: the ``sys.path`` folders' mtimes, and each plugin module's
distribution, version and file stat.
"""

from __future__ import annotations

import contextlib
import importlib
import marshal
import os
import sys
from typing import Any, NamedTuple

from flowmake.errors import PluginError
from flowmake.fsutil import atomic_write

CWD = "<the working folder>"
EntryPoint = tuple[str, str, str]  # (plugin name, "module:attribute", "distribution version")


def user_cache_dir() -> str:
    """flowmake's folder in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flowmake")


def entry_points() -> list[EntryPoint]:
    """The ``flowmake`` entry points of the installed distributions.

    Scanning them costs ~40 ms (importing importlib.metadata alone ~25 ms) on every
    command, so the answer is kept in the user's cache folder, one file per ``sys.path``,
    with the mtimes of the ``sys.path`` folders: installing or removing a distribution adds
    or removes its ``.dist-info`` folder, which changes its parent folder's mtime. (Kept
    per user rather than per project: a fresh clone, or a deleted ``.flowmake``, need not
    scan again. The working folder, on ``sys.path`` under ``python -m``, is left out of
    the file's name and counts only if it holds a distribution: see ``_cwd_mtime``.)
    """
    import zlib

    try:
        here = {"", os.getcwd()}  # sys.path[0] under `python -m` or `-c`: a project folder
    except OSError:  # the working folder was deleted
        here = {""}
    folders = [CWD if p in here else p for p in sys.path]
    signature = (sys.version, [(p, _cwd_mtime() if p == CWD else _mtime(p)) for p in folders])
    name = f"{zlib.crc32(repr(folders).encode()):08x}.marshal"
    cached = os.path.join(user_cache_dir(), "entry-points", name)
    try:
        with open(cached, "rb") as f:
            saved, found = marshal.loads(f.read())
        if saved == signature:
            return [tuple(ep) for ep in found]
    except (OSError, EOFError, ValueError, TypeError):
        pass
    from importlib.metadata import entry_points as scan

    found = [(ep.name, ep.value, f"{ep.dist.name} {ep.dist.version}" if ep.dist else "")
             for ep in scan(group="flowmake")]
    with contextlib.suppress(OSError):  # no writable cache folder: scan again next time
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        atomic_write(cached, marshal.dumps((signature, found)), fsync=False)
    return found


def _cwd_mtime() -> int | None:
    """The working folder's part of the signature. Its mtime changes whenever a build adds
    or removes a file in it, so it counts only if it holds a distribution (a rare thing in
    a project folder); otherwise every project would scan again, and keep a file of its own."""
    try:
        with os.scandir(".") as entries:
            if not any(e.name.endswith((".dist-info", ".egg-info", ".egg-link"))
                       for e in entries):
                return None
    except OSError:
        return None
    return _mtime(".")


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return None


def load_entry_point(name: str, value: str) -> Any:
    module, _, attribute = value.partition(":")
    try:
        obj = importlib.import_module(module.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"plugin '{name}' ({value}) cannot be loaded: {exc}", plugin=name,
                          install_hint="reinstall it, or block it with"
                                       " FLOWMAKE_DISABLE_PLUGINS=" + name) from None
    return obj


# registration hook -> (the class attribute naming its keys, None: NAME; what it registers)
REGISTRATIONS = {"flowmake_register_formats": ("EXTENSIONS", "format"),
                 "flowmake_register_backends": ("PROTOCOLS", "backend"),
                 "flowmake_register_executors": (None, "executor"),
                 "flowmake_register_target_kinds": ("KEY", "target kind")}
Profile = dict[str, list[tuple[str, str]]]  # hook implemented -> [(key, class name)]


class Deferred(NamedTuple):
    """An entry-point plugin not imported: it implements only registration hooks (as
    remembered in its profile), so it is imported when a build needs what it registers."""

    value: str
    profile: Profile


class DeferredName(NamedTuple):
    """A name a deferred plugin registers (``Plugins.formats`` and the like hold it until
    a lookup imports the plugin)."""

    plugin: str


def registered_keys(impl: Any, keys_attr: str | None) -> list[tuple[type, str]]:
    """(class, key) for each name a registration hook's implementation registers."""
    found = []
    for cls in impl.function() or []:
        keys = getattr(cls, keys_attr) if keys_attr else cls.NAME
        found += [(cls, key) for key in ((keys,) if isinstance(keys, str) else keys)]
    return found


def _profiles_path() -> str:
    """One file per interpreter (its keys name its plugins' files)."""
    import zlib

    name = f"{zlib.crc32(f'{sys.prefix} {sys.version}'.encode()):08x}.marshal"
    return os.path.join(user_cache_dir(), "plugin-profiles", name)


def read_profiles() -> dict[Any, Profile]:
    try:
        with open(_profiles_path(), "rb") as f:
            found = marshal.loads(f.read())
        return found if isinstance(found, dict) else {}
    except (OSError, EOFError, ValueError, TypeError):
        return {}


def write_profiles(profiles: dict[Any, Profile]) -> None:
    path = _profiles_path()
    # No writable cache folder, or a value marshal cannot write: imported again next time.
    with contextlib.suppress(OSError, ValueError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, marshal.dumps(profiles), fsync=False)


def profile_key(name: str, value: str, dist: str) -> tuple[Any, ...] | None:
    """What a plugin's profile holds for: its entry point, distribution and version, and
    the stat of its module's file (an edited editable install is imported again). None
    when the file is not found without importing (then it is always imported)."""
    from importlib.util import find_spec

    module = value.partition(":")[0].strip()
    top, _, rest = module.partition(".")
    try:
        spec = find_spec(top)  # a top-level name: found, not imported (editable finders too)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = spec.origin
    if rest:
        base = os.path.join(os.path.dirname(path), *rest.split("."))
        path = base + ".py" if os.path.isfile(base + ".py") else os.path.join(base, "__init__.py")
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (name, value, dist, path, st.st_size, st.st_mtime_ns)
