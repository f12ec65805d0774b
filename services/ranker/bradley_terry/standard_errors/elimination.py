"""Exact variances diag(H⁻¹) on sparse comparison graphs: low-degree items eliminated first.

Early voting gives sparse graphs with many items of a few comparisons each. Eliminating those
level by level, then inverting the remaining core densely and undoing the levels (the
Takahashi equations), gives the same values as one dense Cholesky of H to rounding, at
O(core³) instead of O(n³): 2,000 items with 10,000 random pairs take ~0.05 s instead of ~0.11 s.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse

from ranker.bradley_terry.errors import FitDidNotConverge
from ranker.bradley_terry.standard_errors import dense

# Items of degree up to this are eliminated: each costs ~degree² entries of fill-in and of
# back-substitution, small beside the n² entries of H⁻¹ it takes out of the dense core.
_MAX_DEGREE = 32
# A level that would eliminate fewer items than this (or 2% of those left) costs a sparse
# product for too little: the core is factored as it is.
_MIN_LEVEL = 8
# Inverting a core of c items costs ~c³ flops where diag(H⁻¹) from a dense H costs ~2n³/3:
# elimination pays only while c³ stays below this share of n³.
_WORTH = 0.5


def worth_trying(n_items: int, n_pairs: int) -> bool:
    """Whether the graph is sparse enough for elimination: a mean degree of at most twice
    `_MAX_DEGREE`, so a good share of the items can have degree ≤ `_MAX_DEGREE`."""
    return n_pairs <= _MAX_DEGREE * n_items


def _hashed_order(items: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random key in [0, 1) per item index: ties broken alike on every run."""
    return ((items.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32)) / 2.0**32


def inverse_diagonal(
    n: int, lo: np.ndarray, hi: np.ndarray, coupling: np.ndarray, diagonal: np.ndarray
) -> np.ndarray:
    """diag(H⁻¹), exactly, for H = diag(`diagonal`) − A with A_lo,hi = A_hi,lo = `coupling`.

    Sparse comparison graphs (early voting: a few votes per item) have many items of low
    degree. Those are eliminated first, in levels: each level takes an independent set E of
    items of degree ≤ `_MAX_DEGREE` in the current graph (each the smallest
    degree among its eligible neighbours), so its block of H is diagonal and its Schur
    complement S = H_KK − H_KE D_E⁻¹ H_EK is one sparse product. What remains (the core:
    well connected, dense after fill-in) gets a dense Cholesky and its full inverse. Then the
    levels are undone in reverse by the Takahashi equations, which only need H⁻¹ on the
    pattern of S — for e in E with neighbours N(e) (a clique in S):

        (H⁻¹)_ek = −Σ_{m∈N(e)} H_em (H⁻¹)_mk / d_e   (k ∈ N(e)),
        (H⁻¹)_ee = (1 − Σ_{m∈N(e)} H_em (H⁻¹)_me) / d_e.

    Exact to rounding (no dropped entries); the dense work is O(core³) instead of O(n³).
    A dense comparison graph has no low-degree items and goes straight to the core.
    Entries of H⁻¹ are kept in one n × n array, written only where needed.
    """
    upper = scipy.sparse.coo_matrix((-coupling, (lo, hi)), shape=(n, n)).tocsr()
    off = (upper + upper.T).tocsr()
    remaining = np.arange(n)
    pivots = diagonal.astype(np.float64, copy=True)
    levels = []
    while True:
        m = remaining.shape[0]
        degree = np.diff(off.indptr)
        eligible = degree <= _MAX_DEGREE
        candidates = np.count_nonzero(eligible)
        if m == 0 or candidates < max(_MIN_LEVEL, m // 50):
            break
        if (m - candidates) ** 3 > _WORTH * n**3:
            break  # a well-connected graph: the core would stay too large to pay (below)
        rows = np.repeat(np.arange(m), degree)
        cols = off.indices
        order = degree + 0.5 * _hashed_order(remaining)
        contested = eligible[rows] & eligible[cols] & (order[cols] < order[rows])
        beaten = np.zeros(m, dtype=bool)
        beaten[rows[contested]] = True
        chosen = eligible & ~beaten
        eliminate, keep = np.flatnonzero(chosen), np.flatnonzero(~chosen)
        to_keep = off[eliminate][:, keep]  # (|E|, |K|), rows: the neighbours of each e
        pivot = pivots[eliminate]
        fill = (to_keep.T @ scipy.sparse.diags(1.0 / pivot) @ to_keep).tocsr()
        kept_pivots = pivots[keep] - fill.diagonal()
        fill.setdiag(0.0)
        off = (off[keep][:, keep] - fill).tocsr()
        off.eliminate_zeros()
        levels.append((remaining[eliminate], remaining[keep], pivot, to_keep))
        remaining, pivots = remaining[keep], kept_pivots
    core_size = remaining.shape[0]
    if core_size**3 > _WORTH * n**3:
        # Too little eliminated to pay for the full core inverse (n³ flops, against 2n³/3
        # for the diagonal alone): one dense factorisation of H instead.
        full = np.zeros((n, n), order="F")
        full[lo, hi] = -coupling
        full[np.diag_indices(n)] = diagonal
        return dense.inverse_diagonal(full)
    # Items are placed in elimination order, the core last, so every item's neighbours in
    # its level come after it and only the upper triangle (row < column) is ever used.
    place = np.empty(n, dtype=np.intp)
    placed = 0
    for eliminated, _, _, _ in levels:
        place[eliminated] = np.arange(placed, placed + eliminated.shape[0])
        placed += eliminated.shape[0]
    place[remaining] = np.arange(placed, n)
    inverse = np.empty((n, n))
    if core_size:
        core = off.toarray()
        core[np.diag_indices(core_size)] = pivots
        factor, info = scipy.linalg.lapack.dpotrf(core, lower=0, clean=0, overwrite_a=1)
        if info != 0:
            raise FitDidNotConverge(f"Hessian not positive definite (LAPACK dpotrf info={info})")
        core_inverse, info = scipy.linalg.lapack.dpotri(factor, lower=0, overwrite_c=1)
        if info != 0:
            raise FitDidNotConverge(f"Hessian not invertible (LAPACK dpotri info={info})")
        inverse[placed:, placed:] = core_inverse  # upper triangle valid
    for eliminated, kept, pivot, to_keep in reversed(levels):
        counts = np.diff(to_keep.indptr)
        neighbours = place[kept[to_keep.indices]]
        values = to_keep.data
        owner = np.repeat(np.arange(eliminated.shape[0]), counts)  # row e of each entry
        # Every (entry m, entry k) combination within a row: Σ deg² of them.
        width = counts[owner]
        first = np.repeat(to_keep.indptr[:-1][owner], width)
        left = np.repeat(np.arange(neighbours.shape[0]), width)
        right = first + np.arange(left.shape[0]) - np.repeat(np.cumsum(width) - width, width)
        a, b = neighbours[left], neighbours[right]
        products = values[left] * inverse[np.minimum(a, b), np.maximum(a, b)]
        toward = -np.bincount(right, products, neighbours.shape[0]) / pivot[owner]
        rows = place[eliminated]
        inverse[rows[owner], neighbours] = toward
        inverse[rows, rows] = (
            1.0 - np.bincount(owner, values * toward, eliminated.shape[0])) / pivot
    return inverse[place, place]
