"""Sandwich (robust) standard errors of a weighted fit, clustered by voter: diag(H⁻¹ J H⁻¹).

A weighted fit maximises Σ_votes w·log-likelihood + prior. Its Hessian H (the information
`Objective` holds at the optimum, weights included) is not the inverse of its covariance
when the weights are not frequencies, when one voter's votes are correlated (a voter casts
many), or when the model is misspecified (segments that disagree are not one
Bradley–Terry population). The sandwich estimates the covariance from the spread of the
scores themselves:

    Cov(θ) ≈ H⁻¹ J H⁻¹,   J = c · Σ_g r_g r_gᵀ,

where s_g is voter g's score (Σ over its votes of w·(y − σ(θa − θb))·(e_a − e_b), y = 1 for
a win of a, ½ for a tie), r_g the residual of s_g after a least-squares fit on the
calibration groups (the weighting holds each group's weighted total fixed, so the spread
between groups is not sampling noise: the linearisation of post-stratification or raking;
without groups, the scores are centred on their mean),
and c = G / (G − rank Z) for G voters and the rank of the group indicators Z.

With R the (G × n) residual scores, J = SᵀS − Mᵀ(ZᵀZ)⁺M, M = ZᵀS (K × n): one sparse product
and a K × K solve, never a dense G × n array. Since each vote's score sums to 0 over the
items, J1 = 0, so the sandwich has no component along the constant and is already the
covariance of the centred abilities.

    exact    dense H⁻¹ (Cholesky), then diag(H⁻¹ J H⁻¹): O(n³); for n ≤ `EXACT_MAX_ITEMS`.
    approx   diag(H⁻¹) × J_kk / (H_kk − λ): the model variance scaled by each item's own
             ratio of score variance to information (its design effect), exact when H is
             diagonal and close when items have many opponents each.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.sparse

from ranker.bradley_terry.errors import FitDidNotConverge
from ranker.bradley_terry.likelihood import Objective, Point, sigmoid
from ranker.bradley_terry.pair_strata import PairStrata
from ranker.bradley_terry.standard_errors import from_information

EXACT_MAX_ITEMS = 500
"""Up to this many items the sandwich is exact: a dense H⁻¹ and a product with J, about three
times the flops of the exact model errors (n³ against n³/3), and SᵀS, whose cost grows with
the square of each voter's items. Above, the design-effect approximation costs O(votes) and
stays within a few per cent of the exact values (tests/unit/bradley_terry/
test_weighted_fit.py measures it)."""


def voter_scores(abilities: np.ndarray, winners: np.ndarray, losers: np.ndarray,
                 ties: np.ndarray, weights: np.ndarray, clusters: np.ndarray,
                 n_clusters: int) -> scipy.sparse.csr_matrix:
    """S (n_clusters × n_items, CSR): row g the gradient of cluster g's weighted
    log-likelihood at `abilities` (no prior term).

    `winners`, `losers`, `ties`, `weights`, `clusters`: one entry per vote (a tie lists
    either proposal as the winner); `clusters` in [0, n_clusters).
    """
    n = abilities.shape[0]
    outcome = np.where(ties, 0.5, 1.0)
    expected = sigmoid(abilities[winners] - abilities[losers], np.empty(winners.shape[0]))
    residual = weights * (outcome - expected)
    rows = np.concatenate([clusters, clusters])
    cols = np.concatenate([winners, losers])
    data = np.concatenate([residual, -residual])
    return scipy.sparse.csr_matrix((data, (rows, cols)), shape=(n_clusters, n))


def _group_indicators(groups: np.ndarray | None, n_clusters: int) -> scipy.sparse.csr_matrix:
    """Z (n_clusters × K): one column per value of each grouping column (each cluster in
    one value per column); no groups are one group, so that scores are centred on their
    mean and the factor is the usual G / (G − 1)."""
    if groups is None or groups.shape[1] == 0:
        groups = np.zeros((n_clusters, 1), dtype=np.int64)
    columns = []
    for column in groups.T:
        _, codes = np.unique(column, return_inverse=True)
        codes = codes.reshape(-1)
        columns.append(scipy.sparse.csr_matrix(
            (np.ones(n_clusters), (np.arange(n_clusters), codes)),
            shape=(n_clusters, int(codes.max()) + 1 if codes.size else 0)))
    return scipy.sparse.hstack(columns, format="csr")


def meat(scores: scipy.sparse.csr_matrix, groups: np.ndarray | None,
         dense: bool) -> tuple[np.ndarray, float]:
    """J without its factor c, dense (n × n) when `dense` else its diagonal (n,); and c.

    `groups` (n_clusters × k) gives each cluster's calibration group per column.
    """
    n_clusters = scores.shape[0]
    indicators = _group_indicators(groups, n_clusters)
    between = (indicators.T @ scores).toarray()  # M = ZᵀS, (K × n)
    gram = (indicators.T @ indicators).toarray()  # ZᵀZ, (K × K)
    rank = int(np.linalg.matrix_rank(gram)) if n_clusters else 0
    projected = np.linalg.pinv(gram, hermitian=True) @ between
    if dense:
        total = (scores.T @ scores).toarray() - between.T @ projected
    else:
        total = np.asarray(scores.multiply(scores).sum(axis=0)).reshape(-1)
        total -= np.einsum("ki,ki->i", between, projected)
    factor = n_clusters / (n_clusters - rank) if n_clusters > rank else float("nan")
    return total, factor


Meat = Callable[[bool], tuple[np.ndarray, float]]
"""J without its factor c — dense (n × n) when called with True, else its diagonal (n,) —
and c: `meat` over voters' scores, or `stratum_meat` over pair counts."""


