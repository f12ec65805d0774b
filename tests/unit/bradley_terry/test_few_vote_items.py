"""Few-vote items: found among the well-measured ones and settled exactly between steps."""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ranker.bradley_terry import gradient
from ranker.bradley_terry.few_votes import FEW_VOTES, FewVoteItems
from ranker.bradley_terry.graph import ComparisonGraph
from ranker.bradley_terry.likelihood import Objective
from ranker.pair_counts import WIN, PairCounts


def late_proposals(rng, bulk=40, late=30):
    """A well-measured bulk, then late items with 1–4 votes each, some only against other
    late items (chains hanging off the bulk)."""
    n = bulk + late
    truth = rng.normal(0, 1.5, n)
    a = rng.integers(0, bulk, 3_000)
    b = (a + rng.integers(1, bulk, 3_000)) % bulk
    newcomer = np.repeat(np.arange(bulk, n), rng.integers(1, 5, late))
    opponent = np.where(rng.random(newcomer.shape[0]) < 0.6,
                        rng.integers(0, bulk, newcomer.shape[0]),
                        rng.integers(bulk, n, newcomer.shape[0]))
    keep = opponent != newcomer
    a = np.concatenate([a, newcomer[keep]])
    b = np.concatenate([b, opponent[keep]])
    a_wins = rng.random(a.shape[0]) < expit(truth[a] - truth[b])
    counts = PairCounts(n)
    counts.apply(np.full(a.shape[0], WIN, dtype=np.uint8), np.where(a_wins, a, b),
                 np.where(a_wins, b, a))
    return n, bulk, counts.subset(np.arange(n)), counts.appearances


def test_the_few_vote_items_are_the_late_ones():
    n, bulk, pairs, appearances = late_proposals(np.random.default_rng(1))
    few = FewVoteItems(ComparisonGraph(n, *pairs, 0.01))
    expected = np.flatnonzero((appearances > 0) & (appearances <= FEW_VOTES))
    assert few.items.tolist() == expected.tolist()
    assert few.items.min() >= bulk


def test_settling_finds_their_optimum_with_the_others_fixed_and_keeps_the_point_exact():
    rng = np.random.default_rng(2)
    n, bulk, pairs, _ = late_proposals(rng)
    objective = Objective(ComparisonGraph(n, *pairs, 0.01))
    few = FewVoteItems(objective.graph)
    start = objective.evaluate(np.concatenate([rng.normal(0, 1, bulk), np.zeros(n - bulk)]))
    settled = few.settle(objective, start)
    # The others did not move; each few-vote item's own gradient is 0 at its new ability.
    np.testing.assert_array_equal(settled.abilities[:bulk], start.abilities[:bulk])
    assert np.max(np.abs(gradient(settled.abilities, *pairs, 0.01)[few.items])) < 1e-7
    assert np.all(settled.objectives >= start.objectives)
    # What settle updated piecemeal equals a fresh evaluation of the new point.
    information = objective.information.copy()
    fresh = objective.evaluate(settled.abilities)
    np.testing.assert_allclose(settled.objectives, fresh.objectives, rtol=1e-12)
    np.testing.assert_allclose(settled.diagonal, fresh.diagonal, rtol=1e-12)
    np.testing.assert_allclose(information, objective.information, rtol=1e-12, atol=1e-15)
    # The gradient up to its per-component mean, which `evaluate` removes (rounding only).
    np.testing.assert_allclose(settled.gradient, fresh.gradient, atol=1e-9)


def test_early_sparse_data_leaves_them_to_the_global_step():
    """When most items have a handful of votes they form one giant group: settling it would
    cost a sparse factorisation of the whole graph, so none is settled apart."""
    rng = np.random.default_rng(3)
    n = 200
    a = rng.integers(0, n, 500)
    b = (a + rng.integers(1, n, 500)) % n
    graph = ComparisonGraph(n, a, b, np.ones(500), np.zeros(500), 0.01)
    few = FewVoteItems(graph)
    assert few.items.shape[0] < n // 4
