"""code_digest: the code key of a notebook covers its code cells only (no kernel here;
the re-save by a real kernel is in test_notebook_run.py)."""

from __future__ import annotations

import json
import re

import pytest

from flowmake.errors import ConfigError

CELLS = ("import json", "lr = 0.1", "def train(lr):\n    return {'lr': lr}")


def write(notebooks, rel="train.ipynb", cells=CELLS, *, params_at=1, **kw):
    made = [notebooks.md("# Training")]
    made += [notebooks.code(src, *(("parameters",) if i == params_at else ()))
             for i, src in enumerate(cells)]
    return notebooks.write(rel, *made, **kw)


def test_a_digest_is_xxh3_128_hex(nb, notebooks):
    assert re.fullmatch(r"[0-9a-f]{32}", nb.code_digest(write(notebooks)))


def test_resaving_with_outputs_metadata_and_markdown_edits_keeps_the_digest(nb, notebooks):
    path = write(notebooks)
    before = nb.code_digest(path)
    data = json.loads(path.read_text())
    data["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    data["cells"][0]["source"] = ["# Training, rewritten\n", "with a second line"]
    for n, cell in enumerate(data["cells"][1:], 1):
        cell["execution_count"] = n
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
        cell["metadata"].update(collapsed=True, execution={"iopub.status.idle": "2026-01-01"})
        cell["source"] = "".join(cell["source"]).replace("\n", "\r\n") + "\n  \n"  # CRLF, str
    data["cells"][2]["metadata"]["tags"].insert(0, "keep-output")  # tags other than
    data["cells"][3]["metadata"]["tags"] = ["hide-input"]  # parameters do not count
    data["cells"].insert(2, {"cell_type": "code", "metadata": {}, "outputs": [],
                             "execution_count": None, "source": "   \n"})  # an empty cell
    data["cells"].append({"cell_type": "raw", "metadata": {}, "source": "raw text"})
    path.write_text(json.dumps(data, indent=4, sort_keys=True))
    assert nb.code_digest(path) == before


@pytest.mark.parametrize("change", ["edit", "comment", "reorder", "add", "remove", "tag"])
def test_any_code_change_changes_the_digest(nb, notebooks, change):
    base = nb.code_digest(write(notebooks, "a.ipynb"))
    cells, params_at = list(CELLS), 1
    if change == "edit":
        cells[1] = "lr = 0.2"
    elif change == "comment":  # compared as text: a comment is code (documented)
        cells[2] += "  # the model"
    elif change == "reorder":
        cells[0], cells[1] = cells[1], cells[0]
        params_at = 0  # the parameters cell is still `lr = 0.1`: only the order changed
    elif change == "add":
        cells.append("print('done')")
    elif change == "remove":
        cells.pop(0)
        params_at = 0
    else:  # the parameters tag moves: params would be injected elsewhere
        params_at = 2
    assert nb.code_digest(write(notebooks, "b.ipynb", cells, params_at=params_at)) != base


def test_markdown_cell_holding_code_text_is_not_code(nb, notebooks):
    one = notebooks.write("one.ipynb", notebooks.code("x = 1"))
    two = notebooks.write("two.ipynb", notebooks.md("x = 2"), notebooks.code("x = 1"))
    assert nb.code_digest(one) == nb.code_digest(two)


def test_an_nbformat_3_notebook_is_read_through_nbformat(nb, notebooks):
    old = notebooks.root / "old.ipynb"
    old.write_text(json.dumps({
        "nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"},
        "worksheets": [{"cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Old"},
            {"cell_type": "code", "collapsed": False, "input": "x = 1", "language": "python",
             "metadata": {}, "outputs": [], "prompt_number": 3}]}]}))
    new = notebooks.write("new.ipynb", notebooks.code("x = 1"))
    assert nb.code_digest(old) == nb.code_digest(new)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"cells": [', r"^bad\.ipynb:1: not a notebook: invalid JSON"),
    ('\n\n{"nbformat": 4, "cells": [1,]}', r"^bad\.ipynb:3: not a notebook: invalid JSON"),
    ("[1, 2]", r"^bad\.ipynb: not a Jupyter notebook"),
    ('{"nbformat": 4, "metadata": {}}', r"^bad\.ipynb: not a Jupyter notebook: no 'cells'"),
    ('{"nbformat": 4, "cells": [{"cell_type": "code"}]}', r"^bad\.ipynb: cell 1 is not a"),
    ("\udcff", r"^bad\.ipynb: cannot read the notebook"),
])
def test_a_file_that_is_not_a_notebook_is_a_config_error_naming_it(nb, notebooks, text,
                                                                  expected):
    path = notebooks.root / "bad.ipynb"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    with pytest.raises(ConfigError, match=expected) as info:
        nb.code_digest("bad.ipynb")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_a_missing_notebook_is_a_config_error(nb, notebooks):
    with pytest.raises(ConfigError, match=r"^notebooks/gone\.ipynb: no such notebook$"):
        nb.code_digest("notebooks/gone.ipynb")
