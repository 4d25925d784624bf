"""Code fingerprints (codefp.py): which modules enter, and which edits change them."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

from flowmake import codefp
from flowmake.codefp import CodeFingerprint, imported_names, normalized
from flowmake.fingerprint import Hasher
from flowmake.model import Call, Shell, Target


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def target(function: str, version: str | None = None) -> Target:
    return Target(name="t", action=Call(function, version))


def fingerprint(root: Path, function: str = "pkg.steps:run") -> dict[str, str]:
    return CodeFingerprint(str(root)).parts(target(function))


def norm(source: str) -> str:
    return normalized(ast.parse(textwrap.dedent(source)))


PROJECT = {
    "pkg/__init__.py": "from . import config\n",
    "pkg/config.py": "NAME = 'x'\n",
    "pkg/steps.py": """
        import json
        import os.path

        import numpy_like_but_absent
        from pkg.sub import deep
        from .util import helper
        from . import lazy as _lazy

        def run():
            import importlib
            importlib.import_module("pkg.dynamic")
            return helper(deep.VALUE)
    """,
    "pkg/util.py": "from .. import outside\n\ndef helper(x):\n    return x\n",
    "pkg/lazy.py": "X = 1\n",
    "pkg/dynamic.py": "Y = 2\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep.py": "from ..config import NAME\nVALUE = 3\n",
    "pkg/unused.py": "Z = 4\n",
    "json.py": "# not imported: a project module shadowing the stdlib would be, though\n",
}


def test_the_closure_holds_project_modules_only(tmp_path: Path) -> None:
    write(tmp_path, {k: v for k, v in PROJECT.items() if k != "json.py"})
    assert sorted(fingerprint(tmp_path)) == [
        "pkg", "pkg.config", "pkg.dynamic", "pkg.lazy", "pkg.steps", "pkg.sub",
        "pkg.sub.deep", "pkg.util"]


def test_a_project_module_first_on_sys_path_enters_even_with_a_stdlib_name(
        tmp_path: Path) -> None:
    write(tmp_path, PROJECT)  # json.py at the root shadows the stdlib for the worker too
    assert "json" in fingerprint(tmp_path)


def test_modules_outside_the_root_never_enter(tmp_path: Path) -> None:
    outside = tmp_path / "site-packages"
    write(outside, {"extlib.py": "A = 1\n"})
    root = tmp_path / "proj"
    write(root, {"steps.py": "import extlib\nimport os\nimport xxhash\n\ndef run():\n    pass\n"})
    sys.path.insert(0, str(outside))
    try:
        assert sorted(fingerprint(root, "steps:run")) == ["steps"]
    finally:
        sys.path.remove(str(outside))


def test_only_real_code_changes_change_the_digest() -> None:
    base = '''
        """Module docstring."""

        def f(x):
            """Doc."""
            return x + 1  # comment

        class C:
            """Class doc."""
            y = 2
    '''
    cosmetic = '''
        # a new leading comment
        """A different module docstring."""


        def f(x):
            return x + 1


        class C:
            y = 2  # trailing
    '''
    assert norm(base) == norm(cosmetic)
    assert norm(base) != norm(base.replace("x + 1", "x + 2"))
    assert norm(base) != norm(base.replace("y = 2", "y = 2\n            z = 3"))
    # A string that is not the first statement is code, not a docstring.
    assert norm("def f():\n    x = 1\n    'tail'\n") != norm("def f():\n    x = 1\n")


def test_editing_a_helper_changes_only_its_part(tmp_path: Path) -> None:
    write(tmp_path, {k: v for k, v in PROJECT.items() if k != "json.py"})
    before = fingerprint(tmp_path)
    (tmp_path / "pkg/sub/deep.py").write_text("from ..config import NAME\nVALUE = 4\n")
    after = fingerprint(tmp_path)
    assert {m for m in before if before[m] != after[m]} == {"pkg.sub.deep"}
    (tmp_path / "pkg/unused.py").write_text("Z = 5\n")
    assert fingerprint(tmp_path) == after


def test_version_replaces_the_fingerprint(tmp_path: Path) -> None:
    write(tmp_path, {"steps.py": "def run():\n    pass\n"})
    fp = CodeFingerprint(str(tmp_path))
    assert fp.parts(target("steps:run", version="3")) == {}
    assert fp.files(target("steps:run", version="3")) == []
    assert fp.files(target("steps:run")) == [str(tmp_path / "steps.py")]
    assert fp.parts(Target(name="s", action=Shell("true"))) == {}


def test_files_are_absolute_paths_of_the_closure(tmp_path: Path) -> None:
    write(tmp_path, {k: v for k, v in PROJECT.items() if k != "json.py"})
    files = CodeFingerprint(str(tmp_path)).files(target("pkg.steps:run"))
    assert len(files) == len(set(files)) == 8  # the closure, each file once
    assert str(tmp_path / "pkg/sub/__init__.py") in files
    assert str(tmp_path / "pkg/unused.py") not in files
    assert all(Path(f).is_absolute() and Path(f).is_file() for f in files)


def test_a_syntax_error_is_fingerprinted_by_content(tmp_path: Path) -> None:
    write(tmp_path, {"steps.py": "def run(:\n"})
    first = fingerprint(tmp_path, "steps:run")
    assert first["steps"].startswith("unparsed:")
    (tmp_path / "steps.py").write_text("def run(:\n  # still broken\n")
    assert fingerprint(tmp_path, "steps:run") != first


def test_an_unknown_module_has_no_parts(tmp_path: Path) -> None:
    assert fingerprint(tmp_path, "nowhere:run") == {}


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    write(tmp_path, {"steps.py": "import helper\n\ndef run():\n    pass\n",
                     "helper.py": "H = 1\n"})
    hasher = Hasher(str(tmp_path))
    CodeFingerprint(str(tmp_path), hasher).parts(target("steps:run"))
    parsed = codefp.parse_count()
    # A second fingerprinter in the same process (as after taking the build lock).
    CodeFingerprint(str(tmp_path), Hasher(str(tmp_path))).parts(target("steps:run"))
    assert codefp.parse_count() == parsed
    (tmp_path / "helper.py").write_text("H = 2\n")
    CodeFingerprint(str(tmp_path), Hasher(str(tmp_path))).parts(target("steps:run"))
    assert codefp.parse_count() == parsed + 1


@pytest.mark.parametrize(("source", "package", "expected"), [
    ("import a.b.c", "", ["a.b.c"]),
    ("from a.b import c, d", "", ["a.b", "a.b.c", "a.b.d"]),
    ("from . import x", "pkg", ["pkg", "pkg.x"]),
    ("from .m import y", "pkg.sub", ["pkg.sub.m", "pkg.sub.m.y"]),
    ("from .. import z", "pkg.sub", ["pkg", "pkg.z"]),
    ("from ... import w", "pkg", []),  # beyond the top-level package: ignored
    ("from a import *", "", ["a"]),
    ("__import__('q')", "", ["q"]),
    ("importlib.import_module(name)", "", []),  # not a literal: cannot be known
])
def test_imported_names(source: str, package: str, expected: list[str]) -> None:
    assert sorted(imported_names(ast.parse(source), package)) == expected
