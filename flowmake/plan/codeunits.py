"""One project module read for function-level code keys: its units, names and imports.

A *unit* is a piece of a module that enters a key on its own:

* a top-level function or class, by its name (the whole class: every method);
* a module-level value (``THRESHOLD = 0.5``), by its name: every top-level statement
  binding the name, in order;
* the module's *body*: what runs when the module is imported and is not a definition:
  imports, calls (``CONFIG = load()``, ``register(f)``), decorator expressions,
  top-level ``if``/``try``/``for``/``with`` blocks, assignments to attributes or items.
  A name bound there (``CONFIG``) is the body's. ``if __name__ == "__main__":`` blocks
  never run on import and are left out, as are bare string statements (docstrings).

The body enters the key of every target whose code imports the module; a definition only
the keys of the targets that use it (codefp.py follows the names). Each unit's digest is
its AST without positions and docstrings, so comments, docstrings and formatting never
change a key. Nothing here imports user code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import NamedTuple

from flowmake.digest import hash_bytes

# ("module", "a.b"): ``import a.b as x``; ("from", "a", "y"): ``from a import y``
# (y is a name bound in ``a`` or its submodule ``a.y``).
Binding = tuple[str, ...]
# A name a unit reads, with the attributes read through it: ``np.linalg.norm`` is
# ("np", ("linalg", "norm")); a bare ``helper`` is ("helper", ()).
Ref = tuple[str, tuple[str, ...]]

# Names through which code may reach any name of its module: such a unit keys them all.
_DYNAMIC = frozenset({"globals", "vars", "eval", "exec"})


class Unit(NamedTuple):
    digest: str
    refs: tuple[Ref, ...]
    imports: dict[str, Binding]  # the names its own imports bind
    loads: tuple[str, ...]  # modules its imports may load (absolute; not all are files)
    wholes: tuple[str, ...]  # modules imported by a literal import_module("x"): used whole
    dynamic: bool  # reads globals()/vars()/eval/exec


class ModuleInfo(NamedTuple):
    name: str
    path: str  # root-relative
    digest: str  # of the body and every unit: the whole module's code
    body: Unit  # its imports are the module-level names bound by imports
    units: dict[str, Unit]  # top-level definitions and values, by name
    star: tuple[str, ...]  # modules of ``from x import *`` at top level
    defined: frozenset[str]  # names bound by the body (not by a unit)


def analyse(name: str, path: str, source: bytes, file_digest: str) -> ModuleInfo:
    """The units of one module; a file that does not parse is one body unit keyed by its
    content (the worker reports the error; until it is fixed any edit is a change)."""
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError):
        unparsed = Unit("unparsed:" + file_digest, (), {}, (), (), False)
        return ModuleInfo(name, path, unparsed.digest, unparsed, {}, (), frozenset())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    strip_docstrings(tree)
    body: list[ast.AST] = []
    by_name: dict[str, list[ast.AST]] = {}
    defined: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            by_name.setdefault(stmt.name, []).append(stmt)
            body.extend(stmt.decorator_list)  # decorators run on import
        elif _is_value(stmt):
            for bound in _bound_names(stmt):
                by_name.setdefault(bound, []).append(stmt)
        elif not _skipped(stmt):
            body.append(stmt)
            defined.update(_bound_names(stmt))
    star = tuple(sorted({base for stmt in tree.body for base in _stars(stmt, package)}))
    units = {n: make_unit(nodes, package) for n, nodes in by_name.items()}
    unit = make_unit(body, package)
    whole = hash_bytes("\x1f".join([unit.digest, *(f"{n}\0{u.digest}"
                                                   for n, u in sorted(units.items()))]))
    return ModuleInfo(name, path, whole, unit, units, star, frozenset(defined - set(units)))


def make_unit(nodes: list[ast.AST], package: str) -> Unit:
    """The digest, names read and imports of some statements (or expressions)."""
    digest = hash_bytes("\x1e".join(ast.dump(n, include_attributes=False) for n in nodes))
    refs: set[Ref] = set()
    imports: dict[str, Binding] = {}
    loads: set[str] = set()
    wholes: set[str] = set()
    stack = list(nodes)
    while stack:  # one pass: ast.walk and a generator per node cost more than the rest
        item = stack.pop()
        if isinstance(item, ast.Attribute):
            chain: list[str] = []
            base: ast.AST = item
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                refs.add((base.id, tuple(reversed(chain))))
                continue
            item = base
        if isinstance(item, ast.Name):
            refs.add((item.id, ()))
            continue
        if isinstance(item, (ast.Import, ast.ImportFrom)):
            _import(item, package, imports, loads)
        elif isinstance(item, ast.Global):
            refs.update((n, ()) for n in item.names)
        elif isinstance(item, ast.Call) and _is_dynamic_import(item):
            wholes.add(item.args[0].value)  # type: ignore[attr-defined]
        stack.extend(ast.iter_child_nodes(item))
    dynamic = any(name in _DYNAMIC and not chain for name, chain in refs)
    return Unit(digest, tuple(sorted(refs)), imports, tuple(sorted(loads)),
                tuple(sorted(wholes)), dynamic)


def strip_docstrings(tree: ast.AST) -> None:
    """Drop the docstring of the module and of every function and class in it."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]


