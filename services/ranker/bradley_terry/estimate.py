"""`fit`: the penalised maximum-likelihood abilities with their standard errors (`BTFit`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranker.bradley_terry import small, solver, standard_errors
from ranker.bradley_terry.graph import ComparisonGraph
from ranker.bradley_terry.likelihood import PRIOR_STRENGTH, Objective
from ranker.bradley_terry.starting_point import starting_point

# `fit`'s defaults, named so that a fit can be reproduced with the settings it ran with.
TOLERANCE = 1e-6
MAX_ITERATIONS = 200


@dataclass(frozen=True)
class BTFit:
    """One Bradley–Terry fit over items 0..n-1 (all arrays shape (n,), abilities in logits).

    Attributes
    ----------
    abilities : ndarray of float64
        Penalised MLE θ, centred (mean 0).
    std_errors : ndarray of float64
        Standard errors of the centred abilities from the Fisher information (logits).
    ci_low, ci_high : ndarray of float64
        95% intervals ``abilities ∓ 1.96 std_errors``.
    iterations : int
        Newton iterations taken.
    log_posterior : float
        ℓ(θ) at the optimum (unnormalised: the Gaussian normalising constant is omitted).
    exact_std_errors : bool
        False when some standard errors come from the large-component approximation.
    """

    abilities: np.ndarray
    std_errors: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    iterations: int
    log_posterior: float
    exact_std_errors: bool = True

    @classmethod
    def with_intervals(cls, abilities: np.ndarray, errors: np.ndarray, iterations: int,
                       log_posterior: float, exact_std_errors: bool) -> BTFit:
        """The fit of `abilities` with their standard `errors` and 95% intervals."""
        return cls(abilities=abilities, std_errors=errors, ci_low=abilities - 1.96 * errors,
                   ci_high=abilities + 1.96 * errors, iterations=iterations,
                   log_posterior=log_posterior, exact_std_errors=exact_std_errors)


def fit(
    n_items: int,
    i: np.ndarray,
    j: np.ndarray,
    wins_ij: np.ndarray,
    wins_ji: np.ndarray,
    *,
    prior_strength: float = PRIOR_STRENGTH,
    init: np.ndarray | None = None,
    tol: float = TOLERANCE,
    max_iter: int = MAX_ITERATIONS,
    with_std_errors: bool = True,
    exact: bool | None = None,
    exact_component_max: int | None = None,
) -> BTFit:
    """Fit Bradley–Terry abilities by penalised maximum likelihood.

    Parameters
    ----------
    n_items : int
        Number of items; items that appear in no pair are included (θ = 0, SE ≈ 1/√λ).
    i, j : ndarray of int, shape (p,)
        The two items of each pair, in [0, n_items), i ≠ j. Repeated pairs are summed. Pairs
        already canonical — i < j, sorted by (i, j), no repeats, as `PairCounts.subset`
        returns them — are used without copying or sorting.
    wins_ij, wins_ji : ndarray of float, shape (p,)
        Wins of i over j and of j over i, ≥ 0, ties counted as half a win to each side
        (see `PairCounts.subset`). Pairs with no wins either way are ignored.
    prior_strength : float
        λ > 0, precision of the N(0, 1/λ) prior on each ability (logits⁻²).
    init : ndarray of float, shape (m,), optional
        Warm start (e.g. the previous fit). Shorter than n_items: padded with zeros; longer:
        truncated. Any finite values work: in each connected component the start is the
        better (higher ℓ) of `init` and 0, so a stale or misaligned start costs little; a
        close one saves iterations.
    tol : float
        Converged once a full Newton step moving no ability by more than √tol logits, and
        solved so that its own error is below tol, has been taken; by quadratic convergence
        the abilities are then within about tol logits of the optimum (default: 1e-4 logits
        for the last step, ~1e-8 left — far below what a score or interval shows).
    max_iter : int
        Newton iterations allowed.
    with_std_errors : bool
        False skips the standard errors (then NaN, with ``exact_std_errors`` False): for
        callers that only need abilities.
    exact, exact_component_max
        How the standard errors are computed (`standard_errors.std_errors`); by default
        exactly up to `standard_errors.EXACT_MAX_ITEMS` items.

    Returns
    -------
    BTFit

    Raises
    ------
    ValueError
        Malformed input (shapes, index range, i == j, negative or non-finite wins, bad init).
    FitDidNotConverge
        The tolerance was not reached within `max_iter` iterations (never a partial answer).
    """
    graph = ComparisonGraph(n_items, i, j, wins_ij, wins_ji, prior_strength)
    if 0 < n_items <= min(small.MAX_ITEMS, solver.DENSE_MAX_ITEMS) and exact is not False \
            and exact_component_max is None:
        return _small_fit(graph, init, tol, max_iter, with_std_errors)
    objective = Objective(graph)
    point = starting_point(objective, init)
    iterations = 0
    if n_items:
        point, iterations = solver.maximise(objective, point, tol, max_iter)
    # At the optimum every component already has mean 0 up to ~tol; centring exactly is free
    # and leaves the information (which only sees differences) valid for the errors.
    abilities = point.abilities - point.abilities.mean() if n_items else point.abilities
    if with_std_errors:
        errors, exact = standard_errors.from_information(objective, point, exact,
                                                         exact_component_max)
    else:
        errors, exact = np.full(n_items, np.nan), False
    objectives = point.objectives if point.objectives is not None \
        else objective.objectives(point.abilities)
    objective_value = float(objectives.sum()) if n_items else 0.0
    return BTFit.with_intervals(abilities, errors, iterations, objective_value, exact)


def _small_fit(graph: ComparisonGraph, init: np.ndarray | None, tol: float, max_iter: int,
               with_std_errors: bool) -> BTFit:
    """`fit` of a few items (`small`): the same optimum, and exact standard errors."""
    found, iterations, objective_value, inverse_diagonal = small.maximise(
        graph, small.start(graph, init), tol, max_iter)
    abilities = found - found.mean()
    if with_std_errors:
        # diag(C H⁻¹ C) = diag(H⁻¹) − 1/(nλ) (see `standard_errors`).
        variances = inverse_diagonal - 1.0 / (graph.n * graph.prior_strength)
        errors, exact = np.sqrt(np.maximum(variances, 0.0)), True
    else:
        errors, exact = np.full(graph.n, np.nan), False
    return BTFit.with_intervals(abilities, errors, iterations, objective_value, exact)
