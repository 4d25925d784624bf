"""call_function: a notebook's code cells run as a module in this process, then one of
its functions is called (no kernel)."""

from __future__ import annotations

import os
import pickle
import traceback

import pytest


def test_returns_the_function_value_with_kwargs_and_the_parameters_defaults(nb, notebooks):
    path = notebooks.write(
        "nb/train.ipynb",
        notebooks.md("# Train\nNotes."),
        notebooks.code("import json\nscale = 2", "parameters"),
        notebooks.code("def train(rows, lr=0.1):\n    return {'rows': rows * scale, 'lr': lr}"),
        notebooks.code("train(1)  # a top-level call, shown in Jupyter", count=3,
                       outputs=[{"output_type": "execute_result", "data": {"text/plain": "x"},
                                 "metadata": {}, "execution_count": 3}]))
    assert nb.call_function(path, "train", {"rows": 5, "lr": 0.5}) == {"rows": 10, "lr": 0.5}
    assert nb.call_function("nb/train.ipynb", "train", {"rows": 1}) == {"rows": 2, "lr": 0.1}


def test_magics_and_shell_lines_are_skipped(nb, notebooks, capsys):
    path = notebooks.write(
        "magic.ipynb",
        notebooks.code("%matplotlib inline\n%load_ext autoreload\n!pip list\nvalue = 1"),
        notebooks.code("%%bash\necho this is not python"),
        notebooks.code("if value:\n    !echo indented\n    value = 2\ndisplay(value, 'x')"),
        notebooks.code("def get():\n    return value"))
    assert nb.call_function(path, "get", {}) == 2
    assert capsys.readouterr().out == "2\n'x'\n"  # display() prints reprs


def test_top_level_code_runs_on_each_call_and_main_blocks_do_not(nb, notebooks):
    path = notebooks.write(
        "count.ipynb",
        notebooks.code("with open('calls.txt', 'a') as f:\n    f.write('x')"),
        notebooks.code("if __name__ == '__main__':\n    open('main.txt', 'w').close()"),
        notebooks.code("def f():\n    return __name__"))
    assert nb.call_function(path, "f", {}) == "_flowmake_nb_count"
    nb.call_function(path, "f", {})
    assert (notebooks.root / "calls.txt").read_text() == "xx"
    assert not (notebooks.root / "main.txt").exists()


def test_an_edited_notebook_is_read_again(nb, notebooks):
    path = notebooks.write("e.ipynb", notebooks.code("def f():\n    return 1"))
    assert nb.call_function(path, "f", {}) == 1
    notebooks.write("e.ipynb", notebooks.code("def f():\n    return 2"))
    assert nb.call_function(path, "f", {}) == 2


def test_classes_defined_in_the_notebook_work_and_their_values_pickle(nb, notebooks):
    path = notebooks.write(
        "model.ipynb",
        notebooks.code("from __future__ import annotations\nfrom dataclasses import dataclass"),
        notebooks.code("@dataclass\nclass Model:\n    weights: list[float]\n"
                       "    def fit(self) -> Model:\n        return self"),
        notebooks.code("def train() -> Model:\n    return Model([0.5]).fit()"))
    model = nb.call_function(path, "train", {})
    assert model.weights == [0.5]
    assert pickle.loads(pickle.dumps(model)) == model
    assert nb.call_function(path, "Model", {"weights": [1.0]}).weights == [1.0]  # dotted ok


def test_an_exception_in_the_function_propagates_with_the_cell_in_its_traceback(nb, notebooks):
    path = notebooks.write(
        "fail.ipynb",
        notebooks.md("# Fails"),
        notebooks.code("def helper(x):\n    # a comment\n    raise ValueError(f'bad {x}')"),
        notebooks.md("More text"),
        notebooks.code("def run(x):\n    return helper(x)"))
    with pytest.raises(ValueError, match=r"^bad 3$") as info:
        nb.call_function(path, "run", {"x": 3})
    frames = traceback.extract_tb(info.value.__traceback__)
    assert [(f.filename, f.lineno, f.name, f.line) for f in frames[-2:]] == [
        (f"{path}, cell 4", 2, "run", "return helper(x)"),
        (f"{path}, cell 2", 3, "helper", "raise ValueError(f'bad {x}')")]


def test_an_exception_at_the_top_level_names_the_cell(nb, notebooks):
    from flowmake.errors import FlowmakeError

    notebooks.write("top.ipynb", notebooks.md("# t"), notebooks.code("x = 1"),
                    notebooks.code("import os\nrows = []\nfirst = rows[0]"),
                    notebooks.code("def f():\n    return x"))
    with pytest.raises(nb.NotebookFailed) as info:
        nb.call_function("top.ipynb", "f", {})
    error = info.value
    assert isinstance(error, FlowmakeError) and error.exit_code == 1
    assert error.summary == "top.ipynb: cell 3 failed: IndexError: list index out of range"
    assert (error.cell, error.ename, error.evalue) == (3, "IndexError", "list index out of range")
    assert str(error).splitlines()[0] == error.summary
    assert 'File "top.ipynb, cell 3", line 3, in <module>\n    first = rows[0]' in error.traceback
    assert "flowmake_notebook" not in error.traceback  # the plugin's own frames are left out


def test_a_cell_that_is_not_python_names_the_cell(nb, notebooks):
    notebooks.write("syntax.ipynb", notebooks.code("x = 1"), notebooks.code("def f(:\n    pass"))
    with pytest.raises(nb.NotebookFailed, match=r"^syntax\.ipynb: cell 2 failed: SyntaxError"):
        nb.call_function("syntax.ipynb", "f", {})


def test_sys_exit_at_the_top_level_is_a_failure_not_an_exit(nb, notebooks):
    notebooks.write("exit.ipynb", notebooks.code("import sys\nsys.exit(3)"))
    with pytest.raises(nb.NotebookFailed, match=r"^exit\.ipynb: cell 1 failed: SystemExit: 3"):
        nb.call_function("exit.ipynb", "f", {})


def test_a_function_the_notebook_does_not_define(nb, notebooks):
    notebooks.write("defs.ipynb", notebooks.code("import os\nfrom json import dumps\nLR = 1"),
                    notebooks.code("def fit():\n    pass\nclass Model:\n    pass"))
    with pytest.raises(nb.NotebookFailed) as info:
        nb.call_function("defs.ipynb", "train", {})
    assert str(info.value) == ("defs.ipynb: defines no function 'train' (it defines:"
                               " Model, fit)")
    assert info.value.cell is None
    with pytest.raises(nb.NotebookFailed, match=r"^defs\.ipynb: 'LR' is a int, not a function"):
        nb.call_function("defs.ipynb", "LR", {})


def test_the_working_folder_is_the_callers(nb, notebooks):
    (notebooks.root / "data.txt").write_text("42")
    notebooks.write("sub/read.ipynb",
                    notebooks.code("def read():\n    return open('data.txt').read()"))
    assert nb.call_function(os.path.join("sub", "read.ipynb"), "read", {}) == "42"
