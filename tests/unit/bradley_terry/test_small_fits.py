"""Fits of a few items take the dense path (bradley_terry.small): the same abilities,
standard errors and log posterior as the general solver, on every shape of small data."""

from __future__ import annotations

import numpy as np
import pytest

from ranker import bradley_terry as bt
from ranker.bradley_terry import small


def small_data(rng, n, kind):
    """Random pairs among n items (repeats, both orientations); `kind` shapes the wins."""
    p = int(rng.integers(0, 3 * n + 2))
    i, j = rng.integers(0, n, p), rng.integers(0, n, p)
    keep = i != j
    i, j = i[keep], j[keep]
    wins_ij = rng.integers(0, 6, i.shape[0]).astype(float)
    wins_ji = rng.integers(0, 6, i.shape[0]).astype(float)
    if kind == "all won":  # every pair won by one side: flat likelihoods, long steps
        wins_ij, wins_ji = np.maximum(wins_ij, 1.0), np.zeros_like(wins_ji)
    elif kind == "ties":
        wins_ij, wins_ji = wins_ij + 0.5, wins_ji + 0.5
    return i, j, wins_ij, wins_ji


def general_fit(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(small, "MAX_ITEMS", 0)
        return bt.fit(*args, **kwargs)


@pytest.mark.parametrize("kind", ["plain", "all won", "ties"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_small_fits_agree_with_the_general_solver(monkeypatch, kind, seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(1, small.MAX_ITEMS + 1))
        data = small_data(rng, n, kind)
        start = [None, rng.normal(0, 1, int(rng.integers(0, n + 3))),
                 rng.normal(0, 20, n)][int(rng.integers(0, 3))]
        fit = bt.fit(n, *data, init=start)
        tight = general_fit(monkeypatch, n, *data, tol=1e-13)
        np.testing.assert_allclose(fit.abilities, tight.abilities, atol=1e-6)
        assert fit.log_posterior == pytest.approx(tight.log_posterior, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(fit.std_errors, tight.std_errors, rtol=1e-6, atol=1e-9)
        assert fit.exact_std_errors
        np.testing.assert_allclose(fit.ci_high - fit.ci_low, 2 * 1.96 * fit.std_errors)


def test_a_small_warm_start_at_the_optimum_takes_one_step():
    rng = np.random.default_rng(4)
    data = small_data(rng, 6, "plain")
    cold = bt.fit(6, *data, tol=1e-12)
    assert bt.fit(6, *data, init=cold.abilities, tol=1e-12).iterations == 1


def test_small_fits_refuse_what_the_general_one_refuses():
    i, j = np.array([0, 1]), np.array([1, 2])
    wins = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="init"):
        bt.fit(3, i, j, wins, wins, init=np.array([0.0, np.nan]))
    with pytest.raises(ValueError):
        bt.fit(3, i, j, wins, -wins)
    with pytest.raises(bt.FitDidNotConverge):
        bt.fit(3, i, j, np.array([5.0, 9.0]), np.array([0.0, 0.0]), max_iter=1)
    bare = bt.fit(3, i, j, wins, wins, with_std_errors=False)
    assert np.all(np.isnan(bare.std_errors)) and not bare.exact_std_errors
