"""Hypothesis properties of the core: order, cycles, plans after builds, keys, ``$$``.

Targets are built from the model directly (no flow.toml) and "built" by simulation: their
outputs are written and a record is stored exactly as the scheduler stores one, using the
real Checker, Hasher and SQLite Store.
"""

from __future__ import annotations

import itertools
import json
import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowmake.config.interpolate import UnknownReference, interpolate
from flowmake.errors import CycleError
from flowmake.graph import Graph, build_graph
from flowmake.model import Input, Output, Project, Settings, Shell, Target
from flowmake.plan.check import Checker, State
from flowmake.plan.fingerprint import Hasher
from flowmake.plan.reasons import Reason
from flowmake.store.db import Record, Store

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# -- random DAGs ----------------------------------------------------------------------


@st.composite
def dags(draw, min_nodes: int = 1, max_nodes: int = 10):
    """(names, ups, via_file, order): node i may depend on any j < i, by deps or by file.

    ``names`` are shuffled labels so that declared order is not the topological one.
    """
    n = draw(st.integers(min_nodes, max_nodes))
    ups = [sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
           for i in range(n)]
    via_file = {(i, j): draw(st.booleans()) for i in range(n) for j in ups[i]}
    names = draw(st.permutations([f"t{i}" for i in range(n)]))
    declared = draw(st.permutations(range(n)))
    return names, ups, via_file, declared


def project_of(dag, root: Path, extra_deps: dict[int, list[int]] | None = None,
               sources: dict[int, list[str]] | None = None) -> Project:
    names, ups, via_file, declared = dag
    targets: dict[str, Target] = {}
    for i in declared:
        inputs = [Input(p) for p in (sources or {}).get(i, [])]
        deps = []
        for j in ups[i]:
            if via_file[(i, j)]:
                inputs.append(Input(f"out/{names[j]}.txt"))
            else:
                deps.append(names[j])
        deps += [names[j] for j in (extra_deps or {}).get(i, [])]
        targets[names[i]] = Target(
            names[i], Shell(f"make {names[i]}"), inputs=tuple(inputs),
            outputs=(Output(f"out/{names[i]}.txt"),), deps=tuple(deps))
    return Project(root, root / "flow.toml", Settings(), {}, targets)


def ancestors(ups: list[list[int]], node: int) -> set[int]:
    seen: set[int] = set()
    stack = list(ups[node])
    while stack:
        j = stack.pop()
        if j not in seen:
            seen.add(j)
            stack.extend(ups[j])
    return seen


@FAST
@given(dags())
def test_order_respects_every_edge(dag):
    names, ups, _, _ = dag
    graph = build_graph(project_of(dag, Path("/nonexistent")))
    order = graph.order()
    assert sorted(order) == sorted(names)
    position = {name: k for k, name in enumerate(order)}
    for i, js in enumerate(ups):
        assert set(graph.upstream[names[i]]) == {names[j] for j in js}
        for j in js:
            assert position[names[j]] < position[names[i]]


@FAST
@given(dags(min_nodes=2), st.data())
def test_back_edge_raises_cycle_error_with_a_real_cycle(dag, data):
    names, ups, _, _ = dag
    candidates = [i for i in range(len(names)) if ups[i]]
    assume(candidates)
    low_end = data.draw(st.sampled_from(candidates))
    # An ancestor that now also depends on its descendant closes a cycle.
    ancestor = data.draw(st.sampled_from(sorted(ancestors(ups, low_end))))
    project = project_of(dag, Path("/nonexistent"), extra_deps={ancestor: [low_end]})
    with pytest.raises(CycleError) as info:
        build_graph(project)
    path = info.value.path
    needs = {names[i]: {names[j] for j in ups[i]} for i in range(len(names))}
    needs[names[ancestor]].add(names[low_end])
    assert len(path) >= 3 and path[0] == path[-1]
    assert len(set(path[:-1])) == len(path) - 1  # a simple cycle
    pairs = list(itertools.pairwise(path))
    forward = all(b in needs[a] for a, b in pairs)
    backward = all(a in needs[b] for a, b in pairs)
    assert forward or backward


# -- build, then plan -----------------------------------------------------------------


@st.composite
def built_dags(draw):
    """A DAG whose targets read shared source files (every target reads at least one)."""
    dag = draw(dags(max_nodes=8))
    n = len(dag[0])
    n_sources = draw(st.integers(1, 4))
    sources = {i: sorted(draw(st.sets(st.sampled_from([f"src/s{k}.txt" for k in
                                                          range(n_sources)]),
                                      min_size=1, max_size=2)))
               for i in range(n)}
    return dag, sources


def simulate_build(project: Project, store: Store) -> Graph:
    """Write every target's outputs in build order and store its record, as a build does."""
    graph = build_graph(project)
    for name in graph.order():
        target = graph.targets[name]
        for output in target.outputs:
            path = project.root / output.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name} built\n")
        hasher = Hasher(str(project.root))
        checker = Checker(graph, {}, hasher, environ={})
        parts, missing = checker.parts(target)
        assert parts is not None and not missing
        digests = {o.path: hasher.digest(o.path) for o in target.outputs}
        store.finish_target(1, name, "built", 0.0, [], "",
                            Record(name, checker.key(parts), json.dumps(parts),
                                   json.dumps(digests), 1, time.time(), 0.0))
    return graph


def plan_stale(graph: Graph, store: Store, root: Path) -> dict[str, list[Reason]]:
    checker = Checker(graph, store.records(), Hasher(str(root)), environ={})
    plan = checker.plan(graph.targets)
    assert [s.name for s in plan.steps] == graph.order()
    return {s.name: [r.reason for r in s.reasons] for s in plan.stale()}


