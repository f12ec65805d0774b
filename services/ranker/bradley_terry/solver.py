"""Newton's method for the maximum of ℓ: inexact directions by conjugate gradients, one
backtracking step length per connected component.

Newton directions come from conjugate gradients with a Jacobi preconditioner on the subspace
orthogonal to each component's constant mode (whose part is solved exactly), to an accuracy
that tightens as the steps shrink; products with the Hessian run in single precision while
the accuracy asked is loose. A trial point is accepted by an Armijo test, which a lower
bound on the rise of ℓ usually decides from the slopes at the step's two ends (ℓ is concave,
and its curvature along the step is bounded), so that the fused pass of `Objective.evaluate`
can leave out ℓ and its logarithm per pair: an accepted step costs one pass without them,
and ℓ is computed where the bound cannot decide and at the last step, which also leaves the
information at the optimum for the standard errors. On up to `DENSE_MAX_ITEMS`
items, a direction CG does not find quickly (long chains) comes from a dense Cholesky solve.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse

from ranker.bradley_terry.errors import FitDidNotConverge
from ranker.bradley_terry.few_votes import MAX_ITEM_STEP, FewVoteItems
from ranker.bradley_terry.graph import sum_by
from ranker.bradley_terry.likelihood import Objective, Point, dot

DENSE_MAX_ITEMS = 2000
"""Up to this many items a stalled CG falls back to a dense Cholesky solve (≤ 32 MB, ~0.1 s),
and products stay in double precision (fits this small are fast either way)."""

# The usual sufficient-increase fraction: accept a step that gains a ten-thousandth of what
# the slope promises.
_ARMIJO = 1e-4
# 2⁻⁶⁰ of a step is below the rounding of any ability: further halvings cannot ascend.
_MAX_HALVINGS = 60
# A well-conditioned graph needs tens to hundreds of CG iterations; this only stops a
# pathological solve (whose last iterate is still an ascent direction).
_CG_MAX_ITER = 5000
# A solve needing more than 200 CG iterations marks an ill-conditioned graph (a long chain
# needs ~n): on up to DENSE_MAX_ITEMS items one dense Cholesky (≤ 0.1 s) is the cheaper,
# exact solve, and the rest of the fit uses it.
_CG_DENSE_FALLBACK_ITER = 200
# A direction solved to a tenth of the uncoupled step keeps the iterates close to Newton's
# far from the optimum, at a fraction of the CG iterations of a tight solve.
_CG_UNCOUPLED_SHARE = 0.1
# Products in single precision err by ~1e-6 of the solution's size: they are used only for
# accuracies of at least 2e-6 logits (so never for the final direction at the default tol)...
_SINGLE_MIN_ACCURACY = 2e-6
# ...and at least a thousandth of the uncoupled step (the solution's size), a thousand times
# their own error...
_SINGLE_RELATIVE_ACCURACY = 1e-3
# ...for a few iterations at most: what they leave unsolved is finished in double.
_SINGLE_MAX_ITER = 40


def _pcg(
    objective: Objective,
    point: Point,
    rhs: np.ndarray,
    start: np.ndarray | None,
    accuracy: float,
    max_iter: int,
    single: scipy.sparse.csr_matrix | None = None,
) -> tuple[np.ndarray, bool]:
    """Conjugate gradients for H x = rhs on the subspace of zero per-component sums.

    With `single` (U in float32), the products A d inside the iteration are computed in
    single precision (a third less memory traffic per product; relative error ~1e-6 of |x|,
    far below the accuracy asked of a non-final Newton direction); vectors, diag(H) and the
    first residual stay in double.

    `rhs` must have zero per-component sums; `start` (or 0) is the first iterate. The Jacobi
    preconditioner is projected onto the subspace. Returns (x, converged): converged when the
    residual r = rhs − H x scaled by diag(H) is at most `accuracy` in every item — r / diag(H)
    is what a further Newton step would move each item by if the items were uncoupled, so
    this bounds the error in logits directly, and it is tightest for the weakly measured
    items where a relative 2-norm would be loosest. Otherwise x is the last iterate — still
    an ascent direction (every CG iterate from 0 is), which the Newton loop may use but never
    accepts as final.
    """
    graph = objective.graph
    diagonal = point.diagonal
    if start is None:
        x = np.zeros_like(rhs)
        r = rhs.copy()
    else:
        x = start.copy()
        r = rhs - objective.hessian_product(x, diagonal)
    scaled = r / diagonal
    z = graph.centred(scaled)
    d = z.copy()
    rz = dot(r, z)
    for _ in range(max_iter):
        if float(np.max(np.abs(scaled), initial=0.0)) <= accuracy or rz <= 0.0:
            return x, True
        if single is None:
            hd = objective.hessian_product(d, diagonal)
        else:
            d32 = d.astype(np.float32)
            hd = diagonal * d - (single @ d32 + single.T @ d32)
        curvature = dot(d, hd)
        if curvature <= 0.0:
            return x, False
        step = rz / curvature
        x += step * d
        r -= step * hd
        np.divide(r, diagonal, out=scaled)
        z = graph.centred(scaled)
        rz_next = dot(r, z)
        d *= rz_next / rz
        d += z
        rz = rz_next
    return x, float(np.max(np.abs(scaled), initial=0.0)) <= accuracy


class _Directions:
    """Newton directions H⁻¹∇ℓ for one fit: CG, or a dense Cholesky when CG stalls."""

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.dense = objective.graph.n <= DENSE_MAX_ITEMS
        self.use_dense = False
        self._partial: tuple[Point, np.ndarray, float] | None = None

    def direction(self, point: Point, accuracy: float) -> tuple[np.ndarray, bool]:
        """Solve H Δ = ∇ℓ to `accuracy` logits (see `_pcg`); returns (Δ (n,), converged).

        The per-component means of Δ are exact: summing H Δ = g over a component c gives
        λ Σ_c Δ = Σ_c g because L annihilates constants on c. CG solves for the rest on the
        subspace with zero component sums, which H maps to itself, so the nearly singular
        constant modes (eigenvalue λ) never slow it down. Asking again at the same point with
        a smaller `accuracy` continues from the previous solution.
        """
        objective = self.objective
        graph = objective.graph
        if self.use_dense:
            hessian = objective.dense_hessian(point.diagonal)
            return scipy.linalg.cho_solve(scipy.linalg.cho_factor(hessian), point.gradient), True
        grad = point.gradient
        mean = graph.component_means(grad)
        start = None
        if self._partial is not None and self._partial[0] is point \
                and self._partial[2] > accuracy:
            start = self._partial[1]
        max_iter = _CG_DENSE_FALLBACK_ITER if self.dense else _CG_MAX_ITER
        uncoupled = float(np.max(np.abs(grad / point.diagonal)))
        if not self.dense and accuracy >= max(_SINGLE_MIN_ACCURACY,
                                              _SINGLE_RELATIVE_ACCURACY * uncoupled):
            single = objective.single_precision_upper()
            start, converged = _pcg(objective, point, grad - mean, start, accuracy,
                                    _SINGLE_MAX_ITER, single)
            if converged:
                self._partial = (point, start, accuracy)
                return mean / graph.prior_strength + start, converged
        remainder, converged = _pcg(objective, point, grad - mean, start, accuracy, max_iter)
        self._partial = (point, remainder, accuracy)
        if not converged and self.dense:
            self.use_dense = True
            return self.direction(point, accuracy)
        return mean / graph.prior_strength + remainder, converged


def _safeguard(
    point: Point, direction: np.ndarray, labels: np.ndarray, count: int
) -> np.ndarray:
    """Make `direction` (n,) an ascent direction in every component, with bounded moves.

    A CG solution to a global residual is an ascent direction overall, not necessarily in
    each small component, whose own line search would then fail; there the Jacobi-scaled
    gradient (always an ascent direction) is used instead. And each move is capped at
    `MAX_ITEM_STEP` logits, so that one few-vote item does not force the whole component's
    step length down. Near the optimum neither applies.
    """
    capped = np.clip(direction, -MAX_ITEM_STEP, MAX_ITEM_STEP)
    slopes = sum_by(labels, point.gradient * capped, count) if count > 1 else np.array(
        [dot(point.gradient, capped)])
    uphill = slopes > 0
    if uphill.all():
        return capped
    scaled = np.clip(point.gradient / point.diagonal, -MAX_ITEM_STEP, MAX_ITEM_STEP)
    return np.where(uphill[labels], capped, scaled)


def _rise_bound(start_slope: np.ndarray, end_slope: np.ndarray,
                curvature: np.ndarray | None) -> np.ndarray:
    """A lower bound on ℓ(trial) − ℓ(point) per component from the slopes a, b of ℓ along the
    step at its two ends and a bound Q on its curvature (`Objective.curvature_bound`).

    ℓ is concave, so its slope falls along the step: never below b, and (Q) never faster than
    Q, so the slope at t is at least max(b, a − Q t), whose integral over [0, 1] is the bound.
    Without Q it is b alone.
    """
    if curvature is None:
        return end_slope
    crossing = np.clip((start_slope - end_slope) / np.maximum(curvature, 1e-300), 0.0, 1.0)
    return (start_slope * crossing - 0.5 * curvature * crossing * crossing
            + end_slope * (1.0 - crossing))


def maximise(objective: Objective, point: Point, tol: float,
             max_iter: int) -> tuple[Point, int]:
    """Newton ascent with backtracking from `point`; returns (the final point, iterations).

    Each component gets its own backtracking step length: a component far from its optimum
    (where saturated pairs make Newton overshoot) never throttles the others. Few-vote items
    are settled exactly before each step (`FewVoteItems`).

    Each direction is solved by CG to an accuracy (see `_pcg`) of 0.1 · |last move|², within
    [tol, 1] logits. Stops after taking a full Newton step, solved to `tol`, that moves no
    ability by more than √tol logits: by quadratic convergence, and with the step's own
    error below tol, the error left is of order tol. (A gradient test alone would not do: an
    item whose votes are all explained, e.g. all wins, has a tiny Hessian entry, so a small
    gradient can leave it far from the optimum.)

    Raises
    ------
    FitDidNotConverge
        No step improved ℓ, or `max_iter` iterations did not reach `tol`.
    """
    directions = _Directions(objective)
    weak = FewVoteItems(objective.graph)
    count, labels, _ = objective.graph.components()
    main, _ = objective.graph.minor_pairs()
    step_tol = float(np.sqrt(tol))
    last_move = np.inf
    size = np.inf
    for iteration in range(max_iter):
        settled = weak.settle(objective, point)
        if settled is not point:
            last_move = max(last_move if np.isfinite(last_move) else 0.0,
                            float(np.max(np.abs(settled.abilities - point.abilities))))
            if last_move == 0.0:
                last_move = np.inf
            point = settled
        # Inexact Newton: far from the optimum a rough direction will do; the accuracy
        # asked of CG is a tenth of what the uncoupled step would be, tightening with the
        # square of the last move (keeping convergence quadratic) down to `tol`, which the
        # step that ends the fit must meet.
        uncoupled = float(np.max(np.abs(point.gradient / point.diagonal)))
        accuracy = max(min(0.1 * last_move**2, _CG_UNCOUPLED_SHARE * uncoupled, 1.0), tol)
        direction, solved = directions.direction(point, accuracy)
        size = float(np.max(np.abs(direction)))
        if size <= step_tol and accuracy > tol:
            accuracy = tol
            direction, solved = directions.direction(point, accuracy)
            size = float(np.max(np.abs(direction)))
        final = solved and size <= step_tol and accuracy <= tol
        direction = _safeguard(point, direction, labels, count)

        # ℓ sums many terms, all ≤ 0: differences below this are rounding (pairwise summation
        # error is ~ 1e-15 |ℓ|), not a failure to ascend. The component holding most pairs
        # gets its ℓ as the whole sum less the others' (Objective.evaluate), so its rounding
        # is that of the whole sum: with hundreds of small components it outgrew its own.
        # Where ℓ was not computed, |ℓ(0)| bounds it: every point the ascent reaches is at
        # least as high as 0.
        objectives = point.objectives
        scale = np.abs(objectives if objectives is not None
                       else objective.objectives_at_zero())
        slack = 1e-13 * (1.0 + scale)
        slack[main] = 1e-13 * (1.0 + float(scale.sum()))
        slopes = sum_by(labels, point.gradient * direction, count)
        steps = np.ones(count)
        pending = np.ones(count, dtype=bool)
        curvature = None
        for _ in range(_MAX_HALVINGS):
            moved = point.abilities + steps[labels] * direction
            # The last step's ℓ is the fit's; the others' only where bounds cannot decide.
            trial = objective.evaluate(moved, with_objectives=final)
            required = _ARMIJO * steps * slopes - slack
            rise = _rise_bound(steps * slopes,
                               steps * sum_by(labels, trial.gradient * direction, count), None)
            undecided = pending & (rise < required)
            if undecided.any():
                if curvature is None:
                    curvature = objective.curvature_bound(direction)
                rise = _rise_bound(steps * slopes, steps * sum_by(
                    labels, trial.gradient * direction, count), steps * steps * curvature)
                undecided &= rise < required
            if undecided.any():
                if objectives is None:
                    objectives = point.objectives = objective.objectives(point.abilities)
                if trial.objectives is None:
                    trial.objectives = objective.objectives(moved)
                undecided &= trial.objectives < objectives + required
            pending = undecided
            if not pending.any():
                break
            steps[pending] *= 0.5
        else:
            raise FitDidNotConverge(
                f"no ascent step after {_MAX_HALVINGS} halvings at iteration {iteration} "
                f"(Newton step {size:.3g} logits)"
            )
        point = trial
        if final and steps.min() == 1.0:
            # The last step's quadratic error is largest where curvature is least: a few
            # votes all won. Their exact conditional optimum costs only their pairs.
            return weak.settle(objective, point), iteration + 1
        last_move = float(np.max(np.abs(steps[labels] * direction)))
    raise FitDidNotConverge(
        f"Newton step still {size:.3g} logits (> {step_tol:.3g}) after {max_iter} iterations"
    )
