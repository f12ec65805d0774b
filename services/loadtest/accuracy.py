"""How close a published ranking is to the hidden truth the simulated voters acted on."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from loadtest.measurements import finite

TOP_K = 20


@dataclass(frozen=True)
class AccuracyPoint:
    """One ranking compared with the truth, over the `n_ranked` proposals it ranks.

    `kendall_tau` between estimated and true abilities; `top_recall` the share of the true
    top `TOP_K` found in the estimated top `TOP_K`; `coverage` the share of 95 % intervals
    that hold the true ability, centred like the estimates (mean 0 over ranked proposals).
    """

    elapsed_s: float
    votes_counted: int
    n_ranked: int
    kendall_tau: float | None
    top_recall: float | None
    coverage: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(elapsed_s: float, votes_counted: int, abilities: np.ndarray, ci_low: np.ndarray,
            ci_high: np.ndarray, truth: np.ndarray) -> AccuracyPoint:
    """Arrays are aligned per ranked proposal (any order). Metrics are None with fewer than
    two proposals."""
    n = len(truth)
    if n < 2:
        return AccuracyPoint(elapsed_s, votes_counted, n, None, None, None)
    tau = kendalltau(abilities, truth).statistic
    k = min(TOP_K, n)
    estimated_top = set(np.argsort(-abilities, kind="stable")[:k].tolist())
    true_top = set(np.argsort(-truth, kind="stable")[:k].tolist())
    centred = truth - truth.mean()
    covered = float(np.mean((ci_low <= centred) & (centred <= ci_high)))
    return AccuracyPoint(elapsed_s, votes_counted, n, finite(float(tau)),
                         len(estimated_top & true_top) / k, covered)
