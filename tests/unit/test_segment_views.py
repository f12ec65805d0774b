"""The views the ranker serves from its counts: the representative fit from the overall
and per-segment pair counts equals the weighted fit of the votes themselves."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from ranker import segment_views, survey_weights
from ranker.bradley_terry.weighted import fit_weighted
from ranker.pair_counts import TIE, WIN, PairCounts


def test_representative_from_counts_matches_the_weighted_fit_of_the_votes():
    rng = np.random.default_rng(0)
    n, n_votes = 30, 6_000
    abilities = rng.normal(0, 1, n)
    a = rng.integers(0, n, n_votes)
    b = (a + rng.integers(1, n, n_votes)) % n
    ties = rng.random(n_votes) < 0.1
    a_wins = rng.random(n_votes) < expit(abilities[a] - abilities[b])
    winners, losers = np.where(a_wins, a, b), np.where(a_wins, b, a)
    # Region 0 votes most; a tenth of the voters did not say.
    region = rng.choice(3, n_votes, p=[0.6, 0.3, 0.1])
    region[rng.random(n_votes) < 0.1] = survey_weights.UNKNOWN
    kinds = np.where(ties, TIE, WIN).astype(np.uint8)
    overall = PairCounts(n)
    overall.apply(kinds, winners, losers)
    segments = {}
    for value in range(3):
        mine = region == value
        segments[value] = PairCounts(n)
        segments[value].apply(kinds[mine], winners[mine], losers[mine])
    margin = np.array([0.2, 0.3, 0.5])
    # Items 0..n-1 except item 7, as if it were rejected.
    items = np.delete(np.arange(n), 7)
    served = segment_views.representative(overall, segments, margin, items)

    # Shares are of the votes on ranked proposals.
    kept = (winners != 7) & (losers != 7)
    weights = survey_weights.vote_weights(region[kept][:, None], [margin])
    position = np.full(n, -1)
    position[items] = np.arange(items.shape[0])
    by_vote = fit_weighted(items.shape[0], position[winners[kept]], position[losers[kept]],
                           ties[kept], weights.weights, np.arange(kept.sum()),
                           groups=region[kept][:, None])
    np.testing.assert_allclose(served.fit.abilities, by_vote.abilities, atol=1e-6)
    np.testing.assert_allclose(served.fit.std_errors, by_vote.std_errors, rtol=1e-4)
    assert served.weights.method == survey_weights.POST_STRATIFICATION
    assert list(served.values) == [0, 1, 2, survey_weights.UNKNOWN]
    assert served.stratum_votes.sum() == kept.sum()
    # Region 0 cast ~54% of the votes for 20% of the population: weighed down.
    assert served.stratum_weights[0] < 0.5 < 1.5 < served.stratum_weights[2]


def test_a_segment_with_a_pair_the_overall_counts_lack_is_refused():
    overall = PairCounts(3)
    overall.apply(np.array([WIN], dtype=np.uint8), np.array([0]), np.array([1]))
    stray = PairCounts(3)
    stray.apply(np.array([WIN], dtype=np.uint8), np.array([1]), np.array([2]))
    with pytest.raises(ValueError, match="overall"):
        segment_views.stratum(overall, np.arange(3), (stray,))
