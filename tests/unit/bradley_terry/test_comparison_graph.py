"""The comparison graph: canonical pairs from any input order, per-item sums, components."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.csgraph

from ranker.bradley_terry.graph import ComparisonGraph


def random_pairs(rng, n, p):
    i = rng.integers(0, n, p)
    j = (i + rng.integers(1, n, p)) % n
    return i, j, rng.integers(0, 4, p).astype(float), rng.integers(0, 4, p).astype(float)


def same_partition(labels, expected):
    """Whether two labellings group the items alike (labels themselves may differ)."""
    pairs = set(zip(labels.tolist(), expected.tolist(), strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(expected.tolist()))


@pytest.mark.parametrize(("n", "p"), [(1, 0), (50, 0), (300, 150), (300, 400), (2000, 30_000)])
def test_components_are_those_of_the_whole_graph(n, p):
    rng = np.random.default_rng(n + p)
    i, j, wins_ij, wins_ji = random_pairs(rng, n, p)
    graph = ComparisonGraph(n, i, j, wins_ij, wins_ji, 0.01)
    count, labels, sizes = graph.components()
    compared = (wins_ij + wins_ji) > 0  # a pair nobody won either way connects nothing
    expected_count, expected = scipy.sparse.csgraph.connected_components(
        scipy.sparse.coo_matrix((np.ones(int(compared.sum())), (i[compared], j[compared])),
                                shape=(n, n)), directed=False)
    assert count == expected_count
    assert same_partition(labels, expected)
    np.testing.assert_array_equal(sizes, np.bincount(labels, minlength=count))


def test_pairs_in_any_order_are_summed_into_sorted_lo_hi_pairs():
    # (1, 0) is (0, 1) reversed; (2, 3) repeats; (1, 3) has no wins and is dropped.
    graph = ComparisonGraph(4, np.array([2, 1, 0, 2, 1]), np.array([3, 0, 1, 3, 3]),
                            np.array([1.0, 2.0, 3.0, 0.5, 0.0]),
                            np.array([0.0, 1.0, 0.0, 0.5, 0.0]), 0.01)
    assert graph.i.tolist() == [0, 2] and graph.j.tolist() == [1, 3]
    assert graph.wins_ij.tolist() == [4.0, 1.5]  # 3 as (0, 1), 1 as (1, 0) reversed
    assert graph.wins_ji.tolist() == [2.0, 0.5]
    assert graph.totals.tolist() == [6.0, 2.0]
    count, labels, _ = graph.components()
    assert count == 2 and labels[0] == labels[1] != labels[2] == labels[3]


def test_per_item_sums_over_both_sides_of_the_pairs():
    rng = np.random.default_rng(3)
    n = 60
    i, j, wins_ij, wins_ji = random_pairs(rng, n, 500)
    graph = ComparisonGraph(n, i, j, wins_ij + 1, wins_ji, 0.01)
    values = rng.normal(size=graph.n_pairs)
    np.testing.assert_allclose(graph.sums_over_lo(values), np.bincount(graph.i, values, n))
    np.testing.assert_allclose(graph.sums_over_hi(values), np.bincount(graph.j, values, n))
    item_values = rng.normal(size=n)
    np.testing.assert_array_equal(graph.repeat_over_lo(item_values), item_values[graph.i])
    centred = graph.centred(item_values)
    _, labels, _ = graph.components()
    for label in np.unique(labels):
        assert abs(centred[labels == label].mean()) < 1e-12


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_runs_of_pairs_give_their_lo_items_and_sums_over_lo(size):
    rng = np.random.default_rng(size)
    n = 60
    i, j, wins_ij, wins_ji = random_pairs(rng, n, 2000)
    graph = ComparisonGraph(n, i, j, wins_ij + 1, wins_ji, 0.01)
    item_values = rng.normal(size=n)
    values = rng.normal(size=graph.n_pairs)
    sums = np.zeros(n)
    stops = []
    for start, stop, lo_items, lo_pairs, offsets in graph.runs(size):
        np.testing.assert_array_equal(np.repeat(item_values[lo_items], lo_pairs),
                                      item_values[graph.i[start:stop]])
        sums[lo_items] += np.add.reduceat(values[start:stop], offsets)
        stops.append(stop)
    assert stops[-1] == graph.n_pairs and np.all(np.diff([0, *stops]) <= size)
    np.testing.assert_allclose(sums, graph.sums_over_lo(values))


@pytest.mark.parametrize(
    ("i", "j", "wins_ij", "wins_ji", "message"),
    [
        ([0], [0], [1.0], [0.0], "itself"),
        ([0], [3], [1.0], [0.0], "in \\[0, 3\\)"),
        ([0], [1], [1.0], [-1.0], ">= 0"),
        ([0], [1], [np.inf], [0.0], "finite"),
        ([0.0], [1.0], [1.0], [0.0], "integers"),
    ],
)
def test_malformed_pairs_are_rejected(i, j, wins_ij, wins_ji, message):
    with pytest.raises(ValueError, match=message):
        ComparisonGraph(3, np.array(i), np.array(j), np.array(wins_ij), np.array(wins_ji), 0.01)


def test_prior_strength_must_be_positive():
    with pytest.raises(ValueError, match="prior_strength"):
        ComparisonGraph(2, np.array([0]), np.array([1]), np.array([1.0]), np.array([0.0]), 0.0)
