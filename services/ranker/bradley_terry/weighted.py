"""`fit_weighted`: the Bradley–Terry fit where each vote counts by its weight, with sandwich
standard errors clustered by voter (`WeightedFit`).

The weighted log posterior is the one `fit` maximises with each pair's wins replaced by the
sum of its votes' weights (a tie: half of its weight to each side), so the same solver runs
on the same objective: with equal weights the fit is the unweighted one. Weights are scaled
to a mean of 1 per vote first, so the prior weighs against the data as in the unweighted
fit. The standard errors are the sandwich's (`standard_errors.sandwich`): the information
of a weighted likelihood is not its precision.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ranker.bradley_terry.estimate import MAX_ITERATIONS, TOLERANCE
from ranker.bradley_terry.graph import ComparisonGraph
from ranker.bradley_terry.likelihood import PRIOR_STRENGTH, Objective
from ranker.bradley_terry.pair_strata import PairStrata, Stratum
from ranker.bradley_terry.solver import maximise
from ranker.bradley_terry.standard_errors import from_information, sandwich
from ranker.bradley_terry.starting_point import starting_point
from ranker.survey_weights import kish_effective_size, unique_rows


@dataclass(frozen=True)
class WeightedFit:
    """A weighted Bradley–Terry fit over items 0..n-1 (arrays shape (n,), logits).

    Attributes
    ----------
    abilities : ndarray of float64
        Weighted penalised MLE θ, centred (mean 0).
    std_errors : ndarray of float64
        Sandwich standard errors of the centred abilities, clustered by voter.
    ci_low, ci_high : ndarray of float64
        95% intervals ``abilities ∓ 1.96 std_errors``.
    model_std_errors : ndarray of float64 or None
        What the Fisher information of the weighted likelihood alone would claim (as if
        the weights were counts of independent votes): for comparison, not for intervals;
        None unless asked for (`with_model_std_errors`).
    effective_votes : float
        Kish's (Σw)² / Σw² over the votes.
    voters : int
        Clusters (voters) the votes came from.
    iterations : int
        Newton iterations taken.
    exact_std_errors : bool
        False when the standard errors come from the large-n approximation.
    """

    abilities: np.ndarray
    std_errors: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    model_std_errors: np.ndarray | None
    effective_votes: float
    voters: int
    iterations: int
    exact_std_errors: bool


def _check(n_items: int, winners: np.ndarray, losers: np.ndarray, ties: np.ndarray,
           weights: np.ndarray, voters: np.ndarray) -> None:
    shape = winners.shape
    if winners.ndim != 1 or any(a.shape != shape for a in (losers, ties, weights, voters)):
        raise ValueError("winners, losers, ties, weights and voters must be 1-D of one length")
    if not (np.all(np.isfinite(weights)) and np.all(weights >= 0)):
        raise ValueError("weights must be finite and >= 0")
    if shape[0] and float(weights.sum()) <= 0:
        raise ValueError("weights must not all be 0")
    for name, items in (("winners", winners), ("losers", losers)):
        if items.size and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"{name} must lie in [0, {n_items})")


def fit_weighted(
    n_items: int,
    winners: np.ndarray,
    losers: np.ndarray,
    ties: np.ndarray,
    weights: np.ndarray,
    voters: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    prior_strength: float = PRIOR_STRENGTH,
    init: np.ndarray | None = None,
    tol: float = TOLERANCE,
    max_iter: int = MAX_ITERATIONS,
    exact: bool | None = None,
    with_model_std_errors: bool = False,
) -> WeightedFit:
    """Fit Bradley–Terry abilities with each vote counted by its weight.

    Parameters
    ----------
    n_items : int
        Number of items.
    winners, losers : ndarray of int, shape (n_votes,)
        The items of each vote, the winner first (a tie: either order), i ≠ j.
    ties : ndarray of bool, shape (n_votes,)
        Whether the vote was a tie (half of its weight to each side).
    weights : ndarray of float, shape (n_votes,)
        Each vote's weight (≥ 0, any scale: scaled to a mean of 1).
    voters : ndarray of int, shape (n_votes,)
        The voter (cluster) of each vote, any integers: the standard errors treat one
        voter's votes as correlated and different voters' as independent.
    groups : ndarray of int, shape (n_votes, k), optional
        The calibration groups of each vote (`VoteWeights.calibration_groups`); constant
        within a voter (a voter whose group changes counts as one voter per group).
    prior_strength, init, tol, max_iter
        As for `fit`.
    exact : bool or None
        Exact sandwich (dense, O(n³)) or the per-item design-effect approximation (O(votes)
        and the belief-propagation variances); None: exact up to
        `sandwich.EXACT_MAX_ITEMS` items.
    with_model_std_errors : bool
        Also compute `model_std_errors` (for comparisons; it costs another factorisation).

    Returns
    -------
    WeightedFit

    Raises
    ------
    ValueError
        Malformed input.
    FitDidNotConverge
        As for `fit`.
    """
    winners = np.asarray(winners, dtype=np.intp)
    losers = np.asarray(losers, dtype=np.intp)
    ties = np.asarray(ties, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    voters = np.asarray(voters)
    _check(n_items, winners, losers, ties, weights, voters)
    n_votes = winners.shape[0]
    if n_votes:
        weights = weights * (n_votes / float(weights.sum()))
    winner_share = np.where(ties, 0.5, 1.0) * weights
    objective = Objective(ComparisonGraph(n_items, *_pair_totals(
        n_items, winners, losers, winner_share, weights - winner_share), prior_strength))
    point = starting_point(objective, init)
    iterations = 0
    if n_items:
        point, iterations = maximise(objective, point, tol, max_iter)
    abilities = point.abilities - point.abilities.mean() if n_items else point.abilities
    model = from_information(objective, point, exact)[0] if with_model_std_errors else None
    # One cluster per (voter, group) combination, so that every cluster has one group.
    keys = voters[:, None] if groups is None else np.column_stack([voters, groups])
    if n_votes:
        unique, clusters, _ = unique_rows(keys)
        cluster_groups = None if groups is None else unique[:, 1:]
        scores = sandwich.voter_scores(point.abilities, winners, losers, ties, weights,
                                       clusters, unique.shape[0])
        errors, exact_errors = sandwich.std_errors(
            objective, point, functools.partial(sandwich.meat, scores, cluster_groups), exact)
    else:
        # No votes, no scores to spread: the prior's uncertainty is all there is.
        errors, exact_errors = from_information(objective, point, True)
    return WeightedFit(
        abilities=abilities,
        std_errors=errors,
        ci_low=abilities - 1.96 * errors,
        ci_high=abilities + 1.96 * errors,
        model_std_errors=model,
        effective_votes=kish_effective_size(weights),
        voters=int(np.unique(voters).shape[0]),
        iterations=iterations,
        exact_std_errors=exact_errors,
    )


def fit_weighted_strata(
    n_items: int,
    strata: PairStrata | Sequence[Stratum],
    weights: Sequence[float] | np.ndarray,
    *,
    groups: np.ndarray | None = None,
    prior_strength: float = PRIOR_STRENGTH,
    init: np.ndarray | None = None,
    tol: float = TOLERANCE,
    max_iter: int = MAX_ITERATIONS,
    exact: bool | None = None,
) -> WeightedFit:
    """`fit_weighted` from pair counts: every vote of stratum s weighs `weights[s]`, and
    votes count as independent (no voter is known), so the sandwich is stratified but not
    clustered (`sandwich.stratum_meat`): the spread between the calibration `groups`
    (which the weighting holds fixed) is taken out, the spread within them kept.

    Parameters
    ----------
    strata : PairStrata, or a sequence of (i, j, wins_ij, wins_ji, ties)
        Each stratum's pairs (indices in [0, n_items), i ≠ j) with the wins of i over j, of
        j over i, and the ties, as counts (ties not halved): e.g. one `PairCounts` per
        attribute value, with the votes of unknown value as a stratum of weight 1. A
        sequence is laid out as `PairStrata.of` does (a sort of every stratum's pairs).
    weights : sequence of float
        One weight ≥ 0 per stratum (scaled so that the mean vote weighs 1).
    groups : ndarray of int, shape (n_strata, k), optional
        Each stratum's calibration groups (`VoteWeights.calibration_groups` of weights made
        per stratum); None: each stratum is a group of its own (strata that are the groups).

    Returns
    -------
    WeightedFit
        With `voters` 0 (not known) and `effective_votes` Kish's over the votes.
    """
    if not isinstance(strata, PairStrata):
        strata = PairStrata.of(n_items, strata)
    if strata.n_items != n_items:
        raise ValueError(f"strata over {strata.n_items} items, not {n_items}")
    scale = np.asarray(weights, dtype=np.float64).reshape(-1)
    if scale.shape[0] != strata.n_strata:
        raise ValueError("one weight per stratum")
    votes = strata.votes()
    if np.any(~np.isfinite(scale)) or np.any(scale < 0):
        raise ValueError("weights must be finite and >= 0")
    total = float(np.dot(votes, scale))
    if total > 0:
        scale = scale * (votes.sum() / total)
    wins_ij, wins_ji = strata.weighted_wins(scale)
    objective = Objective(ComparisonGraph(n_items, strata.i, strata.j, wins_ij, wins_ji,
                                          prior_strength))
    point = starting_point(objective, init)
    iterations = 0
    if n_items:
        point, iterations = maximise(objective, point, tol, max_iter)
    abilities = point.abilities - point.abilities.mean() if n_items else point.abilities
    if votes.sum() > 0:
        errors, exact_errors = sandwich.std_errors(objective, point, functools.partial(
            sandwich.stratum_meat, point.abilities, strata, scale, groups=groups), exact)
    else:
        errors, exact_errors = from_information(objective, point, True)
    squares = float(np.dot(votes, scale**2))
    return WeightedFit(
        abilities=abilities, std_errors=errors, ci_low=abilities - 1.96 * errors,
        ci_high=abilities + 1.96 * errors, model_std_errors=None,
        effective_votes=float(votes.sum()) ** 2 / squares if squares > 0 else 0.0,
        voters=0, iterations=iterations, exact_std_errors=exact_errors)


# Up to this many possible pairs (n² / 2: 2,000 items), votes are summed per pair by counting
# into one array of that size (32 MB of float64 for each side), whose order is the canonical
# one: no sort of a million votes.
_DENSE_PAIRS_MAX = 2_000_000


def _pair_totals(n_items: int, winners: np.ndarray, losers: np.ndarray,
                 winner_share: np.ndarray, loser_share: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each pair's weighted wins, as (i, j, wins_ij, wins_ji) with i < j: canonical (sorted,
    no repeats) when the items are few enough to count by pair key, else one entry per vote
    (`ComparisonGraph` sorts and sums them)."""
    if n_items * n_items // 2 > _DENSE_PAIRS_MAX or not winners.size:
        return winners, losers, winner_share, loser_share
    lo = np.minimum(winners, losers)
    hi = np.maximum(winners, losers)
    key = lo.astype(np.int64) * n_items + hi
    size = n_items * n_items
    winner_is_lo = winners == lo
    lo_wins = np.bincount(key, np.where(winner_is_lo, winner_share, loser_share), size)
    hi_wins = np.bincount(key, np.where(winner_is_lo, loser_share, winner_share), size)
    pairs = np.flatnonzero((lo_wins > 0) | (hi_wins > 0))
    return pairs // n_items, pairs % n_items, lo_wins[pairs], hi_wins[pairs]
