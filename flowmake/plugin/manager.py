"""The plugin manager and a typed façade over hook calls.

Load order: the built-ins (registered exactly like third-party plugins), then the
``flowmake`` entry points, then the modules named in ``[flow] plugins``, then
``check_pending()``. ``FLOWMAKE_DISABLE_PLUGINS=a,b`` blocks plugins by name. Two
plugins registering one name (format extension, backend protocol, executor) is an error
naming both.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

import pluggy

from flowmake import hookspecs
from flowmake.errors import PluginError
from flowmake.plugin.entry_points import (
    REGISTRATIONS,
    Deferred,
    DeferredName,
    Profile,
    entry_points,
    load_entry_point,
    profile_key,
    read_profiles,
    registered_keys,
    write_profiles,
)

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
        self.deferred: dict[str, Deferred] = {}  # entry-point plugins not imported (yet)
        self.order: list[str] = [m for m in BUILTINS if self.pm.has_plugin(m)]
        self._entry_points()
        self._load_modules(extra_modules, project_root)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r}: {exc}") from None
        self._collect_all()

    def _entry_points(self) -> None:
        """Import each entry-point plugin, except one whose remembered profile (same
        distribution, version and module file) says it only registers names: that one
        waits in ``deferred`` until a lookup needs one of its names. Observers are always
        imported: they see every build."""
        profiles = read_profiles()
        kept: dict[Any, Profile] = {}
        for name, value, dist in entry_points():
            if self.pm.is_blocked(name) or self.pm.has_plugin(name):
                continue
            key = profile_key(name, value, dist)
            profile = profiles.get(key) if key is not None else None
            if profile is not None and set(profile) <= set(REGISTRATIONS):
                self.deferred[name] = Deferred(value, profile)
            else:
                plugin = load_entry_point(name, value)
                self.pm.register(plugin, name=name)
                profile = self._profile(plugin)
            if key is not None:
                kept[key] = profile
            self.dists[name] = dist
            self.order.append(name)
        if kept != profiles:
            write_profiles(kept)

    def _profile(self, plugin: Any) -> Profile:
        """The hooks a loaded plugin implements, with the names it registers."""
        found: Profile = {}
        for caller in self.pm.get_hookcallers(plugin) or []:
            names: list[tuple[str, str]] = []
            if caller.name in REGISTRATIONS:
                keys_attr = REGISTRATIONS[caller.name][0]
                for impl in caller.get_hookimpls():
                    if impl.plugin is plugin:
                        names += [(key, cls.__name__) for cls, key in registered_keys(impl, keys_attr)]
            found[caller.name] = names
        return found

    def _collect_all(self) -> None:
        self.formats = self._collect(self.pm.hook.flowmake_register_formats, "EXTENSIONS", "format")
        self.backends = self._collect(self.pm.hook.flowmake_register_backends, "PROTOCOLS", "backend")
        self.executors = self._collect(self.pm.hook.flowmake_register_executors, None, "executor")
        self.kinds = self._collect(self.pm.hook.flowmake_register_target_kinds, "KEY",
                                   "target kind")

    def _resolved(self, table: str, key: str) -> Any:
        """``self.<table>[key]``; a deferred plugin's name imports that plugin first."""
        cls = getattr(self, table).get(key)
        if isinstance(cls, DeferredName) and cls.plugin in self.deferred:
            deferred = self.deferred.pop(cls.plugin)
            self.pm.register(load_entry_point(cls.plugin, deferred.value), name=cls.plugin)
            self._collect_all()
            cls = getattr(self, table).get(key)
        return None if isinstance(cls, DeferredName) else cls

    def _load_modules(self, modules: Iterable[str], root: str | None) -> None:
        if root and root not in sys.path:
            sys.path.insert(0, root)
        for module in modules:
            if self.pm.is_blocked(module) or self.pm.has_plugin(module):
                continue
            try:
                self.pm.register(importlib.import_module(module), name=module)
                self.order.append(module)
            except ImportError as exc:
                raise PluginError(f"[flow] plugins: cannot import '{module}': {exc}",
                                  plugin=module) from None

    def _collect(self, hook: Any, keys_attr: str | None, kind: str) -> dict[str, Any]:
        """Map each registered name (extension, protocol, executor name) to its class (a
        deferred plugin's: its ``DeferredName``), in registration order; a name registered by two
        plugins is an error naming both."""
        impls = {impl.plugin_name: impl for impl in hook.get_hookimpls()}
        found: dict[str, Any] = {}
        owner: dict[str, tuple[str, str]] = {}
        for plugin_name in [*self.order, *(n for n in impls if n not in self.order)]:
            pairs: list[tuple[str, Any, str]]
            if plugin_name in self.deferred:
                pairs = [(key, DeferredName(plugin_name), shown) for key, shown
                         in self.deferred[plugin_name].profile.get(hook.name, [])]
            elif plugin_name in impls:
                pairs = [(key, cls, cls.__name__) for cls, key in registered_keys(impls[plugin_name],
                                                                         keys_attr)]
            else:
                continue
            for key, cls, shown in pairs:
                if key in found and found[key] is not cls and owner[key] != (plugin_name, shown):
                    raise PluginError(
                        f"{kind} '{key}' is registered twice: by plugin '{owner[key][0]}'"
                        f" ({owner[key][1]}) and by plugin '{plugin_name}'"
                        f" ({shown})", plugin=plugin_name,
                        install_hint="uninstall one, or block it with"
                                     " FLOWMAKE_DISABLE_PLUGINS=NAME")
                found[key], owner[key] = cls, (plugin_name, shown)
        return found

    # -- lookups ----------------------------------------------------------------------

    def format_for(self, path: str) -> Any:
        from flowmake.formats import extension

        ext = extension(path)
        cls = self._resolved("formats", ext)
        if cls is None:
            known = ", ".join(sorted(self.formats))
            raise PluginError(f"no installed plugin saves or loads '{ext or path}' files"
                              f" (known: {known})", install_hint=_hint(ext))
        return cls()

    def backend_class(self, url: str) -> type:
        from flowmake.backends import protocol

        proto = protocol(url)
        cls = self._resolved("backends", proto)
        # the fallback serves what fsspec itself implements
        fallback: Any = None if cls is not None else self._resolved("backends", "*")
        if cls is None and fallback is not None and fallback.serves(proto):
            cls = fallback
        if cls is None:
            raise PluginError(f"no installed plugin serves '{proto}://' URLs ({url})",
                              install_hint=_hint(proto))
        found: type = cls
        return found

    def executor_class(self, name: str) -> type:
        cls = self._resolved("executors", name)
        if cls is None:
            known = ", ".join(sorted(self.executors))
            raise PluginError(f"unknown executor '{name}' (installed: {known})",
                              install_hint=_hint(name))
        found: type = cls
        return found

    def target_kind(self, key: str) -> Any:
        """An instance of the kind serving the target key ``key`` (``notebook``)."""
        cls = self._resolved("kinds", key)
        if cls is None:
            raise PluginError(f"no installed plugin serves target kind '{key}'",
                              install_hint=_hint(key))
        return cls()

    def describe(self) -> list[str]:
        """``name version`` of every loaded plugin, for ``flowmake --version``."""
        loaded = {name for name, plugin in self.pm.list_name_plugin() if plugin is not None}
        return [f"{name} {self.dists[name]}" if self.dists.get(name) else name
                for name in [*self.order, *sorted(loaded - set(self.order))]
                if name in loaded or name in self.deferred]

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

