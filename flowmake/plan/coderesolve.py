"""Which units the names in one unit denote (codefp.py's edges): ``from x import y``,
``import x; x.y``, ``from x import *``, attributes read from a module, followed into
project-local modules; conservative (every unit of a module) where the source cannot
tell."""

from __future__ import annotations

from typing import Protocol

from flowmake.plan.codeunits import Binding, ModuleInfo, Unit

# A unit: (module name, name of a top-level definition, or "" for the module's body).
Node = tuple[str, str]


class Modules(Protocol):
    """The project's modules, as :class:`~flowmake.plan.codefp.CodeFingerprint` finds them."""

    def module(self, name: str) -> ModuleInfo | None: ...

    def locate(self, name: str) -> str | None: ...


class Resolver:
    """Resolves the names one unit reads into the units they denote (``found``)."""

    def __init__(self, fp: Modules, found: set[Node]) -> None:
        self.fp, self.found = fp, found
        self.seen: set[object] = set()

    def load(self, name: str) -> ModuleInfo | None:
        """Import ``name``: its body (and its packages', through the body) enters; None
        if it is not project-local."""
        info = self.fp.module(name)
        if info is not None:
            self.found.add((name, ""))
        return info

    def symbol(self, info: ModuleInfo, name: str) -> None:
        self.found.add((info.name, name))

    def whole(self, info: ModuleInfo) -> None:
        self.found.update((info.name, name) for name in info.units)

    def follow(self, info: ModuleInfo, unit: Unit) -> None:
        """What a unit reaches: the modules it imports, then each name it reads."""
        for name in unit.loads:
            self.load(name)
        for name in unit.wholes:
            whole = self.load(name)
            if whole is not None:
                self.whole(whole)
        if unit.dynamic:
            self.whole(info)
        for name, chain in unit.refs:
            binding = unit.imports.get(name)
            if binding is not None and unit is not info.body:
                self.bound(binding, chain)  # the unit's own import shadows the module's
            else:
                self.lookup(info, name, chain, bare=True)

    def lookup(self, info: ModuleInfo, name: str, chain: tuple[str, ...], bare: bool) -> None:
        """``name`` in ``info``'s namespace (``bare``: read inside it, so an unknown one
        is a local or a builtin; else read as an attribute from outside)."""
        key = (info.name, name, chain, bare)
        if key in self.seen:
            return
        self.seen.add(key)
        found = name in info.units
        if found:
            self.symbol(info, name)
        binding = info.body.imports.get(name)
        if binding is not None:
            self.bound(binding, chain)
        if found or binding is not None or name in info.defined:
            return
        if not bare and self.fp.locate(f"{info.name}.{name}") is not None:
            self.attrs(self.load(f"{info.name}.{name}"), chain)
            return
        for star in info.star:
            other = self.load(star)
            if other is not None and _binds(other, name):
                self.lookup(other, name, chain, bare=False)
                return
        if not bare:  # an attribute no unit binds (set dynamically?): all of them
            self.whole(info)

    def bound(self, binding: Binding, chain: tuple[str, ...]) -> None:
        """Follow an import binding: ``import a.b`` reads module ``a.b``; ``from a import
        y`` reads ``y`` in ``a``, or module ``a.y``."""
        if binding[0] == "module":
            self.attrs(self.load(binding[1]), chain)
            return
        _, base, attr = binding
        submodule = f"{base}.{attr}" if base else attr
        if self.fp.locate(submodule) is not None:
            self.attrs(self.load(submodule), chain)
            parent = self.load(base) if base else None
            if parent is not None and (attr in parent.units or attr in parent.body.imports):
                self.lookup(parent, attr, chain, bare=False)
            return
        parent = self.load(base) if base else None
        if parent is not None:
            self.lookup(parent, attr, chain, bare=False)

    def attrs(self, info: ModuleInfo | None, chain: tuple[str, ...]) -> None:
        """A module read through ``chain``; a module used whole without one."""
        if info is None:
            return
        if not chain:
            self.whole(info)
        else:
            self.lookup(info, chain[0], chain[1:], bare=False)


def unit_of(info: ModuleInfo, name: str) -> Unit:
    """A module's unit by name ("" for its body)."""
    return info.units[name] if name else info.body


def _binds(info: ModuleInfo, name: str) -> bool:
    return name in info.units or name in info.body.imports or name in info.defined or bool(
        info.star)
