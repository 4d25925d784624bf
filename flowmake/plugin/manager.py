"""The plugin manager and a typed façade over hook calls.

Load order: the built-ins (registered exactly like third-party plugins), then the
``flowmake`` entry points, then the modules named in ``[flow] plugins``, then
``check_pending()``. ``FLOWMAKE_DISABLE_PLUGINS=a,b`` blocks plugins by name. Two
plugins registering one name (format extension, backend protocol, executor) is an error
naming both.
"""

from __future__ import annotations

import contextlib
import importlib
import marshal
import os
import sys
from collections.abc import Iterable
from typing import Any

import pluggy

from flowmake import hookspecs
from flowmake.errors import PluginError

BUILTINS = (
    "flowmake.builtin.formats",
    "flowmake.builtin.local_executor",
    "flowmake.builtin.backends",
)

# What to install for the names people most often miss.
INSTALL_HINTS = {
    "s3": "pip install flowmake-s3   (from plugins/flowmake-s3 in the flowmake repository)",
    ".parquet": "pip install flowmake-parquet   (from plugins/flowmake-parquet)",
    ".feather": "pip install flowmake-parquet   (from plugins/flowmake-parquet)",
    ".csv": "pip install flowmake-parquet   (from plugins/flowmake-parquet)",
    ".tsv": "pip install flowmake-parquet   (from plugins/flowmake-parquet)",
    "dask": "pip install flowmake-dask   (from plugins/flowmake-dask)",
    "notebook": "pip install flowmake-notebook   (from plugins/flowmake-notebook)",
    "gs": "pip install gcsfs",
    "gcs": "pip install gcsfs",
    "az": "pip install adlfs",
    "abfs": "pip install adlfs",
}


def _hint(name: str) -> str:
    return INSTALL_HINTS.get(name, "install a flowmake plugin that provides it")


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
    tmp = f"{cached}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump((signature, found), f)
        os.replace(tmp, cached)
    except OSError:  # no writable cache folder: scan again next time
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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


def _load_entry_point(name: str, value: str) -> Any:
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


