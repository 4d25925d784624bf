"""The package's imports point down its stages (docs/architecture.md), and no module
imports itself back through others.

Every import counts, also one inside a function (it still ties the lower module to the
higher one); only imports under ``if TYPE_CHECKING:`` are exempt. ``from flowmake import
__version__`` reads the version the package defines and is the kernel's.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import flowmake

PACKAGE = Path(flowmake.__file__).parent

# From the bottom: a module may import its own layer and those below it.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "model", "fsutil", "digest", "graph", "fastpath", "options", "warm",
     "deadline"),  # the kernel
    ("hookspecs", "executor", "backends", "formats", "kinds"),  # the plugin contract
    ("config",),
    ("store",),
    ("plan",),
    ("cache",),
    ("plugin",),
    ("builtin",),
    ("schedule", "testing", "outcome", "signalgate", "jobs"),
    ("report",),
    ("cli",),
    ("resident",),  # the command's entry: a client, a server holding cli's imports
    ("api", "__init__", "__main__"),
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYER["__init__"] if len(parts) == 1 else LAYER[parts[1]]


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def type_only_nodes(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return found


def imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The flowmake modules an import statement loads (the version counts as kernel)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("flowmake.")]
    if not node.module or node.level or not node.module.startswith("flowmake"):
        return []
    found = []
    for alias in node.names:
        full = f"{node.module}.{alias.name}"
        if is_module(full):
            found.append(full)
        elif node.module != "flowmake" or alias.name != "__version__":
            found.append(node.module)
    return found


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = type_only_nodes(tree)
        targets = graph.setdefault(name, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skip:
                targets.update(m for m in imported(node) if m != name)
    return graph


def test_every_module_has_a_layer() -> None:
    unknown = {m for m in edges() if m != "flowmake" and m.split(".")[1] not in LAYER}
    assert not unknown, f"modules with no layer (add them to LAYERS): {sorted(unknown)}"


def test_imports_point_down() -> None:
    upward = sorted(f"{a} -> {b}" for a, targets in edges().items() for b in targets
                    if layer(b) > layer(a))
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle (its modules in order, the first repeated at the end), or []."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_no_import_cycles() -> None:
    assert cycle(edges()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    found = cycle(graph)
    assert found[0] == found[-1] and sorted(found[:-1]) == ["a", "b", "c"]
