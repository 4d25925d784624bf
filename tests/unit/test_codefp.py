"""Code fingerprints (codefp.py): which modules enter, and which edits change them."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

from flowmake.model import Call, Shell, Target
from flowmake.plan import codefp as codefp
from flowmake.plan.codefp import CodeFingerprint, normalized
from flowmake.plan.codeunits import make_unit
from flowmake.plan.fingerprint import Hasher


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


def test_the_closure_holds_what_the_function_reaches(tmp_path: Path) -> None:
    write(tmp_path, {k: v for k, v in PROJECT.items() if k != "json.py"})
    # Each imported module's body (its imports and top-level code); of the definitions,
    # only those the function reaches: helper, deep.VALUE, and all of pkg.dynamic
    # (imported by import_module: used whole). pkg.lazy.X and pkg.config.NAME are not.
    assert sorted(fingerprint(tmp_path)) == [
        "pkg", "pkg.config", "pkg.dynamic", "pkg.dynamic.Y", "pkg.lazy", "pkg.steps",
        "pkg.steps.run", "pkg.sub", "pkg.sub.deep", "pkg.sub.deep.VALUE", "pkg.util",
        "pkg.util.helper"]


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
        assert sorted(fingerprint(root, "steps:run")) == ["steps", "steps.run"]
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
    assert {m for m in before if before[m] != after[m]} == {"pkg.sub.deep.VALUE"}
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
    assert list(first) == ["steps"] and first["steps"].startswith("unparsed:")
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


# -- function level -------------------------------------------------------------------


MODEL = {
    "pipeline/__init__.py": "",
    "pipeline/helpers.py": """
        SCALE = 2
        UNUSED = 3


        def base():
            return 10 * SCALE


        def other():
            return 0
    """,
    "pipeline/model.py": """
        import math

        from pipeline import helpers
        from pipeline.helpers import base as b

        LR = 0.1


        def fit():
            return helpers.base() + _penalty()


        def _penalty():
            return math.sqrt(LR)


        def predict():
            return b() + 1


        class Model:
            def run(self):
                return fit()

            def also(self):
                return 1


        if __name__ == "__main__":
            print(predict())
    """,
}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {q for q in before.keys() | after.keys() if before.get(q) != after.get(q)}


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_a_function_key_holds_what_it_uses(tmp_path: Path) -> None:
    write(tmp_path, MODEL)
    assert sorted(fingerprint(tmp_path, "pipeline.model:fit")) == [
        "pipeline", "pipeline.helpers", "pipeline.helpers.SCALE", "pipeline.helpers.base",
        "pipeline.model", "pipeline.model.LR", "pipeline.model._penalty",
        "pipeline.model.fit"]
    # From-imported under another name; the __main__ block is not part of any key.
    assert "pipeline.model.fit" not in fingerprint(tmp_path, "pipeline.model:predict")
    assert "pipeline.helpers.base" in fingerprint(tmp_path, "pipeline.model:predict")


def test_editing_an_unrelated_function_changes_no_key(tmp_path: Path) -> None:
    write(tmp_path, MODEL)
    fit, predict = (fingerprint(tmp_path, f"pipeline.model:{f}") for f in ("fit", "predict"))
    edit(tmp_path, "pipeline/model.py", "return b() + 1", "return b() + 2")
    assert fingerprint(tmp_path, "pipeline.model:fit") == fit
    assert changed(predict, fingerprint(tmp_path, "pipeline.model:predict")) == {
        "pipeline.model.predict"}
    edit(tmp_path, "pipeline/helpers.py", "return 0", "return 1")  # other(): nobody's
    edit(tmp_path, "pipeline/helpers.py", "UNUSED = 3", "UNUSED = 4")
    edit(tmp_path, "pipeline/model.py", "print(predict())", "print(fit())")  # __main__
    assert fingerprint(tmp_path, "pipeline.model:fit") == fit
    edit(tmp_path, "pipeline/helpers.py", "SCALE = 2", "SCALE = 5")  # a value fit uses
    assert changed(fit, fingerprint(tmp_path, "pipeline.model:fit")) == {
        "pipeline.helpers.SCALE"}


def test_a_class_is_one_unit_and_reaches_what_its_methods_use(tmp_path: Path) -> None:
    write(tmp_path, MODEL)
    parts = fingerprint(tmp_path, "pipeline.model:Model")
    assert {"pipeline.model.Model", "pipeline.model.fit", "pipeline.helpers.base"} <= set(parts)
    edit(tmp_path, "pipeline/model.py", "return 1\n", "return 2\n")
    assert changed(parts, fingerprint(tmp_path, "pipeline.model:Model")) == {
        "pipeline.model.Model"}


def test_module_level_code_enters_every_key_of_the_module(tmp_path: Path) -> None:
    write(tmp_path, {
        "steps.py": """
            import helpers

            CONFIG = helpers.load()


            @helpers.register
            def a():
                return 1


            def b():
                return 2
        """,
        "helpers.py": """
            def load():
                return {}


            def register(f):
                return f


            def unused():
                return 0
        """,
    })
    a, b = fingerprint(tmp_path, "steps:a"), fingerprint(tmp_path, "steps:b")
    # The body runs on import: its calls and decorators, and what they use.
    assert {"steps", "helpers.load", "helpers.register"} <= set(b)
    assert "helpers.unused" not in b and "steps.a" not in b
    edit(tmp_path, "steps.py", "CONFIG = helpers.load()", "CONFIG = helpers.load() or 1")
    assert changed(a, fingerprint(tmp_path, "steps:a")) == {"steps"}
    assert changed(b, fingerprint(tmp_path, "steps:b")) == {"steps"}
    b = fingerprint(tmp_path, "steps:b")
    edit(tmp_path, "helpers.py", "return {}", "return {'x': 1}")
    assert changed(b, fingerprint(tmp_path, "steps:b")) == {"helpers.load"}


def test_attribute_chains_through_packages_and_re_exports(tmp_path: Path) -> None:
    write(tmp_path, {
        "pkg/__init__.py": "from .impl import exported\n",
        "pkg/impl.py": "def exported():\n    return 1\n\ndef hidden():\n    return 2\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "def f():\n    return 3\n\ndef g():\n    return 4\n",
        "steps.py": """
            import pkg
            import pkg.sub.deep
            from pkg import exported


            def run():
                return exported() + pkg.sub.deep.f() + pkg.exported()
        """,
    })
    parts = fingerprint(tmp_path, "steps:run")
    assert {"pkg.impl.exported", "pkg.sub.deep.f"} <= set(parts)
    assert "pkg.impl.hidden" not in parts and "pkg.sub.deep.g" not in parts


def test_star_imports_and_local_imports_are_followed(tmp_path: Path) -> None:
    write(tmp_path, {
        "base.py": "def one():\n    return 1\n\ndef two():\n    return 2\n",
        "mid.py": "from base import *\n",
        "steps.py": """
            from mid import *


            def run():
                from base import two as second
                return one() + second()
        """,
    })
    parts = fingerprint(tmp_path, "steps:run")
    assert {"base.one", "base.two", "mid", "base"} <= set(parts)


@pytest.mark.parametrize("use", [
    "getattr(helpers, 'f')()",  # the module as a value: every unit of it
    "helpers.not_defined_here()",  # an attribute no unit binds (set at run time?)
])
def test_a_module_used_opaquely_is_used_whole(tmp_path: Path, use: str) -> None:
    write(tmp_path, {
        "helpers.py": "def f():\n    return 1\n\ndef g():\n    return 2\n",
        "steps.py": f"import helpers\n\n\ndef run():\n    return {use}\n",
    })
    assert {"helpers.f", "helpers.g"} <= set(fingerprint(tmp_path, "steps:run"))


def test_globals_or_eval_reach_every_unit_of_their_module(tmp_path: Path) -> None:
    write(tmp_path, {"steps.py": "def run():\n    return globals()['g']()\n\n"
                                 "def g():\n    return 1\n"})
    assert "steps.g" in fingerprint(tmp_path, "steps:run")


def test_import_cycles_end(tmp_path: Path) -> None:
    write(tmp_path, {
        "a.py": "import b\n\ndef f():\n    return b.g()\n",
        "b.py": "import a\n\ndef g():\n    return a.f()\n",
    })
    assert sorted(fingerprint(tmp_path, "a:f")) == ["a", "a.f", "b", "b.g"]


def test_an_undefined_function_keys_its_whole_module(tmp_path: Path) -> None:
    write(tmp_path, {"steps.py": "def a():\n    return 1\n\nB = 2\n"})
    assert sorted(fingerprint(tmp_path, "steps:missing")) == ["steps", "steps.B", "steps.a"]


def test_files_are_every_module_the_code_imports(tmp_path: Path) -> None:
    write(tmp_path, MODEL)
    files = CodeFingerprint(str(tmp_path)).files(target("pipeline.model:predict"))
    assert files == [str(tmp_path / p) for p in (
        "pipeline/__init__.py", "pipeline/helpers.py", "pipeline/model.py")]


@pytest.mark.parametrize(("source", "package", "expected"), [
    ("import a.b.c", "", ["a", "a.b", "a.b.c"]),
    ("from a.b import c, d", "", ["a", "a.b", "a.b.c", "a.b.d"]),
    ("from . import x", "pkg", ["pkg", "pkg.x"]),
    ("from .m import y", "pkg.sub", ["pkg", "pkg.sub", "pkg.sub.m", "pkg.sub.m.y"]),
    ("from .. import z", "pkg.sub", ["pkg", "pkg.z"]),
    ("from ... import w", "pkg", []),  # beyond the top-level package: ignored
    ("from a import *", "", ["a"]),
    ("def f():\n    import q.r", "", ["q", "q.r"]),  # inside a function too
])
def test_the_modules_an_import_loads(source: str, package: str, expected: list[str]) -> None:
    assert sorted(make_unit(ast.parse(source).body, package).loads) == expected


@pytest.mark.parametrize(("source", "expected"), [
    ("__import__('q')", ["q"]),
    ("importlib.import_module('pkg.x')", ["pkg.x"]),
    ("importlib.import_module(name)", []),  # not a literal: cannot be known
])
def test_literal_dynamic_imports_are_used_whole(source: str, expected: list[str]) -> None:
    assert list(make_unit(ast.parse(source).body, "").wholes) == expected
