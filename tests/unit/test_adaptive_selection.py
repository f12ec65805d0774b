"""The adaptive selection rule: draws follow the distribution the structure claims (χ² on
seeded draws), every pair keeps a chance, and odd summaries still give pairs."""

from __future__ import annotations

import random
from collections import Counter
from itertools import permutations

import numpy as np
import pytest
from scipy.stats import chisquare

from gateway.adaptive_selection import AdaptiveSelection, Draw
from pairwise.selection_summary import FitSummary

# A χ² test at this level fails by chance once in 10⁶ runs; the draws are seeded anyway.
ALPHA = 1e-6


def summary(abilities, std_errors, items=None, votes=None) -> FitSummary:
    abilities = np.asarray(abilities, dtype=np.float64)
    n = len(abilities)
    return FitSummary(
        version=1,
        items=np.arange(100, 100 + n, dtype=np.int64) if items is None else np.asarray(items),
        abilities=abilities,
        std_errors=np.broadcast_to(np.asarray(std_errors, dtype=np.float64), (n,)).copy(),
        votes=np.full(n, 50) if votes is None else np.asarray(votes))


def realistic(n: int, seed: int = 0, se: float = 0.3) -> FitSummary:
    rng = np.random.default_rng(seed)
    return summary(np.sort(rng.normal(0.0, 1.0, n))[::-1], rng.uniform(0.5 * se, 1.5 * se, n))


def expected_pair_probabilities(selection: AdaptiveSelection) -> dict[tuple[int, int], float]:
    """P(first candidate = (a, b)) for every ordered pair of ranks, from the claimed tables:
    top draws pair a top-table draw with a second one at the duel share (a repeat falls back
    to the window), else with an opponent of its window; rank draws pair a rank-table draw
    with an opponent of its window. A window opponent is, at the informed share, drawn by the
    rank table's weights within the window (drawing the first itself falls back to uniform),
    otherwise uniformly."""
    n = len(selection.items)
    top, rank = selection.top_probabilities(), selection.rank_probabilities()
    info = 1.0 - selection.uniform_share
    duel = selection.duel_share
    informed = selection.informed_opponents
    probabilities = {}
    for a, b in permutations(range(n), 2):
        window = selection.window(a)
        mass = sum(rank[r] for r in window)
        if b not in window:
            in_window = 0.0
        elif mass > 0:
            in_window = (informed * rank[b] / mass
                         + (informed * rank[a] / mass + 1.0 - informed) / (len(window) - 1))
        else:
            in_window = 1.0 / (len(window) - 1)
        p = selection.top_share * (duel * top[a] * top[b]
                                   + (duel * top[a] ** 2 + (1.0 - duel) * top[a]) * in_window)
        p += (1.0 - selection.top_share) * rank[a] * in_window
        probabilities[(a, b)] = info * p
    return probabilities


def first_candidates(selection: AdaptiveSelection, n_draws: int, seed: int) -> Counter:
    """Counts of each first candidate as ordered rank pairs; None counts uniform prompts."""
    rank_of = {item: r for r, item in enumerate(selection.items)}
    rng = random.Random(seed)
    counts: Counter = Counter()
    for _ in range(n_draws):
        drawn = selection.draw(rng)
        if drawn.candidates:
            a, b = drawn.candidates[0]
            counts[(rank_of[a], rank_of[b])] += 1
        else:
            counts[None] += 1
    return counts


@pytest.mark.parametrize(("duel_share", "informed"), [(0.0, 0.0), (0.4, 0.0), (1.0, 0.0),
                                                      (0.5, 1.0), (0.0, 0.6)])
@pytest.mark.parametrize("fit", [
    summary([2.0, 1.6, 1.5, 1.45, 0.2, -0.1, -0.3, -1.0, -2.2], [0.3, 0.2, 0.2, 0.4, 0.3, 0.3,
                                                                  0.5, 0.3, 0.6]),
    summary([1.0, 0.9, 0.1, 0.0, -0.5, -2.0], 0.25),
])
def test_pairs_follow_the_claimed_distribution(fit, duel_share, informed):
    selection = AdaptiveSelection.build(fit, top_k=3, newcomer_share=0.3, uniform_share=0.2,
                                        window_sd=2.0, min_window=1, order_weight=0.5,
                                        duel_share=duel_share, informed_opponents=informed)
    assert 0.0 < selection.top_share < 1.0
    n_draws = 200_000
    counts = first_candidates(selection, n_draws, seed=1)
    expected = expected_pair_probabilities(selection)
    expected[None] = selection.uniform_share
    assert sum(expected.values()) == pytest.approx(1.0)
    support = {key for key, p in expected.items() if p > 0}
    assert set(counts) <= support, "a pair the tables give no chance was drawn"
    # χ² wants expected counts of at least 5: the rarer pairs are pooled into one cell.
    common = [key for key in support if expected[key] * n_draws >= 5]
    rare = support - set(common)
    observed = [counts[key] for key in common] + [sum(counts[key] for key in rare)]
    wanted = [expected[key] * n_draws for key in common]
    wanted.append(n_draws - sum(wanted))
    result = chisquare(observed, wanted)
    assert result.pvalue > ALPHA


