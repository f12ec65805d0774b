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


def _ranking(n, abilities, rng, n_votes, items=None):
    from ranker import bradley_terry as bt
    from ranker.ranking import Catalog, fit_input, ranking_from_fit
    a = rng.integers(0, n, n_votes)
    b = (a + rng.integers(1, n, n_votes)) % n
    a_wins = rng.random(n_votes) < expit(abilities[a] - abilities[b])
    counts = PairCounts(n)
    counts.apply(np.full(n_votes, WIN, dtype=np.uint8), np.where(a_wins, a, b),
                 np.where(a_wins, b, a))
    ids = tuple(f"p{k}" for k in range(n))
    catalog = Catalog(1, ids, ids, np.arange(n) if items is None else items)
    inputs = fit_input("cause", catalog, counts, votes_counted=n_votes, last_vote_entry_id="")
    return ranking_from_fit(inputs, bt.fit(inputs.n_items, inputs.i, inputs.j,
                                           inputs.wins_ij, inputs.wins_ji))


def test_consensus_ranking_orders_the_overall_proposals_by_their_weakest_segment():
    rng = np.random.default_rng(2)
    n = 30
    base = rng.normal(0, 0.5, n)
    liked = base.copy()
    liked[[3, 4]] = 2.5
    split = base.copy()
    split[3], split[4] = 2.5, -2.5
    overall = _ranking(n, base, rng, 4_000)
    segments = {0: _ranking(n, liked, rng, 6_000), 2: _ranking(n, split, rng, 6_000)}
    ranking, agreed = segment_views.consensus_ranking(overall, segments)
    ids = ranking.proposal_ids(range(n))
    assert ids[0] == "p3"
    assert ids.index("p4") > n // 2
    # The scores are the consensus scores, in decreasing order, and the tallies follow.
    assert np.all(np.diff(ranking.scores) <= 0)
    position = {k: i for i, k in enumerate(overall.proposal_index.tolist())}
    for row, index in enumerate(ranking.proposal_index.tolist()):
        assert ranking.wins[row] == overall.wins[position[index]]
    # p4's score was set by the segment of value 2 (the second in value order).
    assert agreed.weakest_segment[position[4]] == 1