def stratum_meat(abilities: np.ndarray, strata: PairStrata, weights: np.ndarray,
                 dense: bool, groups: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """J of votes taken as independent (each vote its own cluster) within strata, from pair
    counts alone: each row of `strata` is one stratum's counts of one pair (ties apart, not
    halved) and the votes of stratum s weigh `weights[s]`.

    A vote's score is w·(y − p)·(e_i − e_j), so Σ over a stratum's votes of its outer
    product is w² Σ_pairs [wins_ij (1 − p)² + wins_ji p² + ties (½ − p)²] (e_i − e_j)(…)ᵀ, a
    weighted Laplacian. The residual on the calibration groups' indicators takes out
    Mᵀ(ZᵀZ)⁺M, M = ZᵀS the groups' total scores, summed from each stratum's total score
    m_s (every vote of a stratum is in the same groups). `groups` (n_strata × k) gives each
    stratum's group per column, as `meat` takes them; None: each stratum is its own group
    (the residual is − m_s m_sᵀ / n_s, n_s its votes). The factor is N / (N − rank Z) for N
    votes. What `meat` gives when every vote is its own voter.
    """
    n = abilities.shape[0]
    counts = strata.votes()
    kept = np.flatnonzero(counts > 0)
    votes = float(counts.sum())
    if not kept.size:
        return np.zeros((n, n) if dense else n), float("nan")
    weight = np.asarray(weights, dtype=np.float64)[strata.row_stratum]
    # p once per pair, then each row (a stratum's counts of a pair) reads its pair's.
    p = sigmoid(abilities[strata.i] - abilities[strata.j],
                np.empty(strata.i.shape[0]))[strata.row_pair]
    wins_ij, wins_ji, ties = strata.wins_ij, strata.wins_ji, strata.ties
    spread = np.bincount(strata.row_pair, weight**2 * (wins_ij * (1 - p) ** 2
                                                       + wins_ji * p**2
                                                       + ties * (0.5 - p) ** 2),
                         strata.i.shape[0])
    pull = weight * (wins_ij * (1 - p) - wins_ji * p + ties * (0.5 - p))
    # Each kept stratum's total score m_s (n_kept × n).
    row = np.full(strata.n_strata, -1, dtype=np.intp)
    row[kept] = np.arange(kept.shape[0])
    at = row[strata.row_stratum] * n
    means = (np.bincount(at + strata.i[strata.row_pair], pull, kept.shape[0] * n)
             - np.bincount(at + strata.j[strata.row_pair], pull, kept.shape[0] * n)
             ).reshape(-1, n)
    stratum_groups = (np.arange(kept.shape[0])[:, None] if groups is None
                      else np.asarray(groups)[kept])
    indicators = _group_indicators(stratum_groups, kept.shape[0]).toarray()
    between = indicators.T @ means  # M = ZᵀS, (K × n)
    gram = indicators.T @ (indicators * counts[kept][:, None])  # ZᵀZ over votes, (K × K)
    rank = int(np.linalg.matrix_rank(gram))
    projected = np.linalg.pinv(gram, hermitian=True) @ between
    i, j = strata.i, strata.j
    if dense:
        total = (np.bincount(i * n + i, spread, n * n) + np.bincount(j * n + j, spread, n * n)
                 - np.bincount(i * n + j, spread, n * n)
                 - np.bincount(j * n + i, spread, n * n)).reshape(n, n)
        total -= between.T @ projected
    else:
        total = np.bincount(i, spread, n) + np.bincount(j, spread, n)
        total -= np.einsum("ki,ki->i", between, projected)
    factor = votes / (votes - rank) if votes > rank else float("nan")
    return total, factor


def std_errors(objective: Objective, point: Point, meat: Meat,
               exact: bool | None) -> tuple[np.ndarray, bool]:
    """Sandwich standard errors of the centred abilities at `point` (the optimum of
    `objective`, whose information is current), and whether they are exact; `meat` gives
    J (see `Meat`).

    Raises
    ------
    FitDidNotConverge
        H is not numerically positive definite.
    """
    graph = objective.graph
    n = graph.n
    if n == 0:
        return np.zeros(0), True
    if exact is None:
        exact = n <= EXACT_MAX_ITEMS
    if exact:
        total, factor = meat(True)
        hessian = objective.dense_hessian(point.diagonal)
        upper, info = scipy.linalg.lapack.dpotrf(hessian, lower=0, clean=1, overwrite_a=1)
        if info != 0:
            raise FitDidNotConverge(f"Hessian not positive definite (LAPACK dpotrf info={info})")
        inverse, info = scipy.linalg.lapack.dpotri(upper, lower=0, overwrite_c=1)
        if info != 0:
            raise FitDidNotConverge(f"Hessian not invertible (LAPACK dpotri info={info})")
        inverse = np.triu(inverse) + np.triu(inverse, 1).T
        variances = factor * np.einsum("ij,ij->i", inverse @ total, inverse)
        return np.sqrt(np.maximum(variances, 0.0)), True
    total, factor = meat(False)
    # Belief propagation within every component: O(pairs), where a dense factorisation of
    # the 2,000 items it would otherwise get costs seconds on a busy machine.
    model, _ = from_information(objective, point, False, exact_component_max=1)
    information = point.diagonal - graph.prior_strength
    ratio = np.divide(factor * total, information, out=np.ones(n), where=information > 0)
    return model * np.sqrt(np.maximum(ratio, 0.0)), False