def test_exposure_is_asked_for_at_the_newcomer_share_with_or_without_a_fit():
    n_draws = 50_000
    for fit in (None, realistic(200)):
        selection = AdaptiveSelection.build(fit, top_k=10, newcomer_share=0.3)
        rng = random.Random(2)
        exposures = sum(selection.draw(rng).exposure for _ in range(n_draws))
        result = chisquare([exposures, n_draws - exposures], [0.3 * n_draws, 0.7 * n_draws])
        assert result.pvalue > ALPHA


def test_the_uniform_share_is_honoured_so_every_pair_keeps_a_chance():
    selection = AdaptiveSelection.build(realistic(500), top_k=10, newcomer_share=0.3,
                                        uniform_share=0.1)
    n_draws = 50_000
    uniform = first_candidates(selection, n_draws, seed=3)[None]
    result = chisquare([uniform, n_draws - uniform], [0.1 * n_draws, 0.9 * n_draws])
    assert result.pvalue > ALPHA


def test_the_top_table_asks_about_the_proposals_around_the_kth():
    selection = AdaptiveSelection.build(realistic(300, seed=4, se=0.15), top_k=10,
                                        newcomer_share=0.0)
    top = selection.top_probabilities()
    assert top.sum() == pytest.approx(1.0)
    assert top.argmax() in range(5, 16)
    assert top[100:].sum() < 1e-3


def test_opponents_are_uniform_within_the_window():
    # top_k = n: no top table, every information draw is a proposal and a window opponent.
    fit = realistic(40, seed=5, se=0.1)
    selection = AdaptiveSelection.build(fit, top_k=40, newcomer_share=0.0, uniform_share=0.0,
                                        window_sd=2.0, informed_opponents=0.0)
    assert selection.top_share == 0.0
    middle = 20
    window = [r for r in selection.window(middle) if r != middle]
    assert 4 <= len(window) < 39
    counts = first_candidates(selection, 300_000, seed=6)
    opponents = Counter({key[1]: c for key, c in counts.items() if key and key[0] == middle})
    assert sum(opponents.values()) > 3000
    assert set(opponents) <= set(window)
    assert chisquare([opponents[r] for r in window]).pvalue > ALPHA


def test_a_top_proposal_meets_its_window_not_only_the_top():
    # Large standard errors (early in a consultation): outside the duels, the top table's
    # proposals are checked against the field around them, not only against each other.
    fit = realistic(60, seed=12, se=1.0)
    selection = AdaptiveSelection.build(fit, top_k=5, newcomer_share=0.0, uniform_share=0.0,
                                        window_sd=1.0, duel_share=0.0, informed_opponents=0.0)
    assert 0.0 < AdaptiveSelection.build(fit, top_k=5, newcomer_share=0.0).duel_share < 1.0
    assert selection.top_share > 0.2
    first = int(selection.top_probabilities().argmax())
    window = [r for r in selection.window(first) if r != first]
    assert len(window) > 10
    counts = first_candidates(selection, 200_000, seed=13)
    opponents = Counter({key[1]: c for key, c in counts.items() if key and key[0] == first})
    assert sum(opponents.values()) > 3000
    assert set(opponents) <= set(window)
    assert chisquare([opponents[r] for r in window]).pvalue > ALPHA


def test_proposals_under_the_top_vote_floor_are_left_out_of_the_top_table():
    fit = realistic(100, seed=14, se=0.3)
    votes = np.full(100, 50)
    votes[[2, 5, 8]] = 3
    fit = summary(fit.abilities, fit.std_errors, votes=votes)
    selection = AdaptiveSelection.build(fit, top_k=10, newcomer_share=0.0, top_min_votes=10)
    top = selection.top_probabilities()
    assert top.sum() == pytest.approx(1.0)
    assert (top[[2, 5, 8]] == 0).all()
    assert top[9] > 0 and top[10] > 0
    # They keep their rank-table weight: the floor only moves them out of the top's duels.
    assert (selection.rank_probabilities()[[2, 5, 8]] > 0).all()


