"""Scores 0–100 for display: the chance a proposal beats a uniformly chosen other one
(docs/semantics.md, "Score")."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import CubicSpline

from ranker.bradley_terry.likelihood import sigmoid

EXACT_MAX_ITEMS = 500
"""Up to this many items scores are computed exactly (n² logistic evaluations); above, the
interpolation (error < 2e-5 points) is cheaper: 0.3 ms instead of 2 ms at 1,000 items, 1 ms
instead of 9 ms at 2,000."""

GRID_STEP = 0.1
"""Spacing in logits of the ability grid on which large-n scores are interpolated: the
spline's error bound (see `win_probability_scores`) is 1.6e-5 points at 0.1, whatever n."""

# Elements per block of the n × grid evaluation: 8 MB of float64 temporaries at a time,
# however many items.
_CHUNK_ELEMENTS = 1 << 20


def _win_probability_totals(points: np.ndarray, abilities: np.ndarray) -> np.ndarray:
    """Σ_j σ(x − θj) for each x in `points`, shape (len(points),), in row blocks."""
    n = abilities.shape[0]
    totals = np.empty(points.shape[0])
    rows = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, points.shape[0], rows):
        block = points[start : start + rows, None] - abilities[None, :]
        totals[start : start + rows] = sigmoid(block, block).sum(axis=1)
    return totals


def win_probability_scores(abilities: np.ndarray) -> np.ndarray:
    """Scores 0–100: the chance each item beats a uniformly chosen other item, in percent.

    Parameters
    ----------
    abilities : ndarray of float, shape (n,)
        θ in logits (a `BTFit`'s abilities).

    Returns
    -------
    ndarray of float64, shape (n,)
        ``100 · mean_{j≠i} σ(θi − θj)``; 50.0 for a single item, empty for none.

    Notes
    -----
    Exact (chunked n² evaluations) for n ≤ `EXACT_MAX_ITEMS`. Above, the smooth function
    F(x) = Σ_j σ(x − θj) is evaluated exactly on a grid of step h = `GRID_STEP` logits
    spanning the abilities and interpolated by a cubic spline. The spline's error is at most
    (5/384) h⁴ max|F⁽⁴⁾| ≤ (5/384) h⁴ n / 8 (|σ⁽⁴⁾| < 1/8), i.e. 1.6·10⁻⁵ score points for
    h = 0.1, whatever n; measured: < 10⁻⁶ points at 6,500 and 34,000 items. Cost
    O(n · (max θ − min θ) / h): about 5 ms for 34,000 items spread over 15 logits.
    """
    abilities = np.asarray(abilities, dtype=np.float64)
    n = abilities.shape[0]
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.full(1, 50.0)
    if n <= EXACT_MAX_ITEMS:
        # The j == i term contributed σ(0) = 1/2.
        return 100.0 * (_win_probability_totals(abilities, abilities) - 0.5) / (n - 1)
    low, high = float(abilities.min()), float(abilities.max())
    if high - low < 1e-9:
        # All equal (a large cause before its first decisive votes): no grid to span, and
        # each beats another with probability 1/2.
        return np.full(n, 50.0)
    n_grid = max(4, int(np.ceil((high - low) / GRID_STEP)) + 1)
    grid = np.linspace(low, high, n_grid)
    spline = CubicSpline(grid, _win_probability_totals(grid, abilities))
    return np.clip(100.0 * (spline(abilities) - 0.5) / (n - 1), 0.0, 100.0)


def scores_at(points: np.ndarray, abilities: np.ndarray) -> np.ndarray:
    """The score item k would have at ability `points[k]`, the others at theirs: 100 ·
    mean_{j≠k} σ(points_k − θj), shape (n,). What the ends of an ability interval are in
    score points (the score is increasing in the item's own ability).

    Exact for n ≤ `EXACT_MAX_ITEMS`; above, the spline of `win_probability_scores` over a
    grid spanning both the points and the abilities (same error bound).
    """
    points = np.asarray(points, dtype=np.float64)
    abilities = np.asarray(abilities, dtype=np.float64)
    n = abilities.shape[0]
    if points.shape != abilities.shape:
        raise ValueError(f"points must have shape {abilities.shape}, got {points.shape}")
    if n <= 1:
        return np.full(n, 50.0)
    own = sigmoid(points - abilities, np.empty(n))
    if n <= EXACT_MAX_ITEMS:
        totals = _win_probability_totals(points, abilities)
    else:
        low = float(min(points.min(), abilities.min()))
        high = float(max(points.max(), abilities.max()))
        n_grid = max(4, int(np.ceil((high - low) / GRID_STEP)) + 1)
        grid = np.linspace(low, high, n_grid)
        totals = CubicSpline(grid, _win_probability_totals(grid, abilities))(points)
    return np.clip(100.0 * (totals - own) / (n - 1), 0.0, 100.0)
