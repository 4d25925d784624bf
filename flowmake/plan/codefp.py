"""Code keys of python targets at function level, by static analysis (user code is never
imported).

A python target's code key covers its function and what that function uses: the
functions, classes and module-level values it names, followed transitively through
``from x import y``, ``import x; x.y`` and ``from x import *`` into project-local
modules, plus the *body* of every module that code imports (what runs on import:
imports, calls, decorators, top-level blocks; see codeunits.py; coderesolve.py follows
the names a unit reads). The key's parts are ``{qualified name: digest}``:
``pipeline.model.fit`` for a function, ``pipeline.model`` for that module's body, so
``status`` and ``why`` name what changed (``code changed: pipeline.model.fit``) and
editing an unrelated function of the same module changes nothing.

Conservative where the source cannot tell: a module used as a value (``getattr(mod,
name)``, passed around), an attribute no unit of the module binds, a literal
``importlib.import_module("x")``, or code reading ``globals()``/``eval``/``exec`` key
every unit of that module. A module is project-local when it resolves to a file under the
project root, which is first on the worker's ``sys.path``; the standard library and
site-packages never enter. ``version`` replaces the whole key: it is part of the action's
text (``Call.text``), and such a target has no code parts.

Each file is analysed once per content digest (the Hasher's stat cache says whether it
changed): for the life of the process, and across processes in ``.flowmake/code.marshal``
(each file's analysis by path and content digest), so a command after an edit analyses the
edited files only.
"""

from __future__ import annotations

import ast
import marshal
import os
from collections.abc import Callable
from typing import Any

from flowmake import __version__
from flowmake.digest import hash_bytes
from flowmake.fsutil import atomic_write
from flowmake.model import Call, PluginAction, Target
from flowmake.plan.coderesolve import Node, Resolver, unit_of
from flowmake.plan.codeunits import ModuleInfo, Unit, analyse, parents, strip_docstrings
from flowmake.plan.fingerprint import Hasher
from flowmake.store import paths

# Past this many units, a key's code parts are one digest per module (each module's units
# together): a closure reaching most of a large project stays a small record and lock.
MAX_PARTS = 256

CACHE_FILE = paths.CODE_CACHE
CACHE_FORMAT = 1
MAX_CACHED = 20_000  # files whose analysis code.marshal keeps

# Analysed modules by (root, name, path), with the content digest they were read at, for
# the whole process: a checker made again after taking the build lock, another command
# in-process or the next build of `build --watch` parses nothing that did not change.
_PARSED: dict[tuple[str, str, str], tuple[str, ModuleInfo]] = {}
_COUNT = [0]


def parse_count() -> int:
    """How many source files this process has parsed (for tests and benchmarks)."""
    return _COUNT[0]


