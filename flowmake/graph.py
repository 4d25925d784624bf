"""The dependency graph: edges implied by outputs and ``deps``, order, cycles, selection.

Pure: no I/O. Built once from a Project and then only read.
"""

from __future__ import annotations

import bisect
import fnmatch
import graphlib
import re
from collections.abc import Iterable
from functools import lru_cache

from flowmake.errors import ConfigError, CycleError, UnknownTargetError, suggest
from flowmake.model import Project, Target, is_glob

_INSTANCE = re.compile(r"([^\[\]]+)\[(.*=.*)\]\Z")  # name[k=v,...]: a matrix instance


@lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob as a regex: ``*`` and ``?`` stay within one folder, ``**`` crosses them.

    As ``glob.glob`` (which finds the files), wildcards never match a leading dot.
    """
    out, i = [], 0
    while i < len(pattern):
        at_start = i == 0 or pattern[i - 1] == "/"
        if pattern.startswith("**/", i):
            out.append(r"(?:(?!\.)[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r"(?:(?!\.)[^/]*(?:/(?!\.)[^/]*)*)?")
            i += 2
        elif pattern[i] == "*":
            out.append(r"(?!\.)[^/]*" if at_start else "[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"(?!\.)[^/]" if at_start else "[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


class Graph:
    """Targets and their upstream edges, in declared order."""

    def __init__(self, targets: dict[str, Target], upstream: dict[str, tuple[str, ...]]) -> None:
        self.targets = targets
        self.upstream = upstream
        down: dict[str, list[str]] = {name: [] for name in targets}
        for name, ups in upstream.items():
            for up in ups:
                down[up].append(name)
        self.downstream = {name: tuple(v) for name, v in down.items()}
        self.producers = {o.path: t.name for t in targets.values() for o in t.outputs}
        self.output_paths = sorted(self.producers)
        self._order: list[str] | None = None
        # Inputs no target produces (must exist before a build): computed once, cached.
        self.sources = {
            name: tuple(i.path for i in t.inputs
                        if not (i.url or i.glob) and not self.producers_of(i.path))
            for name, t in targets.items()}

    def producers_of(self, path: str) -> list[str]:
        """The targets whose outputs an input path names, contains or lies inside."""
        return _producers_of(path, self.producers, self.output_paths)

    def __len__(self) -> int:
        return len(self.targets)

    def __contains__(self, name: object) -> bool:
        return name in self.targets

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """Topological order (upstream first) of ``names`` (default: all)."""
        if self._order is None:
            sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
            for name in self.targets:
                sorter.add(name, *self.upstream[name])
            try:
                self._order = list(sorter.static_order())
            except graphlib.CycleError as exc:
                cycle = list(exc.args[1])
                raise CycleError(cycle[::-1] if len(cycle) > 1 else cycle) from None
        if names is None:
            return list(self._order)
        chosen = names if isinstance(names, (set, frozenset, dict)) else set(names)
        return [n for n in self._order if n in chosen]

    def closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and everything upstream of them."""
        stack = list(names)
        if len(stack) == len(self.upstream) and set(stack) == self.upstream.keys():
            return set(stack)  # every target: nothing to walk
        seen: set[str] = set()
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self.upstream[name])
        return seen

    def downstream_cone(self, names: Iterable[str]) -> set[str]:
        """``names`` and everything that depends on them, transitively."""
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self.downstream[name])
        return seen

    def match(self, pattern: str) -> list[str]:
        """Target names matching a name, glob, whole matrix or matrix instance."""
        if pattern in self.targets:
            return [pattern]
        found = [n for n, t in self.targets.items() if t.matrix == pattern]
        instance = _INSTANCE.match(pattern)
        if not found and instance:
            # ``sweep[lr=0.1,depth=3]`` names the instance whatever the key order, and
            # ``sweep[depth=3,*]`` globs over values: its brackets are literal, not a class.
            base, inner = instance.groups()
            pairs = sorted(inner.split(","), key=lambda kv: kv.partition("=")[0])
            exact = f"{base}[{','.join(pairs)}]"
            if exact in self.targets:
                return [exact]
            literal = f"{base}[[]{inner.replace('[', '[[]')}[]]"
            return [n for n in self.targets if fnmatch.fnmatchcase(n, literal)]
        if not found and (is_glob(pattern)):
            found = [n for n, t in self.targets.items()
                     if fnmatch.fnmatchcase(n, pattern)
                     or (t.matrix and fnmatch.fnmatchcase(t.matrix, pattern))]
        return found

    def select(self, patterns: Iterable[str]) -> list[str]:
        """The targets ``patterns`` name, in declared order; unknown names raise."""
        chosen: set[str] = set()
        for pattern in patterns:
            found = self.match(pattern)
            if not found:
                names = {*self.targets, *(t.matrix for t in self.targets.values() if t.matrix)}
                raise UnknownTargetError(pattern, suggest(pattern, names))
            chosen.update(found)
        return [n for n in self.targets if n in chosen]


def build_graph(project: Project) -> Graph:
    """Edges from inputs that are other targets' outputs (files, folders, globs) and ``deps``."""
    targets = project.targets
    producers = {o.path: t.name for t in targets.values() for o in t.outputs}
    out_dirs = sorted(producers)  # for folder inputs that contain outputs, and vice versa
    matrices: dict[str, list[str]] = {}
    for t in targets.values():
        if t.matrix:
            matrices.setdefault(t.matrix, []).append(t.name)
    upstream: dict[str, tuple[str, ...]] = {}
    for target in targets.values():
        where = f"targets.{target.matrix or target.name}"
        ups: dict[str, None] = {}
        for inp in target.inputs:
            for producer in _producers_of(inp.path, producers, out_dirs):
                if producer == target.name:
                    raise _self_cycle(project, target.name, f"{where}.inputs",
                                      f"its input '{inp.path}' is (or holds) its own output")
                ups[producer] = None
        for dep in target.deps:
            names = [dep] if dep in targets else matrices.get(dep, [])
            if not names:
                close = suggest(dep, [*targets, *matrices])
                extra = f" (did you mean '{close}'?)" if close else ""
                raise ConfigError(f"unknown target '{dep}'{extra}", file=project.file.name,
                                  key=f"{where}.deps")
            if target.name in names:
                raise _self_cycle(project, target.name, f"{where}.deps",
                                  f"its deps name '{dep}'")
            ups.update(dict.fromkeys(names))
        upstream[target.name] = tuple(ups)
    graph = Graph(targets, upstream)
    graph.order()  # raise CycleError now, before anything runs
    return graph


def _self_cycle(project: Project, name: str, key: str, why: str) -> ConfigError:
    """A target that depends on itself: a cycle of one, as a config error at ``key``."""
    return ConfigError(f"dependency cycle: {name} -> {name} ({why})", file=project.file.name,
                       key=key)


def _producers_of(path: str, producers: dict[str, str], outputs: list[str]) -> list[str]:
    if path in producers:
        return [producers[path]]
    if is_glob(path):
        regex = glob_regex(path)
        return [producers[o] for o in outputs if regex.match(o)]
    inside = path.rstrip("/") + "/"
    # A folder input that holds outputs (``outputs`` is sorted: bisect to the prefix) ...
    found = []
    for o in outputs[bisect.bisect_left(outputs, inside):]:
        if not o.startswith(inside):
            break
        found.append(producers[o])
    # ... or an input inside an output folder.
    parts = path.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if parent in producers:
            found.append(producers[parent])
    return found
