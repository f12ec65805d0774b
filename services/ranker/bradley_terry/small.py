"""Fits of a few items (a cause's first proposals): Newton's method on the dense Hessian.

The general solver (`solver.maximise`) is built for 34,000 items: sparse products, connected
components, few-vote items settled apart, each a scipy object per call. On a handful of
items those fixed costs are all there is (~5 ms of CPU for 4 items), and a ranker serving a
thousand small causes refits many of them every second. Here the same maximum (ℓ is
strictly concave, so it is unique) is found with plain numpy on n × n arrays: each Newton
direction solved exactly by Cholesky, one backtracking step length for all items, and the
standard errors from the same factorisation at the optimum (exact, as `standard_errors`
computes them up to `EXACT_MAX_ITEMS`).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ranker.bradley_terry.errors import FitDidNotConverge
from ranker.bradley_terry.few_votes import MAX_ITEM_STEP
from ranker.bradley_terry.graph import ComparisonGraph, sum_by

MAX_ITEMS = 32
"""Fits of up to this many items take this path: the dense Hessian is at most 8 KB, and a
Newton iteration costs tens of microseconds."""

# As in the general solver: accept a step that gains a ten-thousandth of what the slope
# promises, and stop halving once a step is below the rounding of any ability.
_ARMIJO = 1e-4
_MAX_HALVINGS = 60


def _terms(graph: ComparisonGraph, abilities: np.ndarray
           ) -> tuple[float, np.ndarray, np.ndarray]:
    """ℓ, ∇ℓ (n,) and the negative Hessian H = L + λI (n, n) at `abilities`."""
    d = abilities[graph.i] - abilities[graph.j]
    # log σ(d) = log σ(|d|) + min(d, 0): every term ≤ 0, nothing cancels when saturated.
    log_p_abs = -np.logaddexp(0.0, -np.abs(d))
    lam = graph.prior_strength
    value = float(np.sum(graph.totals * log_p_abs + graph.wins_ij * np.minimum(d, 0.0)
                         - graph.wins_ji * np.maximum(d, 0.0))
                  - 0.5 * lam * np.dot(abilities, abilities))
    with np.errstate(over="ignore"):
        p_ij = 1.0 / (1.0 + np.exp(-d))  # σ(d)
        p_ji = 1.0 / (1.0 + np.exp(d))  # σ(−d), never 1 − σ(d) (0 past d ≈ 37)
    residual = graph.wins_ij * p_ji - graph.wins_ji * p_ij
    n = graph.n
    gradient = sum_by(graph.i, residual, n) - sum_by(graph.j, residual, n)
    gradient -= lam * abilities
    information = graph.totals * p_ij * p_ji
    hessian = np.zeros((n, n))
    np.add.at(hessian, (graph.i, graph.j), -information)
    hessian += hessian.T
    hessian[np.diag_indices(n)] = (sum_by(graph.i, information, n)
                                   + sum_by(graph.j, information, n) + lam)
    return value, gradient, hessian


def _cholesky(hessian: np.ndarray) -> np.ndarray:
    try:
        return scipy.linalg.cho_factor(hessian, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise FitDidNotConverge(f"Hessian not positive definite ({exc})") from None


def start(graph: ComparisonGraph, init: np.ndarray | None) -> np.ndarray:
    """Where Newton's method starts: `init` (padded with zeros, or truncated, to n), items
    in no pair at 0 (their optimum exactly), or 0 when that has the higher ℓ.

    Raises
    ------
    ValueError
        `init` is not 1-D or holds a non-finite value.
    """
    n = graph.n
    abilities = np.zeros(n)
    if init is None:
        return abilities
    init = np.asarray(init, dtype=np.float64)
    if init.ndim != 1 or not np.all(np.isfinite(init)):
        raise ValueError("init must be a 1-D array of finite abilities")
    m = min(init.shape[0], n)
    abilities[:m] = init[:m]
    in_pairs = np.zeros(n, dtype=bool)
    in_pairs[graph.i] = True
    in_pairs[graph.j] = True
    abilities[~in_pairs] = 0.0
    if _terms(graph, abilities)[0] < _terms(graph, np.zeros(n))[0]:
        return np.zeros(n)
    return abilities


def maximise(graph: ComparisonGraph, start: np.ndarray, tol: float, max_iter: int
             ) -> tuple[np.ndarray, int, float, np.ndarray]:
    """Newton ascent from `start` (n,); (abilities, iterations, ℓ, diag(H⁻¹)) at the optimum.

    Stops after a full Newton step, solved exactly, that moves no ability by more than
    √tol logits, as `solver.maximise` does; one more step follows when that one moved any
    ability by more than tol (an item whose votes are all won has so little curvature that
    the quadratic error of its last step can exceed tol), so the abilities end within about
    tol logits of the optimum.

    Raises
    ------
    FitDidNotConverge
        No step improved ℓ, or `max_iter` iterations did not reach `tol`.
    """
    abilities = start
    value, gradient, hessian = _terms(graph, abilities)
    step_tol = float(np.sqrt(tol))
    polishing = False
    for iteration in range(max_iter):
        direction = scipy.linalg.cho_solve(_cholesky(hessian), gradient, check_finite=False)
        size = float(np.max(np.abs(direction), initial=0.0))
        capped = np.clip(direction, -MAX_ITEM_STEP, MAX_ITEM_STEP)
        slope = float(np.dot(gradient, capped))
        if slope <= 0.0:  # capping cost the ascent: the scaled gradient never does
            capped = np.clip(gradient / np.diag(hessian), -MAX_ITEM_STEP, MAX_ITEM_STEP)
            slope = float(np.dot(gradient, capped))
        # ℓ sums terms ≤ 0: differences below this are rounding, not a failure to ascend.
        slack = 1e-13 * (1.0 + abs(value))
        step = 1.0
        for _ in range(_MAX_HALVINGS):
            trial = abilities + step * capped
            trial_value, trial_gradient, trial_hessian = _terms(graph, trial)
            if trial_value >= value + _ARMIJO * step * slope - slack:
                break
            step *= 0.5
        else:
            raise FitDidNotConverge(
                f"no ascent step after {_MAX_HALVINGS} halvings at iteration {iteration} "
                f"(Newton step {size:.3g} logits)")
        abilities, value, gradient, hessian = trial, trial_value, trial_gradient, trial_hessian
        if polishing:
            break
        if step == 1.0 and size <= step_tol:
            if size <= tol:
                break
            polishing = True
    else:
        raise FitDidNotConverge(
            f"Newton step still {size:.3g} logits (> {step_tol:.3g}) after {max_iter} "
            "iterations")
    inverse = scipy.linalg.cho_solve(_cholesky(hessian), np.eye(graph.n), check_finite=False)
    return abilities, iteration + 1, value, np.diag(inverse).copy()