def _is_value(stmt: ast.stmt) -> bool:
    """A module-level value: names (or tuples of names) bound to an expression that calls
    nothing (``X = 1``, ``NAMES = ["a", "b"]``, ``T: int = 3``). One that calls something
    (``CONFIG = load()``) runs code on import: it is the body's."""
    value: ast.expr | None
    if isinstance(stmt, ast.Assign):
        targets, value = stmt.targets, stmt.value
    elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        targets, value = [stmt.target], stmt.value
    else:
        return False
    if value is not None and any(isinstance(n, (ast.Call, ast.Await, ast.Yield, ast.NamedExpr))
                                 for n in ast.walk(value)):
        return False
    return all(_names_only(t) for t in targets)


def _names_only(target: ast.AST) -> bool:
    if isinstance(target, ast.Name):
        return True
    if isinstance(target, (ast.Tuple, ast.List)):
        return all(_names_only(t) for t in target.elts)
    if isinstance(target, ast.Starred):
        return _names_only(target.value)
    return False


def _bound_names(stmt: ast.AST) -> set[str]:
    """Names a statement binds at module level (not inside functions or classes it holds)."""
    found: set[str] = set()
    stack = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((a.asname or a.name.partition(".")[0]) for a in node.names
                         if a.name != "*")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and \
                node is not stmt:
            found.add(node.name)
            continue
        if not isinstance(node, ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return found


def _skipped(stmt: ast.stmt) -> bool:
    """A bare string (a docstring) or an ``if __name__ == "__main__":`` block."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return True
    if isinstance(stmt, ast.If) and not stmt.orelse and isinstance(stmt.test, ast.Compare):
        test = stmt.test
        sides = [test.left, *test.comparators]
        return (len(sides) == 2 and isinstance(test.ops[0], ast.Eq)
                and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
                and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))
    return False


def _import(node: ast.Import | ast.ImportFrom, package: str, imports: dict[str, Binding],
            loads: set[str]) -> None:
    """The names an import binds and the modules it may load."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            loads.update(parents(alias.name))
            if alias.asname:
                imports[alias.asname] = ("module", alias.name)
            else:
                top = alias.name.partition(".")[0]
                imports[top] = ("module", top)
        return
    base = absolute(node.module, node.level, package)
    if base is None:
        return
    if base:
        loads.update(parents(base))
    for alias in node.names:
        if alias.name == "*":
            continue
        loads.add(f"{base}.{alias.name}" if base else alias.name)
        imports[alias.asname or alias.name] = ("from", base, alias.name)


def _stars(stmt: ast.stmt, package: str) -> Iterable[str]:
    if isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
        base = absolute(stmt.module, stmt.level, package)
        if base:
            yield base


def absolute(module: str | None, level: int, package: str) -> str | None:
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


def parents(module: str) -> list[str]:
    """``a.b.c`` → ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages too."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]
