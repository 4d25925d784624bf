"""flowmake.graph: edges, order, cycles, selection, cones and path globs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from flowmake.config.toml_lines import locate
from flowmake.errors import ConfigError, CycleError, UnknownTargetError
from flowmake.graph import Graph, build_graph, glob_regex
from flowmake.model import Project, Settings, Shell, Target

from .helpers import line_of

PIPELINE = """
    [targets.raw]
    cmd = "fetch > ${outputs}"
    inputs = ["scripts/fetch.py"]
    outputs = ["data/raw.csv"]

    [targets.clean]
    cmd = "clean"
    inputs = { table = "data/raw.csv" }
    outputs = ["data/clean.parquet"]

    [targets.sweep]
    matrix = { lr = [0.1, 0.01], depth = [3, 5] }
    cmd = "fit"
    inputs = ["data/clean.parquet"]
    outputs = ["models/fit-${lr}-${depth}.pkl"]

    [targets.pick]
    cmd = "pick"
    inputs = ["models/*.pkl"]
    outputs = ["reports/best.txt"]

    [targets.report]
    cmd = "report"
    inputs = ["reports"]
    outputs = ["site/index.html"]
    deps = ["lint"]

    [targets.lint]
    cmd = "ruff"
    inputs = ["src/**/*.py"]

    [targets.fit_all]
    cmd = "true"
    deps = ["sweep"]
