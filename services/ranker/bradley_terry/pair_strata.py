"""`PairStrata`: the pair counts of several strata of votes over the same items, laid out once
for a weighted fit and its sandwich (`weighted.fit_weighted_strata`).

A weighted fit over strata (one per crossed cell of voters, say) sums each pair's wins over
the strata, each weighted, and its sandwich needs each stratum's own counts of each pair.
Both read one layout: the distinct pairs any stratum holds, and one *row* per stratum and
pair it holds, naming its pair and its stratum. The weighted wins of every pair are then one
`bincount` over the rows, onto pairs that are already distinct (no sort per fit), and the
sandwich's per-stratum scores one more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Stratum = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""One stratum's pairs: (i, j, wins_ij, wins_ji, ties), ties as counts (not halved)."""


@dataclass(frozen=True)
class PairStrata:
    """Pair counts of `n_strata` strata over items 0..n_items-1.

    Attributes
    ----------
    n_items, n_strata : int
    i, j : ndarray of intp, shape (p,)
        The distinct pairs (i ≠ j) that some stratum holds; i < j, sorted, when built by
        `of` (callers laying them out themselves may give any distinct pairs).
    row_pair, row_stratum : ndarray of intp, shape (r,)
        Each row's pair (index into `i`, `j`) and stratum; a (pair, stratum) at most once.
    wins_ij, wins_ji, ties : ndarray of float64, shape (r,)
        The row's stratum's wins of i over j, of j over i, and its ties of the pair.
    """

    n_items: int
    n_strata: int
    i: np.ndarray
    j: np.ndarray
    row_pair: np.ndarray
    row_stratum: np.ndarray
    wins_ij: np.ndarray
    wins_ji: np.ndarray
    ties: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.row_pair.shape[0])

    def votes(self) -> np.ndarray:
        """Votes per stratum (decided and ties), float64 of shape (n_strata,)."""
        return np.bincount(self.row_stratum, self.wins_ij + self.wins_ji + self.ties,
                           self.n_strata).astype(np.float64, copy=False)

    def weighted_wins(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each pair's wins of i over j and of j over i with every vote of stratum s counted
        `weights[s]` times, a tie half to each side: two arrays of shape (p,)."""
        row_weight = np.asarray(weights, dtype=np.float64)[self.row_stratum]
        half_ties = 0.5 * self.ties
        p = self.i.shape[0]
        return (np.bincount(self.row_pair, row_weight * (self.wins_ij + half_ties), p),
                np.bincount(self.row_pair, row_weight * (self.wins_ji + half_ties), p))

    @classmethod
    def of(cls, n_items: int, strata: Sequence[Stratum]) -> PairStrata:
        """The layout of strata given as (i, j, wins_ij, wins_ji, ties) each (pairs in any
        order or orientation, none repeated within a stratum; rows with no vote dropped).

        Raises
        ------
        ValueError
            A stratum's arrays differ in length, or an index lies outside [0, n_items).
        """
        columns = []
        for stratum in strata:
            arrays = tuple(np.asarray(a) for a in stratum)
            if len(arrays) != 5 or any(a.shape != arrays[0].shape or a.ndim != 1
                                       for a in arrays):
                raise ValueError("a stratum is (i, j, wins_ij, wins_ji, ties), 1-D of one "
                                 "length")
            columns.append(arrays)
        sizes = np.array([c[0].shape[0] for c in columns], dtype=np.intp)

        def joined(k: int, dtype: type) -> np.ndarray:
            return (np.concatenate([np.asarray(c[k], dtype=dtype) for c in columns])
                    if columns else np.zeros(0, dtype=dtype))

        i, j = joined(0, np.int64), joined(1, np.int64)
        wins_ij, wins_ji, ties = joined(2, np.float64), joined(3, np.float64), \
            joined(4, np.float64)
        if i.size and (min(int(i.min()), int(j.min())) < 0
                       or max(int(i.max()), int(j.max())) >= n_items):
            raise ValueError(f"item indices must be in [0, {n_items})")
        stratum_of = np.repeat(np.arange(len(columns), dtype=np.intp), sizes)
        swapped = i > j
        lo, hi = np.where(swapped, j, i), np.where(swapped, i, j)
        wins_lo = np.where(swapped, wins_ji, wins_ij)
        wins_hi = np.where(swapped, wins_ij, wins_ji)
        voted = (wins_lo > 0) | (wins_hi > 0) | (ties > 0)
        keys, row_pair = np.unique(lo[voted] * max(n_items, 1) + hi[voted],
                                   return_inverse=True)
        return cls(n_items=n_items, n_strata=len(columns),
                   i=(keys // max(n_items, 1)).astype(np.intp),
                   j=(keys % max(n_items, 1)).astype(np.intp),
                   row_pair=row_pair.reshape(-1).astype(np.intp), row_stratum=stratum_of[voted],
                   wins_ij=wins_lo[voted], wins_ji=wins_hi[voted], ties=ties[voted])