class CodeFingerprint:
    """Code keys of python targets of one project; memoized for the life of the object.

    Args:
        root: the project root.
        hasher: digests source files through the stat cache; a file whose digest did not
            change is not parsed again.
    """

    def __init__(self, root: str, hasher: Hasher | None = None,
                 state_dir: str | None = None, *,
                 kinds: Callable[[str], Any] | None = None) -> None:
        self.root = root
        self.kinds = kinds  # a plugin kind's instance by key (flowmake.kinds.TargetKind)
        self.hasher = hasher or Hasher(root)
        self.state_dir = state_dir  # where code.marshal lives; None: kept in memory only
        self._stored: dict[str, Any] | None = None  # code.marshal's entries, read on need
        self._fresh: dict[str, Any] = {}  # analyses made here, for save()
        self._paths: dict[str, str | None] = {}
        self._closures: dict[str, tuple[dict[str, str], list[str]]] = {}
        self._edges: dict[Node, tuple[Node, ...]] = {}
        self._closed: dict[Node, frozenset[Node]] = {}
        self._parts: dict[frozenset[Node], tuple[dict[str, str], list[str]]] = {}

    def parts(self, target: Target) -> dict[str, str]:
        """``{qualified name: digest}`` of a python target's code; empty with ``version``."""
        action = target.action
        if isinstance(action, PluginAction) and action.version is None:
            return self.kind_key(action)[0]
        if not isinstance(action, Call) or action.version is not None:
            return {}
        return self.closure(action.function)[0]

    def files(self, target: Target) -> list[str]:
        """Absolute paths of the source files behind ``parts(target)``: every module its
        code imports (an edit anywhere in them may change the parts)."""
        action = target.action
        if isinstance(action, PluginAction) and action.version is None:
            return self.kind_key(action)[1]
        if not isinstance(action, Call) or action.version is not None:
            return []
        return [os.path.join(self.root, p) for p in self.closure(action.function)[1]]

    def kind_key(self, action: PluginAction) -> tuple[dict[str, str], list[str]]:
        """A plugin kind's code parts and (absolute) files. The kind is asked again only
        when a file's content changed (the stat cache says when): the parts are kept in
        code.marshal with the files' digests, so an unchanged notebook loads no plugin,
        and one re-saved with the same code costs one digest and its kind's parse."""
        memo = "\0" + action.text
        if memo not in self._closures:
            if self._stored is None:
                self._stored = self._read_cache()
            entry: Any = self._fresh.get(memo) or self._stored.get(memo)
            try:
                if entry[0] == action.text and entry[2] == self._signature(entry[1]):
                    self._closures[memo] = (dict(entry[3]), list(entry[1]))
            except (TypeError, ValueError, IndexError, KeyError):
                pass  # None, or another shape: asked again
        if memo not in self._closures:
            if self.kinds is None:
                raise ValueError(f"no kind finder for {action.kind!r} targets")
            kind = self.kinds(action.kind)
            files = list(kind.code_files(action, self.root))
            parts = dict(kind.code_parts(action, self.root))
            self._fresh[memo] = (action.text, files, self._signature(files), parts)
            self._closures[memo] = (parts, files)
        return self._closures[memo]

    def _signature(self, files: list[str]) -> str:
        return "\0".join(str(self.hasher.digest(os.path.relpath(f, self.root)))
                          for f in files)

    def closure(self, function: str) -> tuple[dict[str, str], list[str]]:
        """The parts and root-relative files of ``module:function``."""
        if function not in self._closures:
            module, _, name = function.partition(":")
            info = self.module(module)
            if info is None:
                found: frozenset[Node] = frozenset()
            elif name in info.units:
                found = self.reach((module, name))
            else:  # not defined there (the worker will say so): the whole module
                found = frozenset().union(*(self.reach((module, n)) for n in info.units),
                                          self.reach((module, "")))
            if found not in self._parts:
                self._parts[found] = self._describe(found)
            self._closures[function] = self._parts[found]
        return self._closures[function]

    def _describe(self, nodes: frozenset[Node]) -> tuple[dict[str, str], list[str]]:
        """Parts and files of a closure: one part per unit, or past MAX_PARTS units one
        per module, the digest of all its units (an edit anywhere in it changes that)."""
        infos = [i for i in map(self.module, {module for module, _ in nodes}) if i is not None]
        files = sorted(i.path for i in infos)
        if len(nodes) > MAX_PARTS:
            return {i.name: i.digest for i in sorted(infos)}, files
        grouped: dict[str, list[str]] = {}
        modules = {i.name: i for i in infos}
        for module, name in nodes:
            unit = unit_of(modules[module], name)
            grouped.setdefault(f"{module}.{name}" if name else module, []).append(unit.digest)
        parts = {q: d[0] if len(d) == 1 else hash_bytes("\x1f".join(sorted(d)))
                 for q, d in sorted(grouped.items())}
        return parts, files

    def reach(self, start: Node) -> frozenset[Node]:
        """Every unit reachable from ``start`` (itself included), memoized per strongly
        connected component (Tarjan's algorithm, iterative): targets share closures."""
        closed = self._closed
        if start in closed:
            return closed[start]
        index: dict[Node, int] = {start: 0}
        low = dict(index)
        stack, on_stack = [start], {start}
        work = [(start, iter(self.edges(start)))]
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt in closed:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(self.edges(nxt))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    self._close(node, stack, on_stack)
        return closed[start]

    def _close(self, root: Node, stack: list[Node], on_stack: set[Node]) -> None:
        """Pop one component off ``stack``: its closure is its members and their
        successors' closures (all closed already: Tarjan closes successors first)."""
        members = []
        while True:
            node = stack.pop()
            on_stack.discard(node)
            members.append(node)
            if node == root:
                break
        found = set(members)
        for node in members:
            for nxt in self.edges(node):
                if nxt in self._closed:
                    found |= self._closed[nxt]
        frozen = frozenset(found)
        for node in members:
            self._closed[node] = frozen

    def edges(self, node: Node) -> tuple[Node, ...]:
        """The units one unit reaches directly (its module's body for a definition)."""
        if node not in self._edges:
            module, name = node
            info = self.module(module)
            found: set[Node] = set()
            if info is not None:
                resolver = Resolver(self, found)
                resolver.follow(info, unit_of(info, name))
                if name:
                    found.add((module, ""))
                else:
                    found.update((p, "") for p in parents(module)[:-1]
                                 if self.locate(p) is not None)
            found.discard(node)
            self._edges[node] = tuple(sorted(found))
        return self._edges[node]

    def module(self, name: str) -> ModuleInfo | None:
        """A project module by dotted name; None when it is not a file under the root."""
        path = self.locate(name)
        if path is None:
            return None
        digest = self.hasher.digest(path)
        if digest is None:
            return None
        key = (self.root, name, path)
        known = _PARSED.get(key)
        if known is None or known[0] != digest:
            info = self._stored_info(name, path, digest)
            if info is None:
                _COUNT[0] += 1
                with open(os.path.join(self.root, path), "rb") as f:
                    info = analyse(name, path, f.read(), digest)
                self._fresh[path] = (name, digest, _plain(info))
            known = _PARSED[key] = (digest, info)
        return known[1]

    # -- code.marshal -----------------------------------------------------------------

    def _stored_info(self, name: str, path: str, digest: str) -> ModuleInfo | None:
        """The analysis code.marshal holds for this content, if any."""
        if self._stored is None:
            self._stored = self._read_cache()
        entry: Any = self._stored.get(path)
        try:
            if entry[0] == name and entry[1] == digest:
                return _revive(entry[2])
        except (TypeError, ValueError, IndexError, KeyError):
            pass  # None, or an entry of another shape: analysed again
        return None

    def _read_cache(self) -> dict[str, Any]:
        if self.state_dir is None:
            return {}
        try:
            with open(os.path.join(self.state_dir, CACHE_FILE), "rb") as f:
                header, entries = marshal.loads(f.read())
        except (OSError, EOFError, ValueError, TypeError):
            return {}
        return entries if header == _cache_header() and isinstance(entries, dict) else {}

    def save(self) -> None:
        """Write code.marshal when this process analysed a file it did not hold."""
        if not self._fresh or self.state_dir is None:
            return
        if self._stored is None:
            self._stored = self._read_cache()
        entries = {**self._stored, **self._fresh}
        if len(entries) > MAX_CACHED:  # the ones analysed now, then the others as found
            entries = dict(list(self._fresh.items()) + [
                (p, e) for p, e in self._stored.items() if p not in self._fresh
            ][: max(0, MAX_CACHED - len(self._fresh))])
        try:
            atomic_write(os.path.join(self.state_dir, CACHE_FILE),
                         marshal.dumps((_cache_header(), entries)), fsync=False)
        except OSError:
            return  # a read-only state: analysed again next time
        self._stored, self._fresh = entries, {}

    def locate(self, name: str) -> str | None:
        """``pkg/mod.py`` or ``pkg/mod/__init__.py`` under the root, as the worker's
        ``sys.path[0]`` would find it; None for anything else."""
        if name not in self._paths:
            rel = name.replace(".", "/")
            self._paths[name] = None
            if name and all(p.isidentifier() for p in name.split(".")):
                for candidate in (f"{rel}.py", f"{rel}/__init__.py"):
                    if os.path.isfile(os.path.join(self.root, candidate)):
                        self._paths[name] = candidate
                        break
        return self._paths[name]


def _cache_header() -> tuple[Any, ...]:
    """What code.marshal's analyses depend on besides each file: the analysis code."""
    from flowmake.plan import codeunits as codeunits

    try:
        stamp = os.stat(codeunits.__file__).st_mtime_ns
    except OSError:
        stamp = 0
    return (CACHE_FORMAT, __version__, stamp)


def _plain(info: ModuleInfo) -> tuple[Any, ...]:
    """An analysis as marshal's plain values."""
    return (info.name, info.path, info.digest, tuple(info.body),
            {n: tuple(u) for n, u in info.units.items()}, info.star, info.defined)


def _revive(plain: tuple[Any, ...]) -> ModuleInfo:
    name, path, digest, body, units, star, defined = plain
    return ModuleInfo(name, path, digest, Unit(*body), {n: Unit(*u) for n, u in units.items()},
                      star, defined)


def normalized(tree: ast.Module) -> str:
    """The AST without positions and docstrings, as text (comments never reach the AST)."""
    strip_docstrings(tree)
    return ast.dump(tree, include_attributes=False)
