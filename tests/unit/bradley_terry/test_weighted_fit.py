"""The weighted Bradley–Terry fit and its sandwich standard errors: equal weights give the
unweighted fit, the errors match an independent dense computation, clustering by voter is
honoured, and the intervals cover the population's abilities in simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from ranker import bradley_terry as bt
from ranker import survey_weights
from ranker.bradley_terry.weighted import fit_weighted, fit_weighted_strata

LAMBDA = bt.PRIOR_STRENGTH


def random_votes(rng, abilities, n_votes, n_voters, tie_rate=0.1):
    n = abilities.shape[0]
    a = rng.integers(0, n, n_votes)
    b = (a + rng.integers(1, n, n_votes)) % n
    d = abilities[a] - abilities[b]
    ties = rng.random(n_votes) < tie_rate * np.exp(-np.abs(d))
    a_wins = rng.random(n_votes) < expit(d)
    winners = np.where(a_wins, a, b)
    losers = np.where(a_wins, b, a)
    return winners, losers, ties, rng.integers(0, n_voters, n_votes)


def oracle_sandwich(n, abilities, winners, losers, ties, weights, voters, groups):
    """H⁻¹ J H⁻¹ written out: dense H vote by vote, each voter's score summed in a loop,
    scores residualised on the group indicators by least squares, G/(G − rank) factor."""
    weights = weights * len(weights) / weights.sum()
    hessian = LAMBDA * np.eye(n)
    keys = sorted(set(zip(voters.tolist(), groups.tolist(), strict=True)))
    row = {key: k for k, key in enumerate(keys)}
    scores = np.zeros((len(keys), n))
    for a, b, tie, w, v, g in zip(winners, losers, ties, weights, voters, groups,
                                  strict=True):
        p = expit(abilities[a] - abilities[b])
        x = np.zeros(n)
        x[a], x[b] = 1.0, -1.0
        hessian += w * p * (1 - p) * np.outer(x, x)
        scores[row[(v, g)]] += w * ((0.5 if tie else 1.0) - p) * x
    indicators = np.array([[1.0 if key[1] == value else 0.0 for value in sorted(set(groups))]
                           for key in keys])
    beta = np.linalg.lstsq(indicators, scores, rcond=None)[0]
    residual = scores - indicators @ beta
    clusters = len(keys)
    meat = residual.T @ residual * clusters / (clusters - np.linalg.matrix_rank(indicators))
    inverse = np.linalg.inv(hessian)
    return np.sqrt(np.diag(inverse @ meat @ inverse))


def test_equal_weights_give_the_unweighted_fit():
    rng = np.random.default_rng(0)
    abilities = rng.normal(0, 1, 80)
    winners, losers, ties, voters = random_votes(rng, abilities, 6_000, 400)
    won = np.where(ties, 0.5, 1.0)
    plain = bt.fit(80, winners, losers, won, 1 - won)
    for scale in (1.0, 7.5):
        weighted = fit_weighted(80, winners, losers, ties, np.full(6_000, scale), voters,
                                with_model_std_errors=True)
        np.testing.assert_allclose(weighted.abilities, plain.abilities, atol=1e-12)
        np.testing.assert_allclose(weighted.model_std_errors, plain.std_errors, rtol=1e-10)
        # A well-specified model with independent votes: the sandwich agrees with the
        # information to sampling noise.
        ratio = weighted.std_errors / plain.std_errors
        assert 0.9 < float(np.median(ratio)) < 1.1
        assert weighted.effective_votes == pytest.approx(6_000)


def test_sandwich_matches_a_dense_computation_written_out():
    rng = np.random.default_rng(1)
    n = 15
    abilities = rng.normal(0, 1, n)
    winners, losers, ties, voters = random_votes(rng, abilities, 900, 60)
    groups = voters % 3
    weights = np.array([0.5, 1.0, 3.0])[groups]
    fit = fit_weighted(n, winners, losers, ties, weights, voters, groups=groups[:, None],
                       tol=1e-12)
    expected = oracle_sandwich(n, fit.abilities, winners, losers, ties, weights, voters,
                               groups)
    np.testing.assert_allclose(fit.std_errors, expected, rtol=1e-7)
    assert fit.exact_std_errors


def test_a_voter_repeating_one_vote_counts_as_one_voter():
    """Each voter casts the same vote five times: clustered by voter, the errors are √5
    times those of five independent voters per vote (to the G/(G−1) factor)."""
    rng = np.random.default_rng(2)
    abilities = rng.normal(0, 1, 30)
    winners, losers, ties, _ = random_votes(rng, abilities, 2_000, 1)
    repeat = 5
    winners, losers, ties = (np.repeat(x, repeat) for x in (winners, losers, ties))
    by_voter = np.repeat(np.arange(2_000), repeat)
    by_vote = np.arange(2_000 * repeat)
    ones = np.ones(2_000 * repeat)
    clustered = fit_weighted(30, winners, losers, ties, ones, by_voter)
    independent = fit_weighted(30, winners, losers, ties, ones, by_vote)
    factor = np.sqrt((2_000 / 1_999) / (10_000 / 9_999))
    np.testing.assert_allclose(clustered.std_errors / independent.std_errors,
                               np.sqrt(repeat) * factor, rtol=1e-6)


def test_approximate_sandwich_is_close_to_the_exact_one():
    rng = np.random.default_rng(3)
    n = 300
    abilities = rng.normal(0, 1, n)
    winners, losers, ties, voters = random_votes(rng, abilities, 60_000, 3_000)
    groups = voters % 4
    weights = np.array([0.3, 1.0, 1.5, 2.5])[groups]
    args = (n, winners, losers, ties, weights, voters)
    exact = fit_weighted(*args, groups=groups[:, None], exact=True)
    approx = fit_weighted(*args, groups=groups[:, None], exact=False)
    assert not approx.exact_std_errors
    relative = np.abs(approx.std_errors / exact.std_errors - 1)
    assert float(np.max(relative)) < 0.03, float(np.max(relative))


def segmented_coverage(seed: int) -> tuple[float, float]:
    """Two segments that disagree, one casting 70% of the votes while being 30% of the
    population; post-stratified fit against the population's Bradley–Terry abilities.
    Returns the coverage of the sandwich intervals and of the information's."""
    rng = np.random.default_rng(seed)
    n, n_votes, n_voters = 60, 12_000, 600
    common = rng.normal(0, 1, n)
    tastes = np.stack([common + rng.normal(0, 0.8, n), common + rng.normal(0, 0.2, n)])
    population_share = np.array([0.3, 0.7])
    voter_segment = (rng.random(n_voters) < 0.5).astype(int)
    heavy = np.flatnonzero(voter_segment == 0)
    light = np.flatnonzero(voter_segment == 1)
    voters = np.where(rng.random(n_votes) < 0.7, rng.choice(heavy, n_votes),
                      rng.choice(light, n_votes))
    segment = voter_segment[voters]
    a = rng.integers(0, n, n_votes)
    b = (a + rng.integers(1, n, n_votes)) % n
    d = tastes[segment, a] - tastes[segment, b]
    a_wins = rng.random(n_votes) < expit(d)
    winners, losers = np.where(a_wins, a, b), np.where(a_wins, b, a)
    ties = np.zeros(n_votes, dtype=bool)
    weights = survey_weights.vote_weights(segment[:, None],
                                          [population_share])
    fit = fit_weighted(n, winners, losers, ties, weights.weights, voters,
                       groups=weights.calibration_groups(), with_model_std_errors=True)
    # The population's abilities: the fit to every pair's expected outcome.
    i, j = np.triu_indices(n, 1)
    won = sum(share * expit(taste[i] - taste[j])
              for share, taste in zip(population_share, tastes, strict=True))
    truth = bt.fit(n, i, j, 1e4 * won, 1e4 * (1 - won), with_std_errors=False).abilities
    inside = (fit.ci_low <= truth) & (truth <= fit.ci_high)
    assert fit.model_std_errors is not None
    model = np.abs(fit.abilities - truth) <= 1.96 * fit.model_std_errors
    return float(inside.mean()), float(model.mean())


