"""The linear NIR wiring (exporters/nir/_wire.py) against the definition it implements: an edge leaving
a neuron is recurrent iff, taking the edges in file order, its destination already reaches its source
through the edges kept so far; a cycle of non-neuron edges is refused at its first edge."""

from __future__ import annotations

import random

import pytest
from slt_deploy.exporters.nir._wire import first_duplicate, mark_recurrent, non_neuron_cycle_edge


def _oracle(nodes, edges, is_neuron):
    """One breadth-first search per edge: the definition, O(E (V + E))."""
    succ = {n: [] for n in nodes}

    def reaches(a, b):
        seen, todo = {a}, [a]
        while todo:
            for c in succ[todo.pop()]:
                if c == b:
                    return True
                if c not in seen:
                    seen.add(c)
                    todo.append(c)
        return a == b

    for s, d in edges:
        if not is_neuron[s]:
            succ[s].append(d)
    cyclic = next(((s, d) for s, d in edges if not is_neuron[s] and reaches(d, s)), None)
    if cyclic:
        return cyclic, None
    marked = []
    for s, d in edges:
        rec = False
        if is_neuron[s]:
            rec = reaches(d, s)
            if not rec:
                succ[s].append(d)
        marked.append((s, d, rec))
    return None, marked


def _random_graph(rng: random.Random):
    n = rng.randint(1, 40)
    nodes = [f"n{i}" for i in range(n)]
    rng.shuffle(nodes)
    is_neuron = {v: rng.random() < rng.choice((0.2, 0.5, 0.9)) for v in nodes}
    edges = list({(rng.choice(nodes), rng.choice(nodes)) for _ in range(rng.randint(0, 3 * n))})
    if rng.random() < 0.5:  # mostly forward graphs, as exporters write them
        rank = {v: i for i, v in enumerate(sorted(nodes))}
        edges = [(s, d) if rank[s] <= rank[d] or rng.random() < 0.1 else (d, s) for s, d in edges]
        edges = list(dict.fromkeys(edges))
    rng.shuffle(edges)
    return nodes, edges, is_neuron


@pytest.mark.parametrize("seed", range(8))
def test_the_marks_equal_the_definition_on_random_graphs(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(300):
        nodes, edges, is_neuron = _random_graph(rng)
        cyclic, want = _oracle(nodes, edges, is_neuron)
        assert non_neuron_cycle_edge(nodes, edges, is_neuron) == cyclic
        if cyclic is None:
            assert mark_recurrent(nodes, edges, is_neuron) == want
            checked += 1
    assert checked > 50


def test_a_self_loop_through_a_neuron_is_recurrent_and_through_anything_else_refused() -> None:
    assert mark_recurrent(["a"], [("a", "a")], {"a": True}) == [("a", "a", True)]
    assert non_neuron_cycle_edge(["a"], [("a", "a")], {"a": False}) == ("a", "a")


def test_duplicates_are_found_in_one_pass() -> None:
    assert first_duplicate([("a", "b", False), ("b", "c", False), ("a", "b", True)]) == ("a", "b")
    assert first_duplicate([("a", "b", False)]) is None
