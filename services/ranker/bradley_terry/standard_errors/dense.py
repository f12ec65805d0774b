"""Exact variances diag(H⁻¹) by dense Cholesky: of the whole H, or per connected component."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ranker.bradley_terry.errors import FitDidNotConverge
from ranker.bradley_terry.graph import sum_by
from ranker.bradley_terry.likelihood import Objective


def inverse_diagonal(hessian: np.ndarray) -> np.ndarray:
    """diag(H⁻¹) of a symmetric positive definite dense H, shape (n,).

    Only the upper triangle of `hessian` is read, and it is overwritten (pass a Fortran-
    ordered array to avoid a copy). With H = RᵀR (Cholesky), H⁻¹ = R⁻¹R⁻ᵀ, so diag(H⁻¹)
    holds the squared row norms of R⁻¹: one factorisation and one triangular inverse,
    without forming H⁻¹.

    Raises
    ------
    FitDidNotConverge
        H is not numerically positive definite.
    """
    factor, info = scipy.linalg.lapack.dpotrf(hessian, lower=0, clean=1, overwrite_a=1)
    if info != 0:
        raise FitDidNotConverge(f"Hessian not positive definite (LAPACK dpotrf info={info})")
    inverse, info = scipy.linalg.lapack.dtrtri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise FitDidNotConverge(f"Hessian not invertible (LAPACK dtrtri info={info})")
    return np.einsum("ij,ij->i", inverse, inverse)


def component_variances(
    objective: Objective, members: np.ndarray, diagonal: np.ndarray
) -> np.ndarray:
    """diag(H_c⁻¹) for the components holding the items flagged in `members`, shape (n,).

    One dense Cholesky per component (the loop runs over components, not pairs); entries for
    items outside `members` are left at 0.
    """
    graph = objective.graph
    _, labels, _ = graph.components()
    i, j, information = graph.i, graph.j, objective.information
    n = labels.shape[0]
    order = np.flatnonzero(members)
    order = order[np.argsort(labels[order], kind="stable")]
    group_labels, starts = np.unique(labels[order], return_index=True)
    ends = np.append(starts[1:], order.shape[0])
    local = np.zeros(n, dtype=np.int64)
    local[order] = np.arange(order.shape[0]) - np.repeat(starts, ends - starts)
    on = members[i]
    edge_order = np.flatnonzero(on)
    edge_order = edge_order[np.argsort(labels[i[edge_order]], kind="stable")]
    edge_bounds = np.searchsorted(labels[i[edge_order]], np.append(group_labels, np.inf))
    variances = np.zeros(n)
    for group, (start, end) in enumerate(zip(starts, ends, strict=True)):
        items = order[start:end]
        edges = edge_order[edge_bounds[group] : edge_bounds[group + 1]]
        m = items.shape[0]
        flat = sum_by(local[i[edges]] * m + local[j[edges]], information[edges], m * m)
        flat = flat.reshape(m, m)
        block = -(flat + flat.T)
        block[np.diag_indices(m)] = diagonal[items]
        variances[items] = inverse_diagonal(block)
    return variances
