"""The log posterior ℓ(θ) of the Bradley–Terry model, its gradient and Fisher information.

Model: P(i beats j) = σ(θi − θj), σ the logistic function; a tie counts half a win to each
side. Under independent priors θi ~ N(0, 1/λ):

    ℓ(θ) = Σ_pairs [w_ij log σ(θi − θj) + w_ji log σ(θj − θi)] − (λ/2) Σ_i θi²

The negative Hessian H = L + λI, L the Laplacian of the comparison graph weighted by the
per-pair information (w_ij + w_ji) σ(d) σ(−d), d = θi − θj, is the Fisher information.

`log_posterior` and `gradient` are the plain definitions, for callers and checks; `Objective`
computes the same quantities for the solver in one fused pass over the pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from ranker.bradley_terry.graph import ComparisonGraph, sum_by

PRIOR_STRENGTH = 0.01
"""Ridge λ: the prior is θi ~ N(0, 1/λ) = N(0, 10²) independently, in logits.

Why 0.01: one vote between evenly matched items carries Fisher information σ(1 − σ) = 1/4, so
the prior weighs as much as 0.04 of a vote — negligible next to real data, which is what makes
the penalised estimate match the unpenalised MLE to 0.01 on well-connected data (the shrinkage
of θi is about λ θi / H_ii). Yet it is a proper prior: an item that won every vote, or an item
in a component with no comparisons to the others, gets a finite ability (two items, one of
which won all 10 of their votes, end 5.8 logits apart: P = 0.997) and a finite standard error
(at most 1/√λ = 10 logits, for an item with no votes), where the MLE diverges to ±∞.
"""

# Pairs per block of the fused pass: its three float64 temporaries (256 KB each) stay in
# cache, and a block is long enough that the per-block Python overhead is small beside it.
_BLOCK = 1 << 15
# e^700 ≈ 1e304 is still finite, and σ(±700) has long since rounded to 0 or 1.
_MAX_LOGIT_DIFFERENCE = 700.0


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log σ(x), accurate for large |x| (no overflow, no log(0))."""
    return -np.logaddexp(0.0, -x)


def sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """σ(x) into `out` (may be `x`): 1 / (1 + e^{−x}), exact to rounding for every x (e^{−x}
    overflowing to inf gives 0)."""
    np.negative(x, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b for 1-D float arrays, without BLAS: OpenBLAS's threaded ddot spins up its thread
    pool for every call, which on a busy 2-core machine costs milliseconds per call."""
    return float(np.einsum("i,i->", a, b))


def log_posterior(
    abilities: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    wins_ij: np.ndarray,
    wins_ji: np.ndarray,
    prior_strength: float = PRIOR_STRENGTH,
) -> float:
    """The penalised log-likelihood ℓ(θ) (log posterior up to an additive constant).

    Parameters
    ----------
    abilities : ndarray of float, shape (n,)
        θ in logits.
    i, j : ndarray of int, shape (p,)
        Item indices of each pair.
    wins_ij, wins_ji : ndarray of float, shape (p,)
        Wins of i over j and of j over i (ties as halves).
    prior_strength : float
        λ, the precision of the N(0, 1/λ) prior on each θ.

    Returns
    -------
    float
        Σ [w_ij log σ(θi − θj) + w_ji log σ(θj − θi)] − (λ/2) Σ θ² (nats).
    """
    abilities = np.asarray(abilities, dtype=np.float64)
    diff = abilities[i] - abilities[j]
    # log σ(d) = log σ(|d|) + min(d, 0), log σ(−d) = log σ(|d|) − max(d, 0): every term ≤ 0,
    # so nothing cancels even for saturated pairs with huge counts.
    log_p_abs = log_sigmoid(np.abs(diff))
    likelihood = (
        (wins_ij + wins_ji) * log_p_abs
        + wins_ij * np.minimum(diff, 0.0)
        - wins_ji * np.maximum(diff, 0.0)
    ).sum()
    return float(likelihood - 0.5 * prior_strength * np.dot(abilities, abilities))


def gradient(
    abilities: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    wins_ij: np.ndarray,
    wins_ji: np.ndarray,
    prior_strength: float = PRIOR_STRENGTH,
) -> np.ndarray:
    """∇ℓ(θ), the gradient of `log_posterior`; same parameters, returns shape (n,) (nats/logit).

    Component k is Σ_pairs∋k (wins of k − expected wins of k) − λ θk.
    """
    abilities = np.asarray(abilities, dtype=np.float64)
    n = abilities.shape[0]
    diff = abilities[i] - abilities[j]
    # w_ij σ(−d) − w_ji σ(d), not w_ij − (w_ij + w_ji) σ(d): 1 − σ(d) rounds to 0 past d ≈ 37,
    # which would make a saturated pair's pull vanish.
    residual = wins_ij * sigmoid(-diff, np.empty_like(diff)) - wins_ji * sigmoid(
        diff, np.empty_like(diff)
    )
    return sum_by(i, residual, n) - sum_by(j, residual, n) - prior_strength * abilities


@dataclass
class Point:
    """ℓ, ∇ℓ and diag(H) at one θ; the per-pair information stays in the `Objective`."""

    abilities: np.ndarray
    # ℓ per connected component, shape (n_components,); None until asked for (see
    # `Objective.evaluate`), then filled in by `Objective.objectives`.
    objectives: np.ndarray | None
    gradient: np.ndarray  # (n,)
    diagonal: np.ndarray  # diag(H) = weighted degree + λ, (n,)


class Objective:
    """ℓ and its derivatives over one `ComparisonGraph`, for the solver.

    `information` (shape (p,)) always holds the per-pair Fisher information at the point of
    the last `evaluate` (or `evaluate_at_zero`): what Hessian products, dense Hessians and the
    standard errors read. The solver only ever evaluates the point it then moves to last, so
    this is the information at its current point.
    """

    def __init__(self, graph: ComparisonGraph) -> None:
        self.graph = graph
        p = graph.n_pairs
        # Work buffers of the fused pass, reused by every evaluation of this fit.
        self.information = np.empty(p)
        self._residual = np.empty(p)
        self._single: np.ndarray | None = None
        self._at_zero: np.ndarray | None = None

    def objectives_at_zero(self) -> np.ndarray:
        """ℓ(0) per component: every pair contributes (w_ij + w_ji) log ½."""
        if self._at_zero is None:
            graph = self.graph
            count, labels, _ = graph.components()
            per_item = graph.sums_over_lo(graph.totals)
            self._at_zero = -np.log(2.0) * sum_by(labels, per_item, count)
        return self._at_zero

    def evaluate_at_zero(self) -> Point:
        """`evaluate` at θ = 0 (a cold start) in closed form: σ = ½ on every pair, so the
        residual is (w_ij − w_ji)/2 and the information (w_ij + w_ji)/4; no exp or log."""
        graph = self.graph
        np.subtract(graph.wins_ij, graph.wins_ji, out=self._residual)
        self._residual *= 0.5
        np.multiply(graph.totals, 0.25, out=self.information)
        residual_lo, residual_hi = graph.item_sums(self._residual)
        grad = graph.centred(residual_lo - residual_hi)
        information_lo, information_hi = graph.item_sums(self.information)
        diagonal = information_lo + information_hi + graph.prior_strength
        return Point(np.zeros(graph.n), self.objectives_at_zero(), grad, diagonal)

    def _log_likelihoods(self, abilities: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """The log-likelihood of each of the given pairs (indices), shape (len(pairs),)."""
        graph = self.graph
        d = abilities[graph.i[pairs]] - abilities[graph.j[pairs]]
        log_p_abs = log_sigmoid(np.abs(d))
        return ((graph.wins_ij[pairs] + graph.wins_ji[pairs]) * log_p_abs
                + graph.wins_ij[pairs] * np.minimum(d, 0.0)
                - graph.wins_ji[pairs] * np.maximum(d, 0.0))

    def evaluate(self, abilities: np.ndarray, with_objectives: bool = True) -> Point:
        """ℓ per component, ∇ℓ and diag(H) at θ = `abilities`, in one pass over the pairs.

        Leaves the per-pair Fisher information (w_ij + w_ji) σ(d) σ(−d) in `information`.
        Without `with_objectives` the point's ℓ is left out (None), which saves the pass a
        logarithm per pair: the solver asks for ℓ only where the slope at a trial point does
        not already show enough ascent (`objectives` computes it then).
        """
        log_likelihood, residual_lo, information_lo = self._pass(abilities, with_objectives,
                                                                 True)
        graph = self.graph
        lam = graph.prior_strength
        objectives = self._per_component(abilities, log_likelihood) if with_objectives \
            else None
        residual_hi = graph.sums_over_hi(self._residual)
        # The likelihood part sums to exactly 0 over each component; what the sum holds is
        # rounding, which the Newton step would amplify by 1/λ along the constant modes.
        grad = graph.centred(residual_lo - residual_hi)
        grad -= lam * abilities
        diagonal = information_lo + graph.sums_over_hi(self.information) + lam
        return Point(abilities, objectives, grad, diagonal)

    def objectives(self, abilities: np.ndarray) -> np.ndarray:
        """ℓ per component at θ = `abilities` (n_components,), in one pass over the pairs that
        leaves `information` as it was."""
        log_likelihood, _, _ = self._pass(abilities, True, False)
        return self._per_component(abilities, log_likelihood)

    def curvature_bound(self, direction: np.ndarray) -> np.ndarray:
        """Q per component (n_components,): along θ + t·`direction`, for every θ and t,
        −d²ℓ/dt² ≤ Q, since each pair's information (w_ij + w_ji) σ(d) σ(−d) is at most a
        quarter of its votes: Q = ¼ Σ_pairs (w_ij + w_ji)(Δi − Δj)² + λ Σ Δ². One pass over
        the pairs without exponentials."""
        graph = self.graph
        count, labels, _ = graph.components()
        main, minor = graph.minor_pairs()
        block = min(_BLOCK, max(graph.n_pairs, 1))
        moves = np.empty(block)
        total = 0.0
        for start, stop, lo_items, lo_pairs, _ in graph.runs(block):
            move = moves[:stop - start]
            np.subtract(direction[graph.j[start:stop]],
                        np.repeat(direction[lo_items], lo_pairs), out=move)
            move *= move
            total += dot(graph.totals[start:stop], move)
        prior = graph.prior_strength * direction * direction
        if count == 1:
            return np.array([0.25 * total + float(prior.sum())])
        bound = sum_by(labels, prior, count)
        minor_moves = direction[graph.i[minor]] - direction[graph.j[minor]]
        minor_values = 0.25 * graph.totals[minor] * minor_moves * minor_moves
        bound += sum_by(labels[graph.i[minor]], minor_values, count)
        bound[main] += 0.25 * total - float(minor_values.sum())
        return bound

    def _per_component(self, abilities: np.ndarray, log_likelihood: float) -> np.ndarray:
        """ℓ per component from the log-likelihood summed over every pair."""
        graph = self.graph
        count, labels, _ = graph.components()
        main, minor = graph.minor_pairs()
        prior = -0.5 * graph.prior_strength * abilities * abilities
        if count == 1:
            return np.array([log_likelihood + float(prior.sum())])
        objectives = sum_by(labels, prior, count)
        minor_values = self._log_likelihoods(abilities, minor)
        objectives += sum_by(labels[graph.i[minor]], minor_values, count)
        objectives[main] += log_likelihood - float(minor_values.sum())
        return objectives

    def _pass(self, abilities: np.ndarray, with_log_likelihood: bool,
              with_derivatives: bool) -> tuple[float, np.ndarray, np.ndarray]:
        """The fused pass over the pairs: (Σ log-likelihood (0 without it), and the sums over
        lo of the residual and of the information (zeros without derivatives)); with
        derivatives, the per-pair residual and information are left in their buffers.

        With e = exp(−d), one exponential and one logarithm per pair give everything:
        σ(d) = 1/(1 + e), σ(−d) = e σ(d) (never 1 − σ(d), which rounds to 0 past d ≈ 37 and
        would make a saturated pair's pull vanish), log σ(d) = −log1p(e) and
        log σ(−d) = −d − log1p(e). Differences are clipped to ±`_MAX_LOGIT_DIFFERENCE`
        logits, where σ already under- or overflows, so e stays finite.
        """
        graph = self.graph
        p = graph.n_pairs
        block = min(_BLOCK, max(p, 1))
        negated = np.empty(block)
        odds = np.empty(block)
        p_ij = np.empty(block)
        rounding = np.empty(block)
        pair_totals = np.empty(block)
        spread = float(np.ptp(abilities)) if abilities.shape[0] else 0.0
        clip = spread > _MAX_LOGIT_DIFFERENCE
        log_likelihood = 0.0
        # Sums over lo are taken run by run, while the run is in cache; those over hi,
        # which scatter, in one product over the whole arrays afterwards.
        residual_lo = np.zeros(graph.n)
        information_lo = np.zeros(graph.n)
        for start, stop, lo_items, lo_pairs, offsets in graph.runs(block):
            m = stop - start
            minus_d, e, s_ij, lost = negated[:m], odds[:m], p_ij[:m], rounding[:m]
            # Indexing gathers faster than np.take(..., out=) (no per-call index check); the
            # lo side, sorted, is a repeat that reads no index at all.
            np.subtract(abilities[graph.j[start:stop]],
                        np.repeat(abilities[lo_items], lo_pairs), out=minus_d)
            if clip:
                np.clip(minus_d, -_MAX_LOGIT_DIFFERENCE, _MAX_LOGIT_DIFFERENCE, out=minus_d)
            np.exp(minus_d, out=e)
            np.add(e, 1.0, out=s_ij)
            wins_ij = graph.wins_ij[start:stop]
            wins_ji = graph.wins_ji[start:stop]
            # The sum of the two, as `graph.totals` holds it, without reading a third array.
            totals = np.add(wins_ij, wins_ji, out=pair_totals[:m])
            if with_log_likelihood:
                # Σ w_ij log σ(d) + w_ji log σ(−d) = Σ w_ji (−d) − (w_ij + w_ji) log1p(e),
                # with log1p(e) = log(u) − ((u − 1) − e) / u for u = 1 + e as rounded:
                # numpy's log is vectorised and its log1p is not (40% of this pass); the
                # second term puts back what rounding u lost, so a nearly saturated pair
                # (e < 1e-16: u = 1) still counts e, as log1p does, to a few ulps.
                log_likelihood += dot(wins_ji, minus_d)
                np.subtract(s_ij, 1.0, out=lost)
                lost -= e
                np.log(s_ij, out=minus_d)
            np.reciprocal(s_ij, out=s_ij)  # σ(d)
            if with_log_likelihood:
                lost *= s_ij
                minus_d -= lost
                log_likelihood -= dot(totals, minus_d)
            if not with_derivatives:
                continue
            e *= s_ij  # σ(−d)
            info = self.information[start:stop]
            np.multiply(totals, s_ij, out=info)
            info *= e
            residual = self._residual[start:stop]
            np.multiply(wins_ij, e, out=residual)
            np.multiply(wins_ji, s_ij, out=minus_d)
            residual -= minus_d
            residual_lo[lo_items] += np.add.reduceat(residual, offsets)
            information_lo[lo_items] += np.add.reduceat(info, offsets)
        return log_likelihood, residual_lo, information_lo

    def hessian_product(self, vector: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
        """H v = diag(H) v − A v with the current `information`, shape (n,)."""
        upper = self.graph.upper(self.information)
        return diagonal * vector - (upper @ vector + upper.T @ vector)

    def single_precision_upper(self) -> scipy.sparse.csr_matrix:
        """U with the current `information` in float32: for cheaper products. A copy, valid
        until the next call (each call refills one buffer: fresh memory costs page faults)."""
        if self._single is None:
            self._single = np.empty(self.graph.n_pairs, dtype=np.float32)
        np.copyto(self._single, self.information, casting="same_kind")
        return self.graph.upper(self._single)

    def dense_hessian(self, diagonal: np.ndarray) -> np.ndarray:
        """The upper triangle of H = L + λI as a dense (n, n) Fortran-ordered array (zeros
        below the diagonal), from the current `information`: what LAPACK's upper Cholesky
        (`dpotrf`, lower=0) reads, with no copy and no symmetrising."""
        graph = self.graph
        hessian = np.zeros((graph.n, graph.n), order="F")
        hessian[graph.i, graph.j] = -self.information
        hessian[np.diag_indices(graph.n)] = diagonal
        return hessian