def workspace(dag_and_sources):
    """A temp project folder with the source files written, and an open Store in it."""
    dag, sources = dag_and_sources
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    for path in {p for ps in sources.values() for p in ps}:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"source {path}\n")
    return tmp, root, project_of(dag, root, sources=sources)


@SLOW
@given(built_dags())
def test_a_build_followed_by_a_plan_is_empty(case):
    tmp, root, project = workspace(case)
    store = Store(root / ".flowmake")
    try:
        graph = simulate_build(project, store)
        assert plan_stale(graph, store, root) == {}
        # Before anything was built, everything is new.
        fresh_store = Store(root / "elsewhere")
        try:
            never = plan_stale(graph, fresh_store, root)
        finally:
            fresh_store.close()
        assert set(never) == set(graph.targets)
        assert all(Reason.NEW in reasons for reasons in never.values())
    finally:
        store.close()
        tmp.cleanup()


@SLOW
@given(built_dags(), st.data())
def test_changing_one_source_makes_exactly_its_downstream_cone_stale(case, data):
    tmp, root, project = workspace(case)
    store = Store(root / ".flowmake")
    try:
        graph = simulate_build(project, store)
        sources = case[1]
        source = data.draw(st.sampled_from(sorted({p for ps in sources.values() for p in ps})))
        readers = [case[0][0][i] for i, ps in sources.items() if source in ps]
        (root / source).write_text("changed\n")
        stale = plan_stale(graph, store, root)
        assert set(stale) == graph.downstream_cone(readers)
        for name, reasons in stale.items():
            if name in readers:
                assert Reason.INPUT in reasons
            else:
                assert reasons and set(reasons) == {Reason.UPSTREAM}
    finally:
        store.close()
        tmp.cleanup()


@SLOW
@given(built_dags(), st.data())
def test_tampering_with_one_output_makes_exactly_its_cone_stale(case, data):
    tmp, root, project = workspace(case)
    store = Store(root / ".flowmake")
    try:
        graph = simulate_build(project, store)
        victim = data.draw(st.sampled_from(sorted(graph.targets)))
        (root / "out" / f"{victim}.txt").write_text("tampered\n")
        stale = plan_stale(graph, store, root)
        assert set(stale) == graph.downstream_cone([victim])
        assert Reason.OUTPUT_MODIFIED in stale[victim]
    finally:
        store.close()
        tmp.cleanup()


# -- keys -----------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=8)


def shuffled(value, rng: random.Random):
    """The same value with every dict's insertion order shuffled (lists keep order)."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@SLOW
@given(
    params=st.dictionaries(st.text(min_size=1, max_size=6), json_values, max_size=6),
    project_params=st.dictionaries(st.text(min_size=1, max_size=6), json_scalars, max_size=4),
    inputs=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=6), max_size=6),
    env=st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=5), max_size=3),
    seed=st.integers(0, 2**32),
)
def test_key_is_independent_of_dict_order(params, project_params, inputs, env, seed):
    parts = {"action": "run", "params": params, "project_params": project_params,
             "env": env, "inputs": inputs, "outputs": ["a", "b"]}
    rng = random.Random(seed)
    reordered = shuffled(parts, rng)
    keys = list(reordered)
    rng.shuffle(keys)
    reordered = {k: reordered[k] for k in keys}
    assert Checker.key(reordered) == Checker.key(parts)
    # And a JSON round trip (how records store parts) keeps it too.
    assert Checker.key(json.loads(json.dumps(parts))) == Checker.key(parts)


@FAST
@given(params=st.dictionaries(st.text(min_size=1, max_size=6), json_scalars, min_size=1,
                              max_size=5),
       data=st.data())
def test_key_changes_when_a_param_value_changes(params, data):
    name = data.draw(st.sampled_from(sorted(params)))
    new = data.draw(json_scalars)
    assume(json.dumps(new) != json.dumps(params[name]))
    base = {"action": "run", "params": params, "inputs": {}, "outputs": []}
    changed = {**base, "params": {**params, name: new}}
    assert Checker.key(changed) != Checker.key(base)


# -- interpolation --------------------------------------------------------------------


def no_refs(name: str):
    raise UnknownReference(name)


@FAST
@given(st.text())
def test_escaping_every_dollar_round_trips(text):
    assert interpolate(text.replace("$", "$$"), no_refs) == text


@FAST
@given(st.text(), st.text(), st.integers() | st.text(alphabet="abc xyz", max_size=5))
def test_reference_between_escaped_texts(prefix, suffix, value):
    text = prefix.replace("$", "$$") + "${x}" + suffix.replace("$", "$$")

    def lookup(name: str):
        assert name == "x"
        return value

    result = interpolate(text, lookup)
    if prefix == suffix == "":
        assert result == value  # a whole-string reference keeps its type
    else:
        assert result == f"{prefix}{value}{suffix}"


# -- a guard on the simulation itself ---------------------------------------------------


def test_simulated_records_match_a_plan_of_the_same_targets(tmp_path):
    dag = (["a", "b"], [[], [0]], {(1, 0): True}, [0, 1])
    (tmp_path / "src").mkdir()
    (tmp_path / "src/s.txt").write_text("s")
    project = project_of(dag, tmp_path, sources={0: ["src/s.txt"], 1: ["src/s.txt"]})
    store = Store(tmp_path / ".flowmake")
    try:
        graph = simulate_build(project, store)
        checker = Checker(graph, store.records(), Hasher(str(tmp_path)), environ={})
        steps = checker.plan(["a", "b"]).steps
        assert [s.state for s in steps] == [State.FRESH, State.FRESH]
        assert [s.key for s in steps] == [store.record("a").key, store.record("b").key]
    finally:
        store.close()