"""

SWEEP = ["sweep[depth=3,lr=0.1]", "sweep[depth=3,lr=0.01]",
         "sweep[depth=5,lr=0.1]", "sweep[depth=5,lr=0.01]"]


@pytest.fixture
def graph(load_flow) -> Graph:
    return build_graph(load_flow(PIPELINE))


def test_edges_from_outputs_to_inputs(graph):
    assert graph.upstream["raw"] == ()
    assert graph.upstream["clean"] == ("raw",)
    for name in SWEEP:
        assert graph.upstream[name] == ("clean",)
    assert graph.downstream["raw"] == ("clean",)
    assert set(graph.downstream["clean"]) == set(SWEEP)


def test_glob_input_matches_other_targets_outputs(graph):
    assert set(graph.upstream["pick"]) == set(SWEEP)


def test_folder_input_depends_on_outputs_inside_it_and_deps(graph):
    assert set(graph.upstream["report"]) == {"pick", "lint"}


def test_deps_naming_a_whole_matrix(graph):
    assert set(graph.upstream["fit_all"]) == set(SWEEP)


def test_input_inside_an_output_folder(load_flow):
    g = build_graph(load_flow("""
        [targets.make_dir]
        cmd = "mkdir -p models && touch models/m.pkl"
        outputs = ["models"]
        [targets.use]
        cmd = "cat models/m.pkl"
        inputs = ["models/m.pkl"]
    """))
    assert g.upstream["use"] == ("make_dir",)
    assert g.producers_of("models/m.pkl") == ["make_dir"]
    assert g.producers_of("models") == ["make_dir"]
    assert g.producers_of("elsewhere.txt") == []


def test_folder_prefix_is_not_a_false_match(load_flow):
    g = build_graph(load_flow("""
        [targets.a]
        cmd = "true"
        outputs = ["data2/x.csv", "data-old/y.csv"]
        [targets.b]
        cmd = "true"
        inputs = ["data"]
    """))
    assert g.upstream["b"] == ()


def test_glob_star_does_not_cross_folders_in_edges(load_flow):
    g = build_graph(load_flow("""
        [targets.deep]
        cmd = "true"
        outputs = ["data/sub/x.csv"]
        [targets.flat]
        cmd = "true"
        outputs = ["data/y.csv"]
        [targets.one_level]
        cmd = "true"
        inputs = ["data/*.csv"]
        [targets.all_levels]
        cmd = "true"
        inputs = ["data/**/*.csv"]
    """))
    assert g.upstream["one_level"] == ("flat",)
    assert set(g.upstream["all_levels"]) == {"deep", "flat"}


@pytest.mark.parametrize(("inputs", "deps", "key"), [
    ('["out/*.txt"]', "[]", "targets.t.inputs"),     # a glob matching its own output
    ('["out/a.txt"]', "[]", "targets.t.inputs"),     # the output itself
    ('["out"]', "[]", "targets.t.inputs"),           # a folder holding it
    ("[]", '["t"]', "targets.t.deps"),               # deps naming itself
])
def test_a_target_that_reads_its_own_output_or_deps_on_itself_is_a_cycle(
        load_flow, inputs, deps, key):
    project = load_flow(f"""
        [targets.t]
        cmd = "true"
        inputs = {inputs}
        outputs = ["out/a.txt"]
        deps = {deps}
    """)
    with pytest.raises(ConfigError, match=r"dependency cycle: t -> t") as info:
        build_graph(project)
    assert info.value.key == key


def test_an_instance_whose_deps_name_its_own_matrix_is_a_cycle(load_flow):
    project = load_flow("""
        [targets.m]
        matrix = { n = [1, 2] }
        cmd = "true"
        deps = ["m"]
    """)
    with pytest.raises(ConfigError, match=r"dependency cycle: m\[n=1\] -> m\[n=1\]"):
        build_graph(project)


def test_order_is_topological(graph):
    order = graph.order()
    assert sorted(order) == sorted(graph.targets)
    position = {name: i for i, name in enumerate(order)}
    for name, ups in graph.upstream.items():
        for up in ups:
            assert position[up] < position[name]


def test_order_of_a_subset_keeps_topological_order(graph):
    subset = ["report", "raw", "clean"]
    assert graph.order(subset) == ["raw", "clean", "report"]
    assert graph.order(iter(subset)) == ["raw", "clean", "report"]


def test_unknown_dep_is_config_error_with_key_and_suggestion(write_flow):
    path = write_flow("""
        [targets.clean]
        cmd = "true"

        [targets.train]
        cmd = "true"
        deps = ["clen"]
    """)
    from flowmake.config import load as config

    project = config.load(path)
    with pytest.raises(ConfigError) as info:
        build_graph(project)
    assert info.value.key == "targets.train.deps"
    assert "did you mean 'clean'" in info.value.detail
    # The graph knows no lines; the CLI finds it from the key.
    assert locate(path, info.value.key) == line_of(path, "deps =")


def test_cycle_error_carries_the_cycle(load_flow):
    project = load_flow("""
        [targets.a]
        cmd = "true"
        deps = ["c"]
        [targets.b]
        cmd = "true"
        deps = ["a"]
        [targets.c]
        cmd = "true"
        inputs = ["b.out"]
        [targets.d]
        cmd = "true"
        outputs = ["b.out"]
        deps = ["b"]
        [targets.free]
        cmd = "true"
    """)
    with pytest.raises(CycleError) as info:
        build_graph(project)
    path = info.value.path
    assert path[0] == path[-1]
    assert set(path) == {"a", "b", "c", "d"}
    assert len(path) == 5
    assert " -> ".join(path) in str(info.value)
    # Each step is an edge in one consistent direction (a -> c: a needs c).
    needs = {"a": {"c"}, "b": {"a"}, "c": {"d"}, "d": {"b"}}
    pairs = list(itertools.pairwise(path))
    assert all(y in needs[x] for x, y in pairs) or all(x in needs[y] for x, y in pairs)
    assert info.value.exit_code == 2


def test_two_target_cycle(load_flow):
    project = load_flow("""
        [targets.x]
        cmd = "true"
        inputs = ["y.txt"]
        outputs = ["x.txt"]
        [targets.y]
        cmd = "true"
        inputs = ["x.txt"]
        outputs = ["y.txt"]
    """)
    with pytest.raises(CycleError) as info:
        build_graph(project)
    assert sorted(info.value.path[:-1]) == ["x", "y"]
    assert info.value.path[0] == info.value.path[-1]


# -- selection ------------------------------------------------------------------------


def test_select_by_name_in_declared_order(graph):
    assert graph.select(["report", "raw"]) == ["raw", "report"]


def test_select_whole_matrix_and_instance(graph):
    assert graph.select(["sweep"]) == SWEEP
    assert graph.select(["sweep[depth=5,lr=0.1]"]) == ["sweep[depth=5,lr=0.1]"]


def test_select_instance_in_any_key_order(graph):
    assert graph.select(["sweep[lr=0.1,depth=5]"]) == ["sweep[depth=5,lr=0.1]"]


def test_select_instance_glob_over_values(graph):
    # The brackets of an instance name are literal, not a character class.
    assert graph.select(["sweep[depth=3,*]"]) == SWEEP[:2]
    assert graph.select(["sweep[*,lr=0.01]"]) == [SWEEP[1], SWEEP[3]]


def test_select_glob_over_names(graph):
    assert graph.select(["fit*"]) == ["fit_all"]
    assert graph.select(["sw*"]) == SWEEP
    assert graph.select(["*"]) == list(graph.targets)
    assert graph.select(["r*"]) == ["raw", "report"]


def test_select_deduplicates(graph):
    assert graph.select(["raw", "raw", "r*"]) == ["raw", "report"]


@pytest.mark.parametrize(("pattern", "suggestion"), [
    ("claen", "clean"),
    ("sweeep", "sweep"),
    ("repport", "report"),
    ("zzzzzz", None),
])
def test_unknown_target_suggests(graph, pattern, suggestion):
    with pytest.raises(UnknownTargetError) as info:
        graph.select(["raw", pattern])
    assert info.value.name == pattern
    assert info.value.suggestion == suggestion
    if suggestion:
        assert f"did you mean '{suggestion}'" in str(info.value)


def test_unknown_matrix_instance(graph):
    with pytest.raises(UnknownTargetError):
        graph.select(["sweep[depth=4,lr=0.1]"])


def test_closure_and_downstream_cone(graph):
    assert graph.closure(["clean"]) == {"clean", "raw"}
    assert graph.closure(["report"]) == {"report", "lint", "pick", *SWEEP, "clean", "raw"}
    assert graph.downstream_cone(["lint"]) == {"lint", "report"}
    assert graph.downstream_cone(["clean"]) == {"clean", *SWEEP, "pick", "report", "fit_all"}
    assert graph.downstream_cone(["report"]) == {"report"}
    assert graph.closure([]) == set()


def test_graph_container_protocol(graph):
    assert len(graph) == len(graph.targets) == 10
    assert "raw" in graph and "nope" not in graph


def test_graph_from_model_objects():
    targets = {
        "a": Target("a", Shell("true"), outputs=()),
        "b": Target("b", Shell("true"), deps=("a",)),
    }
    project = Project(Path("/nonexistent"), Path("/nonexistent/flow.toml"), Settings(), {},
                      targets)
    g = build_graph(project)
    assert g.order() == ["a", "b"]


# -- glob semantics -------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("data/*.csv", "data/a.csv", True),
    ("data/*.csv", "data/sub/a.csv", False),
    ("*.csv", "a.csv", True),
    ("*.csv", "data/a.csv", False),
    ("data/**/*.csv", "data/a.csv", True),
    ("data/**/*.csv", "data/x/y/z.csv", True),
    ("data/**/*.csv", "other/a.csv", False),
    ("**/*.py", "a.py", True),
    ("**/*.py", "src/pkg/a.py", True),
    ("src/**", "src/a/b/c.txt", True),
    ("src/**", "srcx/a.txt", False),
    ("data/?.csv", "data/a.csv", True),
    ("data/?.csv", "data/ab.csv", False),
    ("data/?.csv", "data//.csv", False),
    ("data/[ab].csv", "data/b.csv", True),
    ("data/[ab].csv", "data/c.csv", False),
    ("data/[!ab].csv", "data/c.csv", True),
    ("data/[!ab].csv", "data/a.csv", False),
    ("data/a+b.csv", "data/a+b.csv", True),   # regex metacharacters are literal
    ("data/a+b.csv", "data/aab.csv", False),
    ("data/*.csv", "data/a.csv.bak", False),  # anchored at the end
    ("data/*", "data/.hidden", False),  # no leading dot, as glob.glob
    ("data/.*", "data/.hidden", True),
    ("data/**/*.csv", "data/.git/a.csv", False),
    ("src/**", "src/.cache/x", False),
    ("data/?idden", "data/.idden", False),
    ("data/a*", "data/a.b", True),
])
def test_glob_regex(pattern, path, matches):
    assert bool(glob_regex(pattern).match(path)) is matches


@pytest.mark.parametrize("pattern", ["d/*", "d/**", "d/**/*.txt", "**/*.txt", "d/?.txt",
                                     "d/.*", "d/*/x.txt", "*"])
def test_glob_regex_agrees_with_glob(tmp_path, pattern):
    import glob

    files = ["a.txt", "d/a.txt", "d/.h.txt", "d/b.csv", "d/s/x.txt", "d/.g/x.txt",
             "d/s/.x.txt", "d/s/t/y.txt"]
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    found = {m for m in glob.glob(pattern, root_dir=tmp_path, recursive=True)
             if (tmp_path / m).is_file()}
    assert {f for f in files if glob_regex(pattern).match(f)} == found
