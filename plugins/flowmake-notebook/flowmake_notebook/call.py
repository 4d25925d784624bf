"""Calling one function of a notebook in this process, as a python target calls one.

The notebook's code cells run in order as the body of a fresh module (so its definitions
exist), then the function is called. Decisions:

- *All top-level code runs, on every call*: definitions, imports, and whatever else the
  cells do at the top level (reading data, training). Keep heavy work inside functions,
  or under ``if __name__ == "__main__":`` (the module is not ``__main__``).
- The cell tagged ``parameters`` runs as it is: its values are the module's defaults.
  The call's keyword arguments go to the function only.
- IPython syntax is skipped: a line whose first non-blank character is ``%`` or ``!``
  (line magics, shell commands) becomes ``pass``, and a cell starting with ``%%`` (a cell
  magic, whose body may not be Python) is left out whole. ``display`` prints its
  arguments' ``repr``; other IPython names (``get_ipython``) are not defined.
- A fresh module each call (nothing is kept between calls, so an edited notebook is
  read again). It is registered in ``sys.modules`` as ``_flowmake_nb_<stem>`` until the
  next call for that notebook, so the return value can be pickled.
"""

from __future__ import annotations
import __future__

import linecache
import os
import re
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any

from flowmake_notebook.errors import NotebookFailed
from flowmake_notebook.read import CodeCell, code_cells, read_notebook

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_IPYTHON_LINE = re.compile(r"^([ \t]*)[%!].*$", re.MULTILINE)


def call_function(path: str | os.PathLike[str], function: str,
                  kwargs: Mapping[str, Any]) -> Any:
    """Run the notebook's code as a module, then return ``function(**kwargs)``.

    ``function`` is a name the notebook defines (dotted for a class attribute:
    ``Model.fit``). An exception in the notebook's top-level code, a cell that is not
    valid Python, or a missing function raises NotebookFailed naming the cell; an
    exception raised by the function itself propagates unchanged (its traceback names
    the cells: ``File "nb.ipynb, cell 4", line 2, in train``).
    """
    name = os.fspath(path)
    module = load_module(name)
    return resolve(module, name, function)(**kwargs)


def load_module(path: str) -> types.ModuleType:
    """A new module holding what the notebook's code cells define (see the module doc)."""
    module = types.ModuleType(module_name(path))
    module.__dict__["display"] = _display
    sys.modules[module.__name__] = module
    flags = [0]  # __future__ imports stay in force for the later cells, as in IPython
    for cell in code_cells(read_notebook(path)):
        _run_cell(module, path, cell, flags)
    return module


def module_name(path: str) -> str:
    stem = os.path.splitext(os.path.basename(path))[0]
    return "_flowmake_nb_" + (re.sub(r"\W", "_", stem) or "notebook")


def python_source(source: str) -> str:
    """The cell as plain Python: IPython lines become ``pass`` (same line numbers); a
    cell magic (``%%...``) gives the empty string."""
    if source.lstrip().startswith("%%"):
        return ""
    return _IPYTHON_LINE.sub(lambda m: m.group(1) + "pass", source)


_FUTURE_FLAGS = [getattr(__future__, name).compiler_flag for name in __future__.all_feature_names]


def _run_cell(module: types.ModuleType, path: str, cell: CodeCell, flags: list[int]) -> None:
    code = python_source(cell.source)
    if not code.strip():
        return
    filename = f"{path}, cell {cell.number}"
    linecache.cache[filename] = (len(code), None, code.splitlines(keepends=True), filename)
    try:
        compiled = compile(code, filename, "exec", flags=flags[0], dont_inherit=True)
        flags[0] |= sum(f for f in _FUTURE_FLAGS if compiled.co_flags & f)
        exec(compiled, module.__dict__)
    except (Exception, SystemExit) as exc:
        summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
        raise NotebookFailed(path, f"failed: {summary}", cell=cell.number,
                             ename=type(exc).__name__, evalue=str(exc),
                             traceback=_user_traceback(exc)) from None


def _user_traceback(exc: BaseException) -> str:
    """The traceback without this plugin's frames (the cells' and libraries' stay)."""
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack
         if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR + os.sep)])
    return "".join(te.format())


def resolve(module: types.ModuleType, path: str, function: str) -> Callable[..., Any]:
    obj: Any = module
    for part in function.split("."):
        if not hasattr(obj, part):
            defined = sorted(n for n, v in vars(module).items()
                             if callable(v) and not n.startswith("_") and n != "display"
                             and getattr(v, "__module__", None) == module.__name__)
            raise NotebookFailed(path, f"defines no function {function!r} (it defines:"
                                       f" {', '.join(defined) or 'none'})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise NotebookFailed(path, f"{function!r} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def _display(*objs: Any, **_: Any) -> None:
    """IPython's ``display`` outside a kernel: each object's repr on stdout."""
    for obj in objs:
        print(repr(obj))
