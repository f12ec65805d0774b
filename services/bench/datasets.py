"""Seeded, vectorised synthetic vote streams for the ranking benchmarks.

Every generator returns a `Votes` stream: true abilities, and per vote the kind (WIN/TIE as in
`ranker.pair_counts`), the two item indices and whether the vote belongs to the "new" 1% used
for warm refits. The same seed always yields the same stream, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ranker.pair_counts import TIE, WIN


@dataclass(frozen=True)
class Votes:
    """A synthetic vote stream over items ``0..n_items-1``.

    Attributes
    ----------
    name : str
        Short label (``"1k"``, ``"10k"``, ``"34k"``).
    description : str
        How the pairs were drawn, for the report.
    abilities : ndarray of float64, shape (n_items,)
        True abilities (logits) the outcomes were drawn from.
    kinds : ndarray of uint8, shape (k,)
        ``WIN`` (``a`` beat ``b``) or ``TIE``.
    a, b : ndarray of int64, shape (k,)
        Item indices of each vote.
    new : ndarray of bool, shape (k,)
        The votes held back as "new" for the warm refit (1% of the stream, at random).
    """

    name: str
    description: str
    abilities: np.ndarray
    kinds: np.ndarray
    a: np.ndarray
    b: np.ndarray
    new: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.abilities.shape[0])

    @property
    def n_base_votes(self) -> int:
        return int(np.count_nonzero(~self.new))


def _outcomes(
    rng: np.random.Generator, abilities: np.ndarray, a: np.ndarray, b: np.ndarray,
    tie_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw each vote's outcome from Bradley–Terry; returns (kinds, winner-or-a, loser-or-b)."""
    k = a.shape[0]
    a_wins = rng.random(k) < expit(abilities[a] - abilities[b])
    tie = rng.random(k) < tie_rate
    kinds = np.where(tie, TIE, WIN).astype(np.uint8)
    return kinds, np.where(a_wins, a, b), np.where(a_wins, b, a)


def _holdout(rng: np.random.Generator, k: int, new_fraction: float) -> np.ndarray:
    new = np.zeros(k, dtype=bool)
    new[rng.choice(k, int(round(k * new_fraction / (1 + new_fraction))), replace=False)] = True
    return new


def uniform(name: str, n_items: int, n_votes: int, *, seed: int, tie_rate: float = 0.0,
            new_fraction: float = 0.01) -> Votes:
    """Every vote compares two distinct items drawn uniformly; abilities ~ N(0, 1).

    `n_votes` base votes plus ``new_fraction · n_votes`` new ones are drawn from the same
    process; which ones are "new" is random.
    """
    rng = np.random.default_rng(seed)
    abilities = rng.normal(0.0, 1.0, n_items)
    k = n_votes + int(round(n_votes * new_fraction))
    a = rng.integers(0, n_items, k)
    b = (a + rng.integers(1, n_items, k)) % n_items
    kinds, a, b = _outcomes(rng, abilities, a, b, tie_rate)
    return Votes(name, f"uniform random pairs, abilities N(0,1), ties {tie_rate:.0%}",
                 abilities, kinds, a, b, _holdout(rng, k, new_fraction))


def consultation(name: str, n_items: int, n_votes: int, *, seed: int,
                 adaptive_share: float = 0.7, neighbour_ranks: float = 40.0,
                 late_share: float = 0.15, late_window: float = 0.01, tie_rate: float = 0.0,
                 new_fraction: float = 0.01) -> Votes:
    """A Make.org-like consultation: proposals arrive over time, pairs favour close abilities.

    Vote t of k happens at time u = t / k. Item m arrives at u_m: the first
    ``(1 − late_share)`` of the items at ``0.99 · (m / bulk)³`` (most arrive early), the last
    ``late_share`` uniformly within the final `late_window` of the votes — a long tail of late
    proposals with a handful of votes each. A vote picks its first item uniformly among those
    that have arrived; with probability `adaptive_share` the second is a near neighbour in
    ability rank (rank offset ±(1 + Exponential(`neighbour_ranks`))), as adaptive pair
    selection would show; otherwise (or when that neighbour has not arrived yet) it is uniform
    among the arrived items. Abilities ~ N(0, 1.5²) (consultations spread widely).
    """
    rng = np.random.default_rng(seed)
    abilities = rng.normal(0.0, 1.5, n_items)
    bulk = n_items - int(round(late_share * n_items))
    arrival = np.empty(n_items)
    arrival[:bulk] = (1.0 - late_window) * (np.arange(bulk) / bulk) ** 3
    arrival[bulk:] = np.sort(rng.uniform(1.0 - late_window, 1.0, n_items - bulk))
    k = n_votes + int(round(n_votes * new_fraction))
    time = np.sort(rng.random(k))
    # Items arrive in index order, so the ones present at time u are 0..arrived-1.
    arrived = np.maximum(np.searchsorted(arrival, time, side="right"), 2)
    a = (rng.random(k) * arrived).astype(np.int64)
    b = (a + 1 + (rng.random(k) * (arrived - 1)).astype(np.int64)) % arrived
    rank_of = np.empty(n_items, dtype=np.int64)
    by_rank = np.argsort(abilities)
    rank_of[by_rank] = np.arange(n_items)
    adaptive = rng.random(k) < adaptive_share
    offset = (1 + rng.exponential(neighbour_ranks, k)).astype(np.int64)
    offset *= np.where(rng.random(k) < 0.5, -1, 1)
    target = rank_of[a] + offset
    valid = (target >= 0) & (target < n_items)
    neighbour = by_rank[np.clip(target, 0, n_items - 1)]
    use = adaptive & valid & (neighbour < arrived) & (neighbour != a)
    b = np.where(use, neighbour, b)
    kinds, a, b = _outcomes(rng, abilities, a, b, tie_rate)
    description = (
        f"consultation: {adaptive_share:.0%} adaptive pairs (rank offset ~ "
        f"Exp({neighbour_ranks:g})), the rest uniform among arrived proposals; the last "
        f"{late_share:.0%} of proposals arrive in the last {late_window:.0%} of votes; "
        f"abilities N(0,1.5²), ties {tie_rate:.0%}"
    )
    return Votes(name, description, abilities, kinds, a, b, _holdout(rng, k, new_fraction))


SIZES = {
    "1k": lambda: uniform("1k", 1_000, 1_000_000, seed=1),
    "10k": lambda: uniform("10k", 10_000, 10_000_000, seed=2),
    "34k": lambda: consultation("34k", 34_000, 7_000_000, seed=3),
    # Early interactive voting on a large cause: ~5 votes per proposal, ~10,000 distinct
    # pairs, many proposals with 1-3 votes; the ranker refits it every 0.5 s.
    "2k-sparse": lambda: uniform("2k-sparse", 2_000, 10_000, seed=4),
}
"""The benchmark sizes: name -> generator (lazy: each stream takes seconds and ~0.5 GB)."""
