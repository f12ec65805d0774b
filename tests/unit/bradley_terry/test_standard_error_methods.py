"""Each way of computing diag(H⁻¹) agrees with the dense inverse where it claims to."""

from __future__ import annotations

import numpy as np
import pytest

from ranker.bradley_terry.graph import ComparisonGraph
from ranker.bradley_terry.likelihood import Objective
from ranker.bradley_terry.standard_errors import belief_propagation, dense, elimination


def evaluated(n, i, j, wins_ij, wins_ji, rng):
    """An objective over the pairs with its information at a random point, and that point."""
    objective = Objective(ComparisonGraph(n, i, j, wins_ij, wins_ji, 0.01))
    return objective, objective.evaluate(rng.normal(0, 1, n))


def dense_inverse_diagonal(objective, point):
    hessian = objective.dense_hessian(point.diagonal)
    hessian = np.triu(hessian) + np.triu(hessian, 1).T
    return np.diag(np.linalg.inv(hessian))


def random_graph(rng, n, p):
    i = rng.integers(0, n, p)
    j = (i + rng.integers(1, n, p)) % n
    return i, j, rng.integers(1, 5, p).astype(float), rng.integers(0, 5, p).astype(float)


def tree(rng, n):
    child = np.arange(1, n)
    parent = np.array([rng.integers(0, k) for k in child])
    return parent, child, rng.integers(1, 6, n - 1).astype(float), \
        rng.integers(0, 6, n - 1).astype(float)


@pytest.mark.parametrize("shape", ["early voting", "well connected", "tree", "star"])
def test_elimination_is_exact(shape):
    rng = np.random.default_rng(1)
    n = 400
    if shape == "early voting":  # most items eliminated, a core left
        pairs = random_graph(rng, n, 1_000)
    elif shape == "well connected":  # nothing worth eliminating: one dense factorisation
        pairs = random_graph(rng, n, 12_000)
    elif shape == "tree":  # every item eliminated, no core
        pairs = tree(rng, n)
    else:  # one hub compared with every other item
        pairs = (np.zeros(n - 1, dtype=int), np.arange(1, n), np.ones(n - 1), np.ones(n - 1))
    objective, point = evaluated(n, *pairs, rng)
    graph = objective.graph
    result = elimination.inverse_diagonal(n, graph.i, graph.j, objective.information,
                                          point.diagonal)
    np.testing.assert_allclose(result, dense_inverse_diagonal(objective, point), rtol=1e-10)


def test_dense_inverse_diagonal_and_per_component_blocks():
    rng = np.random.default_rng(2)
    # Three clusters that never meet, and two items with no pair.
    parts = [random_graph(rng, size, 3 * size) for size in (30, 20, 10)]
    offsets = (0, 30, 50)
    i = np.concatenate([p[0] + o for p, o in zip(parts, offsets, strict=True)])
    j = np.concatenate([p[1] + o for p, o in zip(parts, offsets, strict=True)])
    wins_ij = np.concatenate([p[2] for p in parts])
    wins_ji = np.concatenate([p[3] for p in parts])
    n = 62
    objective, point = evaluated(n, i, j, wins_ij, wins_ji, rng)
    expected = dense_inverse_diagonal(objective, point)
    whole = dense.inverse_diagonal(objective.dense_hessian(point.diagonal))
    np.testing.assert_allclose(whole, expected, rtol=1e-10)
    members = np.zeros(n, dtype=bool)
    members[30:60] = True  # the second and third clusters only
    blocks = dense.component_variances(objective, members, point.diagonal)
    np.testing.assert_allclose(blocks[members], expected[members], rtol=1e-10)
    assert not blocks[~members].any()


def test_belief_propagation_is_exact_on_a_tree():
    rng = np.random.default_rng(3)
    n = 500
    objective, point = evaluated(n, *tree(rng, n), rng)
    local = belief_propagation.local_variances(objective, point.diagonal, None)
    # Single-precision messages and a 1e-3 stopping rule: exact to ~1e-4 on a tree.
    np.testing.assert_allclose(local, dense_inverse_diagonal(objective, point), rtol=1e-3)


def test_belief_propagation_on_a_loopy_graph_gives_the_centred_variances_within_1_percent():
    """On a random graph (~20 comparisons per item) the local variances leave out the slowly
    mixing global modes; centred on the mean as `standard_errors` does it, they are within
    1% of the exact variances of the centred abilities, diag(H⁻¹) − 1/(nλ)."""
    rng = np.random.default_rng(4)
    n = 1_000
    objective, point = evaluated(n, *random_graph(rng, n, 10_000), rng)
    local = belief_propagation.local_variances(objective, point.diagonal, None)
    centred = local * (1 - 2 / n) + local.mean() / n
    exact = dense_inverse_diagonal(objective, point) - 1 / (n * 0.01)
    assert np.max(np.abs(centred / exact - 1)) < 0.01
