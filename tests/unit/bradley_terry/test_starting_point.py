"""Where Newton starts: a warm start kept only where it beats 0, log-odds for cold starts."""

from __future__ import annotations

import numpy as np
import pytest

from ranker.bradley_terry.graph import ComparisonGraph
from ranker.bradley_terry.likelihood import Objective
from ranker.bradley_terry.starting_point import starting_point

# Two components, {0, 1, 2} and {3, 4}, and item 5 in no pair; every item has > 16 votes.
PAIRS = (np.array([0, 0, 1, 3]), np.array([1, 2, 2, 4]),
         np.array([30.0, 40.0, 25.0, 12.0]), np.array([10.0, 5.0, 15.0, 8.0]))


def objective():
    return Objective(ComparisonGraph(6, *PAIRS, 0.01))


def test_a_warm_start_is_kept_only_in_the_components_where_it_beats_zero():
    good = np.array([1.0, 0.0, -1.0])  # ordered like the votes
    bad = np.array([-30.0, 30.0])  # far off, reversed
    start = starting_point(objective(), np.concatenate([good, bad, [7.0]]))
    np.testing.assert_array_equal(start.abilities, np.concatenate([good, [0, 0], [0]]))
    zero = objective().objectives_at_zero()
    assert np.all(start.objectives >= zero)


def test_a_short_warm_start_is_padded_and_a_long_one_cut():
    short = starting_point(objective(), np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(short.abilities, [1.0, 0.0, -1.0, 0.0, 0.0, 0.0])
    long = starting_point(objective(), np.array([1.0, 0.0, -1.0, 0.1, -0.1, 0.0, 5.0]))
    np.testing.assert_array_equal(long.abilities, [1.0, 0.0, -1.0, 0.1, -0.1, 0.0])


def test_a_cold_start_begins_at_the_log_odds_of_winning_centred_per_component():
    start = starting_point(objective(), None)
    wins = np.array([70.0, 35.0, 20.0, 12.0, 8.0, 0.0])
    losses = np.array([15.0, 45.0, 65.0, 8.0, 12.0, 0.0])
    log_odds = np.log((wins + 0.5) / (losses + 0.5))
    for members in (slice(0, 3), slice(3, 5), slice(5, 6)):
        np.testing.assert_allclose(start.abilities[members],
                                   log_odds[members] - log_odds[members].mean(), atol=1e-12)


def test_a_cold_start_with_a_few_vote_item_begins_at_zero():
    few = Objective(ComparisonGraph(3, np.array([0, 1]), np.array([1, 2]),
                                    np.array([30.0, 2.0]), np.array([10.0, 1.0]), 0.01))
    assert not starting_point(few, None).abilities.any()


@pytest.mark.parametrize("init", [np.array([np.nan]), np.zeros((2, 3))])
def test_a_warm_start_must_be_finite_and_one_dimensional(init):
    with pytest.raises(ValueError, match="init"):
        starting_point(objective(), init)
