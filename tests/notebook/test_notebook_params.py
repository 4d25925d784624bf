"""How params are written into the injected cell (no kernel: the source is checked by
running it with exec)."""

from __future__ import annotations

import datetime
import math

import pytest

from flowmake.errors import ConfigError


def run(source: str) -> dict:
    scope: dict = {}
    exec(source, scope)
    scope.pop("__builtins__")
    scope.pop("datetime", None)
    return scope


def test_json_values_round_trip_as_python_assignments(nb):
    from flowmake_notebook.params import render

    params = {"lr": 0.1, "n": 3, "name": "it's \"quoted\"\n", "ok": True, "none": None,
              "layers": [64, 32], "opts": {"a": [1, {"b": False}], "c": "x"}}
    source = render(params)
    assert source.splitlines()[0] == "# Parameters injected by flowmake"
    assert "lr = 0.1\n" in source and "layers = [64, 32]\n" in source
    assert run(source) == params


def test_non_finite_floats_and_toml_dates(nb):
    from flowmake_notebook.params import render

    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    params = {"inf": math.inf, "ninf": -math.inf, "when": when, "day": datetime.date(2026, 1, 2),
              "at": datetime.time(7, 30), "values": [math.inf]}
    source = render(params)
    assert "import datetime\n" in source
    values = run(source)
    assert values == params
    assert math.isnan(run(render({"nan": math.nan}))["nan"])


@pytest.mark.parametrize(("params", "match"), [
    ({"not a name": 1}, r"params\.not a name: 'not a name' is not a Python name"),
    ({"class": 1}, r"params\.class: 'class' is not a Python name"),
    ({"s": {1, 2}}, r"params\.s: a set cannot be passed to a notebook"),
    ({"t": {"k": object()}}, r"params\.t\.k: a object cannot be passed"),
    ({"d": {1: "x"}}, r"params\.d: a notebook parameter's table keys must be strings"),
])
def test_what_cannot_be_a_parameter_is_a_config_error_naming_it(nb, params, match):
    from flowmake_notebook.params import render

    with pytest.raises(ConfigError, match=match):
        render(params)


def test_the_cell_goes_after_the_first_code_cell_tagged_parameters(nb, notebooks):
    from flowmake_notebook.params import injection_index

    md_tagged = {**notebooks.md("# x"), "metadata": {"tags": ["parameters"]}}
    cells = [notebooks.md("# t"), md_tagged, notebooks.code("a = 1"),
             notebooks.code("b = 1", "other", "parameters"), notebooks.code("c = 1", "parameters")]
    assert injection_index(cells) == 4
    assert injection_index(cells[:3]) == 0  # none: at the top