class Plugins:
    """Every loaded plugin, and what they registered, by name."""

    def __init__(self, extra_modules: Iterable[str] = (), project_root: str | None = None) -> None:
        self.pm = pluggy.PluginManager("flowmake")
        self.pm.add_hookspecs(hookspecs)
        blocked = [n.strip() for n in os.environ.get("FLOWMAKE_DISABLE_PLUGINS", "").split(",")]
        for name in filter(None, blocked):
            self.pm.set_blocked(name)
        for module in BUILTINS:
            if not self.pm.is_blocked(module):
                self.pm.register(importlib.import_module(module), name=module)
        self.dists: dict[str, str] = {}  # entry-point plugin name -> "distribution version"
        for name, value, dist in entry_points():
            if self.pm.is_blocked(name) or self.pm.has_plugin(name):
                continue
            self.pm.register(_load_entry_point(name, value), name=name)
            self.dists[name] = dist
        self._load_modules(extra_modules, project_root)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r}: {exc}") from None
        self.formats = self._collect(self.pm.hook.flowmake_register_formats, "EXTENSIONS", "format")
        self.backends = self._collect(self.pm.hook.flowmake_register_backends, "PROTOCOLS", "backend")
        self.executors = self._collect(self.pm.hook.flowmake_register_executors, None, "executor")
        self.kinds = self._collect(self.pm.hook.flowmake_register_target_kinds, "KEY",
                                   "target kind")

    def _load_modules(self, modules: Iterable[str], root: str | None) -> None:
        if root and root not in sys.path:
            sys.path.insert(0, root)
        for module in modules:
            if self.pm.is_blocked(module) or self.pm.has_plugin(module):
                continue
            try:
                self.pm.register(importlib.import_module(module), name=module)
            except ImportError as exc:
                raise PluginError(f"[flow] plugins: cannot import '{module}': {exc}",
                                  plugin=module) from None

    def _collect(self, hook: Any, keys_attr: str | None, kind: str) -> dict[str, type]:
        """Map each registered name (extension, protocol, executor name) to its class."""
        found: dict[str, type] = {}
        owner: dict[str, str] = {}
        for impl in reversed(hook.get_hookimpls()):  # registration order
            plugin_name = impl.plugin_name
            for cls in impl.function() or []:
                keys = getattr(cls, keys_attr) if keys_attr else cls.NAME
                for key in (keys,) if isinstance(keys, str) else keys:
                    if key in found and found[key] is not cls:
                        raise PluginError(
                            f"{kind} '{key}' is registered twice: by plugin '{owner[key]}'"
                            f" ({found[key].__name__}) and by plugin '{plugin_name}'"
                            f" ({cls.__name__})", plugin=plugin_name,
                            install_hint="uninstall one, or block it with"
                                         " FLOWMAKE_DISABLE_PLUGINS=NAME")
                    found[key], owner[key] = cls, plugin_name
        return found

    # -- lookups ----------------------------------------------------------------------

    def format_for(self, path: str) -> Any:
        from flowmake.formats import extension

        ext = extension(path)
        cls = self.formats.get(ext)
        if cls is None:
            known = ", ".join(sorted(self.formats))
            raise PluginError(f"no installed plugin saves or loads '{ext or path}' files"
                              f" (known: {known})", install_hint=_hint(ext))
        return cls()

    def backend_class(self, url: str) -> type:
        from flowmake.backends import protocol

        proto = protocol(url)
        cls = self.backends.get(proto)
        fallback: Any = self.backends.get("*")  # serves what fsspec itself implements
        if cls is None and fallback is not None and fallback.serves(proto):
            cls = fallback
        if cls is None:
            raise PluginError(f"no installed plugin serves '{proto}://' URLs ({url})",
                              install_hint=_hint(proto))
        return cls

    def executor_class(self, name: str) -> type:
        cls = self.executors.get(name)
        if cls is None:
            known = ", ".join(sorted(self.executors))
            raise PluginError(f"unknown executor '{name}' (installed: {known})",
                              install_hint=_hint(name))
        return cls

    def target_kind(self, key: str) -> Any:
        """An instance of the kind serving the target key ``key`` (``notebook``)."""
        cls = self.kinds.get(key)
        if cls is None:
            raise PluginError(f"no installed plugin serves target kind '{key}'",
                              install_hint=_hint(key))
        return cls()

    def describe(self) -> list[str]:
        """``name version`` of every loaded plugin, for ``flowmake --version``."""
        return [f"{name} {self.dists[name]}" if self.dists.get(name) else name
                for name, plugin in self.pm.list_name_plugin() if plugin is not None]

    def has_observers(self) -> bool:
        """True when a plugin watches builds (then every build must run its hooks)."""
        hooks = (self.pm.hook.flowmake_build_start, self.pm.hook.flowmake_build_finish,
                 self.pm.hook.flowmake_target_start, self.pm.hook.flowmake_target_finish)
        return any(impl.plugin_name not in BUILTINS for h in hooks for impl in h.get_hookimpls())

    # -- the observer hooks: every call goes through these --------------------------

    def build_start(self, run_id: int, targets: list[str]) -> None:
        self.pm.hook.flowmake_build_start(run_id=run_id, targets=targets)

    def build_finish(self, summary: Any) -> None:
        self.pm.hook.flowmake_build_finish(summary=summary)

    def target_start(self, step: Any) -> None:
        self.pm.hook.flowmake_target_start(step=step)

    def target_finish(self, outcome: Any) -> None:
        self.pm.hook.flowmake_target_finish(outcome=outcome)

    def on_event(self, name: str, payload: Any) -> None:
        """The scheduler's events (``target_start``, ``target_finish``) to the hooks."""
        if name == "target_start":
            self.target_start(payload)
        elif name == "target_finish":
            self.target_finish(payload)


# -- target kinds while flow.toml is read ----------------------------------------------
# config is handed ``find_kind`` (it imports nothing of plugin/): a target table whose key
# is neither cmd nor python asks it, so a project without such targets loads no plugin.

KNOWN_KINDS = ("notebook",)  # kinds flowmake's own plugins serve: a missing one says so
_LOADED: dict[tuple[tuple[str, ...], str], Plugins] = {}


def find_kind(key: str, modules: tuple[str, ...], root: str) -> Any:
    """The kind (an instance) serving ``key``, with the project's ``[flow] plugins``
    loaded; None when no plugin serves it (the key is then an unknown key), except for
    the kinds of flowmake's own plugins, which raise PluginError naming what to install."""
    plugins = _LOADED.get((modules, root))
    if plugins is None:
        plugins = _LOADED[(modules, root)] = Plugins(modules, root)
    if key in plugins.kinds or key in KNOWN_KINDS:
        return plugins.target_kind(key)
    return None

