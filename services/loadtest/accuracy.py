"""How close a published ranking is to the hidden truth the simulated voters acted on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from loadtest.measurements import finite

# The proposals a consultation retains (and turns into actions), and a wider top whose
# membership and intervals say how settled the head of the ranking is.
TOP_RETAINED = 10
TOP_K = 20


@dataclass(frozen=True)
class AccuracyPoint:
    """One ranking compared with the truth, over the `n_ranked` proposals it ranks.

    `kendall_tau` between estimated and true abilities; `top10_recall` / `top20_recall` the
    share of the true top TOP_RETAINED / TOP_K found in the estimated top of the same size;
    `coverage` the share of 95 % intervals that hold the true ability, centred like the
    estimates (mean 0 over ranked proposals); `top20_width` the mean width (ability units)
    of the 95 % intervals of the true top TOP_K.
    """

    elapsed_s: float
    votes_counted: int
    n_ranked: int
    kendall_tau: float | None
    top10_recall: float | None
    top20_recall: float | None
    coverage: float | None
    top20_width: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(elapsed_s: float, votes_counted: int, abilities: np.ndarray, ci_low: np.ndarray,
            ci_high: np.ndarray, truth: np.ndarray) -> AccuracyPoint:
    """Arrays are aligned per ranked proposal (any order). Metrics are None with fewer than
    two proposals."""
    n = len(truth)
    if n < 2:
        return AccuracyPoint(elapsed_s, votes_counted, n, None, None, None, None, None)
    tau = kendalltau(abilities, truth).statistic
    estimated_order = np.argsort(-abilities, kind="stable")
    true_order = np.argsort(-truth, kind="stable")
    centred = truth - truth.mean()
    covered = float(np.mean((ci_low <= centred) & (centred <= ci_high)))
    true_top = true_order[:TOP_K]
    return AccuracyPoint(
        elapsed_s, votes_counted, n, finite(float(tau)),
        _recall(estimated_order, true_order, TOP_RETAINED),
        _recall(estimated_order, true_order, TOP_K), covered,
        float(np.mean(ci_high[true_top] - ci_low[true_top])))


def _recall(estimated_order: np.ndarray, true_order: np.ndarray, k: int) -> float:
    """Share of the true top k (at most all) found in the estimated top k."""
    k = min(k, len(true_order))
    return len(set(estimated_order[:k].tolist()) & set(true_order[:k].tolist())) / k
