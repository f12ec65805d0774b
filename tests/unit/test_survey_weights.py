"""Vote weights: raking and post-stratification reach the population's shares, trimming
bounds the weights, and Kish's effective size says what the weighting costs."""

from __future__ import annotations

import numpy as np
import pytest

from ranker import survey_weights as sw
from ranker.survey_weights import UNKNOWN


def weighted_shares(values: np.ndarray, weights: np.ndarray, attribute: int,
                    n_values: int) -> np.ndarray:
    column = values[:, attribute]
    known = column != UNKNOWN
    return np.bincount(column[known], weights[known], n_values) / weights.sum()


def skewed_votes(rng: np.random.Generator, n_votes: int, sizes: tuple[int, ...]) -> np.ndarray:
    """Votes whose attributes are associated (the second follows the first) and skewed."""
    columns = []
    for size in sizes:
        p = rng.dirichlet(np.full(size, 0.7))
        columns.append(rng.choice(size, n_votes, p=p))
    columns[1] = np.where(rng.random(n_votes) < 0.4, columns[0] % sizes[1], columns[1])
    return np.column_stack(columns)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_raking_reaches_every_margin(seed):
    rng = np.random.default_rng(seed)
    sizes = (5, 4, 3)
    values = skewed_votes(rng, 20_000, sizes)
    margins = [rng.dirichlet(np.full(size, 3.0)) for size in sizes]
    result = sw.vote_weights(values, margins, max_weight=1e9)
    assert result.method == sw.RAKING
    assert result.trimmed_votes == 0
    assert result.margin_gap < 1e-9
    for attribute, margin in enumerate(margins):
        np.testing.assert_allclose(weighted_shares(values, result.weights, attribute,
                                                   sizes[attribute]), margin, atol=1e-9)
    assert result.weights.mean() == pytest.approx(1.0)
    # Every vote of a cell weighs the same.
    for cell in range(result.cells.shape[0]):
        assert np.ptp(result.weights[result.cell_of_vote == cell]) == 0.0


def test_votes_with_an_unknown_value_keep_their_share():
    rng = np.random.default_rng(3)
    values = skewed_votes(rng, 10_000, (3, 4))
    values[rng.random(10_000) < 0.25, 0] = UNKNOWN
    unknown_before = float(np.mean(values[:, 0] == UNKNOWN))
    margins = [np.array([0.5, 0.3, 0.2]), np.array([0.1, 0.2, 0.3, 0.4])]
    result = sw.vote_weights(values, margins, max_weight=1e9)
    unknown_after = result.weights[values[:, 0] == UNKNOWN].sum() / result.weights.sum()
    assert unknown_after == pytest.approx(unknown_before, abs=1e-9)
    np.testing.assert_allclose(weighted_shares(values, result.weights, 0, 3),
                               margins[0] * (1 - unknown_before), atol=1e-9)
    np.testing.assert_allclose(weighted_shares(values, result.weights, 1, 4), margins[1],
                               atol=1e-9)


def test_one_attribute_is_post_stratified_exactly():
    values = np.repeat([0, 1, 2], [600, 300, 100])[:, None]
    result = sw.vote_weights(values, [np.array([0.2, 0.3, 0.5])])
    assert result.method == sw.POST_STRATIFICATION
    # Population share / vote share: 0.2/0.6, 0.3/0.3, 0.5/0.1.
    np.testing.assert_allclose(result.cell_weights, [1 / 3, 1.0, 5.0])
    assert result.effective_votes == pytest.approx(
        1000**2 / (600 / 9 + 300 + 100 * 25))
    assert result.design_effect == pytest.approx(1000 / result.effective_votes)


def test_crossed_cells_are_post_stratified_when_every_cell_has_enough_votes():
    rng = np.random.default_rng(4)
    values = skewed_votes(rng, 40_000, (3, 2))
    joint = np.array([[0.1, 0.2], [0.25, 0.05], [0.3, 0.1]])
    margins = [joint.sum(axis=1), joint.sum(axis=0)]
    result = sw.vote_weights(values, margins, joint=joint, max_weight=1e9)
    assert result.method == sw.POST_STRATIFICATION
    cell_share = np.zeros((3, 2))
    np.add.at(cell_share, (values[:, 0], values[:, 1]), result.weights)
    np.testing.assert_allclose(cell_share / result.weights.sum(), joint, atol=1e-12)
    # A cell the population holds with too few votes: raking to the margins instead.
    sparse = values[~((values[:, 0] == 1) & (values[:, 1] == 1))][:-1]
    sparse = np.vstack([sparse, [[1, 1]] * (sw.MIN_CELL_VOTES - 1)])
    fallback = sw.vote_weights(sparse, margins, joint=joint, max_weight=1e9)
    assert fallback.method == sw.RAKING
    np.testing.assert_allclose(weighted_shares(sparse, fallback.weights, 0, 3), margins[0],
                               atol=1e-9)