def test_sandwich_intervals_cover_the_population_abilities():
    results = [segmented_coverage(seed) for seed in range(6)]
    sandwich = float(np.mean([r[0] for r in results]))
    model = float(np.mean([r[1] for r in results]))
    # 360 intervals: the binomial spread alone is ±2.3 points around 95%.
    assert 0.9 <= sandwich <= 0.985, results
    # The information alone treats the weights as counts and claims too much.
    assert model < sandwich, results


def test_strata_of_pair_counts_give_the_vote_level_fit_and_errors():
    """The served path fits from one set of pair counts per attribute value: the same
    abilities as the fit of the votes themselves, and the same sandwich when each vote is
    its own voter (votes taken as independent)."""
    rng = np.random.default_rng(4)
    n = 25
    abilities = rng.normal(0, 1, n)
    winners, losers, ties, _ = random_votes(rng, abilities, 3_000, 1, tie_rate=0.3)
    stratum = rng.integers(0, 3, 3_000)
    stratum_weight = np.array([0.4, 1.0, 2.2])
    by_vote = fit_weighted(n, winners, losers, ties, stratum_weight[stratum],
                           np.arange(3_000), groups=stratum[:, None], tol=1e-12)
    strata = []
    for s in range(3):
        mine = stratum == s
        lo = np.minimum(winners[mine], losers[mine])
        hi = np.maximum(winners[mine], losers[mine])
        decided = ~ties[mine]
        lo_won = decided & (winners[mine] == lo)
        hi_won = decided & (winners[mine] == hi)
        strata.append((lo, hi, lo_won.astype(float), hi_won.astype(float),
                       ties[mine].astype(float)))
    for exact in (True, False):
        from_counts = fit_weighted_strata(n, strata, list(stratum_weight), tol=1e-12,
                                          exact=exact)
        np.testing.assert_allclose(from_counts.abilities, by_vote.abilities, atol=1e-9)
        reference = by_vote if exact else fit_weighted(
            n, winners, losers, ties, stratum_weight[stratum], np.arange(3_000),
            groups=stratum[:, None], tol=1e-12, exact=False)
        np.testing.assert_allclose(from_counts.std_errors, reference.std_errors, rtol=1e-7)
    assert from_counts.effective_votes == pytest.approx(by_vote.effective_votes)