def test_standard_errors_above_the_cap_weigh_alike():
    # Equal abilities, so every proposal is confusable with all: the rank weight is s²,
    # capped — one-sided early records (huge s) do not take the prompts.
    fit = summary(np.zeros(6), [0.5, 1.0, 2.0, 4.0, 6.0, 0.25])
    probabilities = AdaptiveSelection.build(fit, top_k=6, newcomer_share=0.0,
                                            weight_se_cap=1.0).rank_probabilities()
    assert probabilities == pytest.approx(np.array([0.25, 1, 1, 1, 1, 0.0625]) / 4.3125)
    uncapped = AdaptiveSelection.build(fit, top_k=6, newcomer_share=0.0,
                                       weight_se_cap=0.0).rank_probabilities()
    assert uncapped.argmax() == 4


def test_no_fit_yet_gives_exposure_or_uniform_pairs_only():
    selection = AdaptiveSelection.build(None, top_k=10, newcomer_share=0.3)
    rng = random.Random(7)
    draws = [selection.draw(rng) for _ in range(1000)]
    assert all(d.candidates == () for d in draws)
    assert 200 < sum(d.exposure for d in draws) < 400


@pytest.mark.parametrize("n", [1, 2])
def test_one_or_two_proposals(n):
    selection = AdaptiveSelection.build(summary([0.5, -0.5][:n], 0.5), top_k=10,
                                        newcomer_share=0.3)
    rng = random.Random(7)
    for _ in range(200):
        drawn = selection.draw(rng)
        for a, b in drawn.candidates:
            assert {a, b} == {100, 101}
    if n == 1:
        assert selection.draw(rng).candidates == ()


def test_top_k_at_or_above_the_number_of_proposals_spreads_the_votes():
    fit = realistic(20)
    for top_k in (20, 1000):
        selection = AdaptiveSelection.build(fit, top_k=top_k, newcomer_share=0.3)
        assert selection.top_share == 0.0
        rng = random.Random(8)
        seen = {pair for _ in range(2000) for pair in selection.draw(rng).candidates}
        assert len({x for pair in seen for x in pair}) == 20


def test_equal_standard_errors_and_equal_abilities():
    for abilities in (np.linspace(1, -1, 50), np.zeros(50)):
        selection = AdaptiveSelection.build(summary(abilities, 0.2), top_k=5,
                                            newcomer_share=0.3)
        rng = random.Random(9)
        for _ in range(500):
            for a, b in selection.draw(rng).candidates:
                assert a != b and 100 <= a < 150 and 100 <= b < 150


def test_non_finite_values_still_give_valid_pairs():
    abilities = np.array([3.0, np.nan, 1.0, np.inf, 0.0, -np.inf, -1.0, -2.0])
    std_errors = np.array([0.2, 0.3, np.nan, 0.2, np.inf, 0.0, -1.0, 0.4])
    selection = AdaptiveSelection.build(summary(abilities, std_errors), top_k=3,
                                        newcomer_share=0.3)
    assert np.isfinite(selection.top_probabilities()).all()
    assert np.isfinite(selection.rank_probabilities()).all()
    rng = random.Random(10)
    drawn = [pair for _ in range(2000) for pair in selection.draw(rng).candidates]
    assert drawn
    assert all(a != b and 100 <= a < 108 and 100 <= b < 108 for a, b in drawn)
    no_errors = summary(np.linspace(1, -1, 8), np.full(8, np.nan))
    assert AdaptiveSelection.build(no_errors, top_k=3, newcomer_share=0.3).draw(rng)


def test_an_unsorted_summary_is_ranked_by_ability():
    selection = AdaptiveSelection.build(
        summary([0.0, 2.0, -1.0, 1.0], 0.3, items=[10, 20, 30, 40]), top_k=2,
        newcomer_share=0.3)
    assert selection.items.tolist() == [20, 40, 10, 30]


def test_the_structure_is_linear_in_the_number_of_proposals():
    """Build keeps a fixed number of per-proposal tables and nothing per pair, so its size
    (and the work to fill it) grows like n, not n²."""
    for n in (1000, 20_000):
        selection = AdaptiveSelection.build(realistic(n), top_k=10, newcomer_share=0.3)
        tables = [v for v in vars(selection).values() if isinstance(v, memoryview)]
        assert tables and all(len(table) in (0, n) for table in tables)
        assert all(not isinstance(v, (dict, set, list, np.ndarray))
                   for v in vars(selection).values())


def test_draw_is_a_draw_of_proposal_indices():
    selection = AdaptiveSelection.build(realistic(100), top_k=10, newcomer_share=0.3)
    drawn = selection.draw(random.Random(11))
    assert isinstance(drawn, Draw)
    assert all(isinstance(x, int) for pair in drawn.candidates for x in pair)
