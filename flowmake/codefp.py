"""Code fingerprints of python targets, by static analysis (user code is never imported).

A python target's code is its callable's module, the packages above it (their
``__init__.py`` runs on import) and every project-local module those import, transitively.
Each module's fingerprint is the digest of its normalized AST (``ast.dump`` without
positions, docstrings removed), so comments, blank lines and docstrings change nothing.
A module is project-local when it resolves to a file under the project root, which is
first on the worker's ``sys.path``; everything else (stdlib, site-packages) never enters.
``version`` replaces the whole fingerprint: it is part of the action's text
(``Call.text``), and such a target has no code parts.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .fingerprint import Hasher, hash_bytes
from .model import Call, Target


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed project module: its file, its fingerprint and what it imports."""

    name: str
    path: str  # root-relative
    digest: str
    imports: tuple[str, ...]


# Parsed modules by (name, path, content digest), for the whole process: a checker made
# again after taking the build lock, or by another command in-process, parses nothing twice.
_PARSED: dict[tuple[str, str, str], Module] = {}
_COUNT = [0]


def parse_count() -> int:
    """How many source files this process has parsed (for tests and benchmarks)."""
    return _COUNT[0]


class CodeFingerprint:
    """Fingerprints python targets of one project; memoized for the life of the process.

    Args:
        root: the project root.
        hasher: digests source files through the stat cache; a file whose digest did not
            change is not parsed again.
    """

    def __init__(self, root: str, hasher: Hasher | None = None) -> None:
        self.root = root
        self.hasher = hasher or Hasher(root)
        self._paths: dict[str, str | None] = {}
        self._closures: dict[str, list[Module]] = {}

    def parts(self, target: Target) -> dict[str, str]:
        """``{module name: digest}`` of a python target's code; empty with ``version``."""
        action = target.action
        if not isinstance(action, Call) or action.version is not None:
            return {}
        return {m.name: m.digest for m in self.closure(action.module)}

    def files(self, target: Target) -> list[str]:
        """Absolute paths of the source files behind ``parts(target)``."""
        action = target.action
        if not isinstance(action, Call) or action.version is not None:
            return []
        return [os.path.join(self.root, m.path) for m in self.closure(action.module)]

    def closure(self, module: str) -> list[Module]:
        """The module, its packages and the project modules they import, sorted by name."""
        if module not in self._closures:
            found: dict[str, Module] = {}
            pending = list(_with_parents(module))
            while pending:
                name = pending.pop()
                if name in found:
                    continue
                parsed = self.module(name)
                if parsed is None:
                    continue
                found[name] = parsed
                pending.extend(n for i in parsed.imports for n in _with_parents(i))
            self._closures[module] = [found[n] for n in sorted(found)]
        return self._closures[module]

    def module(self, name: str) -> Module | None:
        """A project module by dotted name; None when it is not a file under the root."""
        path = self.locate(name)
        if path is None:
            return None
        digest = self.hasher.digest(path)
        if digest is None:
            return None
        key = (name, path, digest)
        if key not in _PARSED:
            _PARSED[key] = self._parse(name, path, digest)
        return _PARSED[key]

    def locate(self, name: str) -> str | None:
        """``pkg/mod.py`` or ``pkg/mod/__init__.py`` under the root, as the worker's
        ``sys.path[0]`` would find it; None for anything else."""
        if name not in self._paths:
            rel = name.replace(".", "/")
            self._paths[name] = None
            for candidate in (f"{rel}.py", f"{rel}/__init__.py"):
                if os.path.isfile(os.path.join(self.root, candidate)):
                    self._paths[name] = candidate
                    break
        return self._paths[name]

    def _parse(self, name: str, path: str, file_digest: str) -> Module:
        _COUNT[0] += 1
        with open(os.path.join(self.root, path), "rb") as f:
            source = f.read()
        try:
            tree = ast.parse(source, filename=path)
        except (SyntaxError, ValueError):
            # The worker will report the error; until it is fixed any edit is a change.
            return Module(name, path, "unparsed:" + file_digest, ())
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        imports = tuple(sorted(set(imported_names(tree, package))))
        return Module(name, path, hash_bytes(normalized(tree)), imports)


def normalized(tree: ast.Module) -> str:
    """The AST without positions and docstrings, as text (comments never reach the AST)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:]
    return ast.dump(tree, include_attributes=False)


def imported_names(tree: ast.AST, package: str) -> Iterable[str]:
    """Every module name an ``import`` anywhere in the tree may load, made absolute.

    ``from a import b`` yields ``a`` and ``a.b`` (b may be a submodule); a literal
    ``importlib.import_module("x")`` counts too. Names that are not modules are dropped
    later, when they resolve to no file.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is None:
                continue
            if base:
                yield base
            for alias in node.names:
                if alias.name != "*":
                    yield f"{base}.{alias.name}" if base else alias.name
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            yield node.args[0].value  # type: ignore[attr-defined]


def _absolute(module: str | None, level: int, package: str) -> str | None:
    """The absolute name of ``from <level dots><module> import``; None if it escapes."""
    if level == 0:
        return module or ""
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or (level - 1 == len(parts) and not module):
        return None
    base = parts[: len(parts) - (level - 1)]
    if module:
        base.append(module)
    return ".".join(base)


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return (name in ("import_module", "__import__") and len(node.args) >= 1
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith("."))


def _with_parents(module: str) -> Iterable[str]:
    """``a.b.c`` → ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages too."""
    parts = module.split(".")
    return (".".join(parts[: i + 1]) for i in range(len(parts)))