def test_a_cell_with_a_handful_of_votes_is_trimmed_and_said_so():
    # 5 votes stand for a tenth of the population: untrimmed they would weigh 200 each.
    values = np.concatenate([np.zeros(9_995, dtype=int), np.ones(5, dtype=int)])[:, None]
    result = sw.vote_weights(values, [np.array([0.9, 0.1])])
    assert result.weights.max() <= sw.MAX_WEIGHT * (1 + 1e-12)
    assert result.weights.mean() == pytest.approx(1.0)
    assert result.trimmed_votes == 5
    assert result.margin_gap == pytest.approx(0.1 - 5 * sw.MAX_WEIGHT / 10_000, rel=1e-6)
    untouched = sw.vote_weights(values, [np.array([0.9995, 0.0005])])
    assert untouched.trimmed_votes == 0


@pytest.mark.parametrize("seed", range(5))
def test_trimming_bounds_the_weights_and_keeps_their_total_and_order(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 1_000, 40)
    weights = rng.lognormal(0.0, 1.5, 40)
    cap = float(rng.uniform(1.5, 6.0))
    trimmed = sw.trim(weights, counts, cap)
    assert trimmed.max() <= cap * (1 + 1e-12)
    assert float(np.dot(counts, trimmed)) == pytest.approx(float(counts.sum()))
    # Trimming never reorders the cells, and leaves the uncapped ones in proportion.
    order = np.argsort(weights)
    assert np.all(np.diff(trimmed[order]) >= -1e-12)
    free = trimmed < cap * (1 - 1e-12)
    ratios = trimmed[free] / weights[free]
    assert np.ptp(ratios) < 1e-9 * ratios.max()


def test_a_value_nobody_declared_is_listed_and_the_rest_share_its_margin():
    values = np.repeat([0, 1], [500, 500])[:, None]
    result = sw.vote_weights(values, [np.array([0.6, 0.2, 0.2])])
    assert result.unrepresented == ((0, 2),)
    assert result.method == sw.RAKING
    np.testing.assert_allclose(result.cell_weights, [1.5, 0.5])


def test_no_margins_means_equal_weights():
    values = np.array([[0], [1], [UNKNOWN]])
    result = sw.vote_weights(values, [None])
    assert result.method == sw.UNWEIGHTED
    np.testing.assert_array_equal(result.weights, 1.0)
    assert result.effective_votes == pytest.approx(3.0)


@pytest.mark.parametrize("margins, message", [
    ([np.array([0.5, 0.4])], "sum to 1"),
    ([np.array([1.2, -0.2])], ">= 0"),
    ([np.array([0.5, np.nan])], "finite"),
])
def test_malformed_margins_are_refused(margins, message):
    with pytest.raises(ValueError, match=message):
        sw.vote_weights(np.zeros((3, 1), dtype=int), margins)


def test_a_value_index_out_of_range_is_refused():
    with pytest.raises(ValueError, match="values"):
        sw.vote_weights(np.array([[0], [2]]), [np.array([0.5, 0.5])])


def test_rows_standing_for_many_votes_weigh_as_the_votes_would():
    """The ranker keeps counts per segment, not votes: one row per segment with its count
    gives the weights of the votes one by one."""
    rng = np.random.default_rng(5)
    values = skewed_votes(rng, 5_000, (3, 2))
    margins = [np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.4])]
    one_by_one = sw.vote_weights(values, margins)
    cells, _, counts = sw.unique_rows(values)
    grouped = sw.vote_weights(cells, margins, counts=counts)
    np.testing.assert_allclose(grouped.weights, one_by_one.cell_weights, rtol=1e-12)
    assert grouped.effective_votes == pytest.approx(one_by_one.effective_votes)
    assert grouped.method == one_by_one.method


def test_standard_errors_hold_fixed_only_what_the_weights_fix():
    """The calibration groups are the attributes with margins: an attribute without any
    fixes none of its groups' totals, and no margins at all fix nothing."""
    rng = np.random.default_rng(4)
    values = skewed_votes(rng, 5_000, (3, 4))
    raked = sw.vote_weights(values, [np.array([0.5, 0.3, 0.2]), None], min_cell_votes=10**9)
    assert raked.method == sw.RAKING and raked.used == (0,)
    np.testing.assert_array_equal(raked.calibration_groups(), values[:, [0]])
    stratified = sw.vote_weights(values, [None, np.array([0.1, 0.2, 0.3, 0.4])])
    assert stratified.method == sw.POST_STRATIFICATION
    groups = stratified.calibration_groups()
    assert groups is not None and groups.shape == (5_000, 1)
    # One group per value of the second attribute, whatever the first one's.
    assert len(set(zip(groups[:, 0].tolist(), values[:, 1].tolist(), strict=True))) == 4
    unweighted = sw.vote_weights(values, [None, None])
    assert unweighted.method == sw.UNWEIGHTED and unweighted.calibration_groups() is None
