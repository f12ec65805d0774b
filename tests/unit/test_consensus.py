"""Consensus across segments: a proposal every segment ranks high comes before one that a
single segment loves, and a segment that never saw a proposal holds it down."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from ranker import bradley_terry as bt
from ranker.consensus import consensus
from ranker.scores import scores_at, win_probability_scores


def segment_fit(rng, abilities, n_votes):
    n = abilities.shape[0]
    a = rng.integers(0, n, n_votes)
    b = (a + rng.integers(1, n, n_votes)) % n
    a_wins = rng.random(n_votes) < expit(abilities[a] - abilities[b])
    winners, losers = np.where(a_wins, a, b), np.where(a_wins, b, a)
    return bt.fit(n, winners, losers, np.ones(n_votes), np.zeros(n_votes))


def test_the_proposal_every_segment_likes_leads():
    rng = np.random.default_rng(0)
    n = 40
    base = rng.normal(0, 0.5, n)
    # Item 0: liked by everyone. Item 1: adored by segment 0, disliked by segment 2.
    tastes = np.tile(base, (3, 1))
    tastes[:, 0] = 1.5
    tastes[:, 1] = [4.0, 1.5, -1.5]
    fits = [segment_fit(rng, taste, 8_000) for taste in tastes]
    result = consensus([f.abilities for f in fits], [f.std_errors for f in fits])
    assert result.order[0] == 0
    assert result.weakest_segment[1] == 2
    assert list(result.order).index(1) > n // 2
    # The score is the lowest lower end, and no segment's lower end is below it.
    np.testing.assert_allclose(result.scores, result.lower_scores.min(axis=0))
    for s, fit in enumerate(fits):
        assert np.all(result.lower_scores[s] < win_probability_scores(fit.abilities))


def test_a_segment_that_never_compared_a_proposal_holds_it_down():
    rng = np.random.default_rng(1)
    n = 20
    tastes = rng.normal(0, 1, n)
    tastes[5] = 3.0
    seen = segment_fit(rng, tastes, 5_000)
    # The second segment voted on every proposal but 5.
    a = rng.integers(0, n - 1, 5_000)
    b = (a + rng.integers(1, n - 1, 5_000)) % (n - 1)
    a, b = np.where(a >= 5, a + 1, a), np.where(b >= 5, b + 1, b)
    won = rng.random(5_000) < expit(tastes[a] - tastes[b])
    unseen = bt.fit(n, np.where(won, a, b), np.where(won, b, a), np.ones(5_000),
                    np.zeros(5_000))
    result = consensus([seen.abilities, unseen.abilities],
                       [seen.std_errors, unseen.std_errors])
    assert result.weakest_segment[5] == 1
    assert result.scores[5] < 5.0


@pytest.mark.parametrize("n", [50, 2_000])
def test_scores_at_shifted_points_match_the_definition(n):
    rng = np.random.default_rng(n)
    abilities = rng.normal(0, 1.5, n)
    points = abilities - rng.uniform(0, 20, n)
    expected = np.array([100 * np.mean(np.delete(expit(p - abilities), k))
                         for k, p in enumerate(points)])
    np.testing.assert_allclose(scores_at(points, abilities), expected, atol=1e-4)
    np.testing.assert_allclose(scores_at(abilities, abilities),
                               win_probability_scores(abilities), atol=1e-4)


def test_no_segment_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        consensus([], [])
