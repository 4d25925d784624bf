"""run_notebook in real Jupyter kernels (ipykernel's python3): each test starts one
(~1.5 s on the CI machine)."""

from __future__ import annotations

import json

import pytest


def outputs_text(cell: dict) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))


def test_params_go_after_the_parameters_cell_and_the_executed_copy_keeps_outputs(
        nb, notebooks):
    root = notebooks.root / "project"
    path = notebooks.write(
        "project/notebooks/train.ipynb",
        notebooks.md("# Train"),
        notebooks.code("lr = 0.1\nname = 'default'\nlayers = [8]", "parameters"),
        notebooks.code("import json, os\nprint('lr is', lr)\n%time total = sum(layers)"),
        notebooks.md("## Save"),
        notebooks.code("!echo from the shell\nos.makedirs('out', exist_ok=True)\n"
                       "json.dump({'lr': lr, 'name': name, 'layers': layers, 'opts': opts,\n"
                       "           'cwd': os.getcwd()}, open('out/result.json', 'w'))"))
    original = path.read_text()
    seen: list[str] = []
    result = nb.run_notebook(path, {"lr": 0.5, "layers": [64, 32], "opts": {"a": None}},
                             executed=root / "reports/train.ipynb", cwd=root,
                             on_output=seen.append)
    assert json.loads((root / "out/result.json").read_text()) == {
        "lr": 0.5, "name": "default", "layers": [64, 32], "opts": {"a": None},
        "cwd": str(root)}  # the kernel runs in cwd: relative paths are the project's
    copy = json.loads((root / "reports/train.ipynb").read_text())
    assert [c["cell_type"] for c in copy["cells"]] == ["markdown", "code", "code", "code",
                                                      "markdown", "code"]
    injected = copy["cells"][2]
    assert injected["metadata"]["tags"] == ["injected-parameters"]
    assert "".join(injected["source"]) == ("# Parameters injected by flowmake\nlr = 0.5\n"
                                           "layers = [64, 32]\nopts = {'a': None}\n")
    assert outputs_text(copy["cells"][3]).startswith("lr is 0.5\nCPU times:")
    assert "from the shell" in outputs_text(copy["cells"][5])
    assert [c.get("execution_count") for c in copy["cells"]] == [None, 1, 2, 3, None, 4]
    assert copy["metadata"]["language_info"]["name"] == "python"
    assert seen[0].startswith("lr is 0.5\n") and "from the shell" in seen[-1]
    assert len(result.cells) == 6 and path.read_text() == original  # the source is untouched
    assert not list((root / "reports").glob(".*"))  # no temporary file left


def test_without_a_parameters_cell_params_go_at_the_top(nb, notebooks, capfd):
    notebooks.write("top.ipynb", notebooks.md("# No parameters cell"),
                    notebooks.code("import warnings\nwarnings.warn('mine')\nprint(x * 2)"))
    nb.run_notebook("top.ipynb", {"x": 21}, executed="done.ipynb", cwd=notebooks.root)
    copy = json.loads((notebooks.root / "done.ipynb").read_text())
    assert copy["cells"][0]["metadata"]["tags"] == ["injected-parameters"]
    text = outputs_text(copy["cells"][2])
    assert text.startswith("42\n") and "UserWarning: mine" in text  # the code's warnings stay
    assert capfd.readouterr().err == ""  # not the kernel's start-up warnings (TCP, ...)


def test_a_failing_cell_names_its_number_and_traceback(nb, notebooks):
    from flowmake.errors import FlowmakeError

    notebooks.write(
        "nb/fail.ipynb",
        notebooks.md("# Fails in the fourth cell"),
        notebooks.code("print('before')"),
        notebooks.md("text"),
        notebooks.code("def load(rows):\n    if not rows:\n        raise ValueError('no rows')\n"
                       "load([])"),
        notebooks.code("print('never')"))
    with pytest.raises(nb.NotebookFailed) as info:  # params at the top shift nothing shown
        nb.run_notebook("nb/fail.ipynb", {"a": 1}, executed="out/fail.ipynb",
                        cwd=notebooks.root)
    error = info.value
    assert isinstance(error, FlowmakeError) and error.exit_code == 1
    assert error.summary == "nb/fail.ipynb: cell 4 failed: ValueError: no rows"
    assert (error.cell, error.ename, error.evalue) == (4, "ValueError", "no rows")
    message = str(error)
    assert message.startswith(error.summary + "\n")
    assert "\x1b" not in message  # ANSI colours stripped
    assert "----> 4 load([])" in message and "raise ValueError('no rows')" in message
    assert message.rstrip().endswith("ValueError: no rows")
    copy = json.loads((notebooks.root / "out/fail.ipynb").read_text())  # kept, up to the failure
    assert outputs_text(copy["cells"][2]) == "before\n"
    assert copy["cells"][4]["outputs"][0]["ename"] == "ValueError"
    assert copy["cells"][5]["outputs"] == []


def test_an_unknown_kernel_is_a_clear_error_before_anything_runs(nb, notebooks):
    notebooks.write("k.ipynb", notebooks.code("open('ran', 'w')"),
                    metadata={"kernelspec": {"name": "julia-1.9", "display_name": "Julia"}})
    with pytest.raises(nb.KernelUnavailable) as info:
        nb.run_notebook("k.ipynb", {}, executed="copy.ipynb", cwd=notebooks.root)
    assert str(info.value) == "k.ipynb: no Jupyter kernel named 'julia-1.9' (installed: python3)"
    assert info.value.exit_code == 2 and "ipykernel install" in info.value.hint
    assert not (notebooks.root / "copy.ipynb").exists() and not (notebooks.root / "ran").exists()
    with pytest.raises(nb.KernelUnavailable, match="no Jupyter kernel named 'nope'"):
        nb.run_notebook("k.ipynb", {}, cwd=notebooks.root, kernel_name="nope")


def test_a_notebook_resaved_by_a_real_run_keeps_its_code_digest(nb, notebooks):
    path = notebooks.write("m.ipynb", notebooks.code("%load_ext autoreload\nx = 1"),
                           notebooks.md("# Plot"), notebooks.code("x + 1"))
    nb.run_notebook(path, {}, executed=path, cwd=notebooks.root)  # saved over itself
    data = json.loads(path.read_text())
    assert "".join(data["cells"][2]["outputs"][0]["data"]["text/plain"]) == "2"
    before = notebooks.write("fresh.ipynb", notebooks.code("%load_ext autoreload\nx = 1"),
                             notebooks.code("x + 1"))
    assert nb.code_digest(path) == nb.code_digest(before)


@pytest.mark.slow
def test_a_cell_past_its_timeout_fails_naming_it(nb, notebooks):
    notebooks.write("slow.ipynb", notebooks.code("x = 1"),
                    notebooks.code("import time\ntime.sleep(60)"))
    with pytest.raises(nb.NotebookFailed, match=r"^slow\.ipynb: cell 2 timed out after 1 s$"):
        nb.run_notebook("slow.ipynb", {}, cwd=notebooks.root, timeout=1)
