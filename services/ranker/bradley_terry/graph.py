"""The comparison graph of one fit: canonical pairs, their CSR layout and connected components.

Pairs are kept once, as lo < hi sorted by (lo, hi). That order *is* a CSR layout of the upper
triangle U of the comparison graph (row pointers from one `searchsorted`), so every per-item
sum over pairs — gradient, Hessian diagonal, Hessian-vector product — is a reduction over
contiguous runs (rows: lo, U·1) or a scipy CSC product (rows: hi, Uᵀ·1) over the same arrays,
and A v = U v + Uᵀ v; nothing is sorted or laid out again per iteration.

The log posterior is a sum of independent terms, one per connected component, and only sees
differences of abilities within a component: components are what the solver steps, what
centring works over, and what the standard errors are block diagonal over.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

Run = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]
"""Consecutive pairs [start, stop) with their lo items: see `ComparisonGraph.runs`."""


def sum_by(index: np.ndarray, weights: np.ndarray, length: int) -> np.ndarray:
    """Σ of `weights` per value of `index`, float64 of shape (length,) (even when empty)."""
    return np.bincount(index, weights, length).astype(np.float64, copy=False)


class ComparisonGraph:
    """Validated pair data for one fit: canonical pairs, their CSR layout and components.

    Attributes
    ----------
    n : int
        Number of items.
    prior_strength : float
        λ of the fit (validated here with the pairs).
    i, j : ndarray of intp, shape (p,)
        lo and hi of each pair, i < j, sorted by (i, j), no repeats.
    wins_ij, wins_ji, totals : ndarray of float64, shape (p,)
        Wins of lo over hi, of hi over lo, and their sum (> 0: pairs with no wins are
        dropped).
    """

    def __init__(
        self,
        n_items: int,
        i: np.ndarray,
        j: np.ndarray,
        wins_ij: np.ndarray,
        wins_ji: np.ndarray,
        prior_strength: float,
    ) -> None:
        if n_items < 0:
            raise ValueError(f"n_items must be >= 0, got {n_items}")
        if not (np.isfinite(prior_strength) and prior_strength > 0):
            raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
        i = np.asarray(i)
        j = np.asarray(j)
        wins_ij = np.asarray(wins_ij, dtype=np.float64)
        wins_ji = np.asarray(wins_ji, dtype=np.float64)
        shape = i.shape
        if i.ndim != 1 or j.shape != shape or wins_ij.shape != shape or wins_ji.shape != shape:
            raise ValueError(
                f"i, j, wins_ij, wins_ji must be 1-D of one length, got shapes {i.shape}, "
                f"{j.shape}, {wins_ij.shape}, {wins_ji.shape}"
            )
        canonical = True
        if i.size:
            if not (np.issubdtype(i.dtype, np.integer) and np.issubdtype(j.dtype, np.integer)):
                raise ValueError("i and j must hold integers")
            i = i.astype(np.intp, copy=False)
            j = j.astype(np.intp, copy=False)
            canonical = bool(np.all(i < j))
            if canonical:
                keys = i * n_items + j
                canonical = bool(np.all(keys[1:] > keys[:-1]))
                del keys
            # Canonical pairs are sorted by i and have i < j: i[0] and max j bound them all.
            low = int(i[0]) if canonical else min(int(i.min()), int(j.min()))
            high = int(j.max()) if canonical else max(int(i.max()), int(j.max()))
            if low < 0 or high >= n_items:
                raise ValueError(f"item indices must be in [0, {n_items})")
            low_wins = min(wins_ij.min(), wins_ji.min())
            # min is NaN when any value is; ±inf show up in the max.
            if not (np.isfinite(low_wins) and np.isfinite(max(wins_ij.max(), wins_ji.max()))):
                raise ValueError("wins must be finite")
            if low_wins < 0:
                raise ValueError("wins must be >= 0")
        i = i.astype(np.intp, copy=False)
        j = j.astype(np.intp, copy=False)
        if not canonical:
            if np.any(i == j):
                raise ValueError("a pair compares an item with itself (i == j)")
            # Reversed, repeated or unsorted pairs: sum them into one sorted lo < hi list.
            swapped = i > j
            lo, hi = np.minimum(i, j), np.maximum(i, j)
            wins_lo = np.where(swapped, wins_ji, wins_ij)
            wins_hi = np.where(swapped, wins_ij, wins_ji)
            keys, inverse = np.unique(lo * n_items + hi, return_inverse=True)
            wins_ij = sum_by(inverse, wins_lo, keys.shape[0])
            wins_ji = sum_by(inverse, wins_hi, keys.shape[0])
            i, j = keys // max(n_items, 1), keys % max(n_items, 1)
        totals = wins_ij + wins_ji
        if i.size and not np.all(totals > 0):
            keep = totals > 0
            i, j, wins_ij, wins_ji, totals = (
                a[keep] for a in (i, j, wins_ij, wins_ji, totals)
            )
        self.n = n_items
        self.prior_strength = float(prior_strength)
        self.i = i
        self.j = j
        self.wins_ij = wins_ij
        self.wins_ji = wins_ji
        self.totals = totals
        p = i.shape[0]
        index_dtype = np.int32 if max(p, n_items) < np.iinfo(np.int32).max else np.int64
        self._columns = j.astype(index_dtype)
        self._row_ptr = np.searchsorted(i, np.arange(n_items + 1)).astype(index_dtype)
        self._ones = np.ones(n_items)
        self._components: tuple[int, np.ndarray, np.ndarray] | None = None
        self._minor: tuple[int, np.ndarray] | None = None
        # Rows (items as lo) that hold pairs, and where each starts: sums over lo as one
        # np.add.reduceat over contiguous runs (a CSR product would gather x per pair).
        self._lo_rows = np.flatnonzero(np.diff(self._row_ptr))
        self._lo_starts = self._row_ptr[self._lo_rows].astype(np.intp)
        self._lo_counts = np.diff(self._row_ptr)[self._lo_rows]
        self._runs: dict[int, list[Run]] = {}

    @property
    def n_pairs(self) -> int:
        return int(self.i.shape[0])

    def upper(self, values: np.ndarray) -> scipy.sparse.csr_matrix:
        """U with `values` (shape (p,), not copied) on the pairs: (n, n) CSR, rows = lo."""
        return scipy.sparse.csr_matrix(
            (values, self._columns, self._row_ptr), shape=(self.n, self.n), copy=False
        )

    def item_sums(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Σ over pairs whose lo is k, Σ over pairs whose hi is k) of per-pair `values`."""
        return self.sums_over_lo(values), self.sums_over_hi(values)

    def sums_over_lo(self, values: np.ndarray) -> np.ndarray:
        """Σ of per-pair `values` over the pairs whose lo is k, shape (n,)."""
        sums = np.zeros(self.n)
        if self._lo_rows.shape[0]:
            sums[self._lo_rows] = np.add.reduceat(values, self._lo_starts)
        return sums

    def sums_over_hi(self, values: np.ndarray) -> np.ndarray:
        """Σ of per-pair `values` over the pairs whose hi is k, shape (n,), in the precision
        of `values` (float32 values are not copied to float64 first: 3× faster)."""
        ones = self._ones if values.dtype == np.float64 else self._ones.astype(values.dtype)
        return self.upper(values).T @ ones

    def repeat_over_lo(self, item_values: np.ndarray) -> np.ndarray:
        """Per pair, the value of its lo item: `item_values[i]` as one streaming repeat
        (pairs are sorted by lo), shape (p,), dtype of `item_values`."""
        return np.repeat(item_values[self._lo_rows], self._lo_counts)

    def runs(self, size: int) -> list[Run]:
        """The pairs in consecutive runs of `size` (the last one shorter), each as
        (start, stop, lo items, pairs of each, where each one's pairs begin in the run):
        `values[lo items]` repeated by its pairs is `values[i[start:stop]]` (see
        `repeat_over_lo`) without reading i, and `np.add.reduceat` of per-pair values over
        the run at those offsets is their sums over lo, split where a run ends."""
        if size not in self._runs:
            p, rows, starts = self.n_pairs, self._lo_rows, self._lo_starts
            ends = starts + self._lo_counts
            runs = []
            for start in range(0, p, size):
                stop = min(start + size, p)
                first = int(np.searchsorted(starts, start, side="right")) - 1
                last = int(np.searchsorted(starts, stop, side="left"))
                counts = np.minimum(ends[first:last], stop) - np.maximum(starts[first:last],
                                                                        start)
                offsets = np.zeros(counts.shape[0], dtype=np.intp)
                np.cumsum(counts[:-1], out=offsets[1:])
                runs.append((start, stop, rows[first:last], counts, offsets))
            self._runs[size] = runs
        return self._runs[size]

    def components(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(count, label per item (n,), size per component as float64) of the graph.

        An item in no pair is a component of its own (size 1).
        """
        if self._components is None:
            # First the components of a sparse subgraph (each item's first and last pair as
            # lo: ≤ 2n edges, connected in bulk on any well-mixed design), then those of the
            # quotient over the pairs that cross them: the same partition as the whole
            # graph's, without a transpose of every pair.
            n, rows = self.n, self._lo_rows
            ends = self._row_ptr[rows + 1].astype(np.intp) - 1
            sub_lo = np.concatenate([rows, rows])
            sub_hi = np.concatenate([self.j[self._lo_starts], self.j[ends]])
            count, labels = scipy.sparse.csgraph.connected_components(
                scipy.sparse.coo_matrix((np.ones(sub_lo.shape[0]), (sub_lo, sub_hi)),
                                        shape=(n, n)).tocsr(), directed=False)
            if self.i.shape[0]:
                lo_labels = self.repeat_over_lo(labels)
                crossing = np.flatnonzero(lo_labels != labels[self.j])
                if crossing.shape[0]:
                    count, merged = scipy.sparse.csgraph.connected_components(
                        scipy.sparse.coo_matrix(
                            (np.ones(crossing.shape[0]),
                             (lo_labels[crossing], labels[self.j[crossing]])),
                            shape=(count, count)).tocsr(), directed=False)
                    labels = merged[labels]
            sizes = np.bincount(labels, minlength=count).astype(np.float64)
            self._components = (int(count), labels, sizes)
        return self._components

    def component_means(self, values: np.ndarray) -> np.ndarray:
        """The mean of per-item `values` over each item's component, shape (n,)."""
        count, labels, sizes = self.components()
        if count == 1:
            return np.full(self.n, values.mean())
        return (sum_by(labels, values, count) / sizes)[labels]

    def centred(self, values: np.ndarray) -> np.ndarray:
        """Per-item `values` minus their component's mean (a new array), shape (n,)."""
        count, labels, sizes = self.components()
        if count == 1:
            return values - values.mean()
        return values - (sum_by(labels, values, count) / sizes)[labels]

    def minor_pairs(self) -> tuple[int, np.ndarray]:
        """(the component holding most pairs, the pairs outside it) — usually none or few:
        one giant component, and isolated items or small clusters that have few pairs."""
        if self._minor is None:
            count, labels, _ = self.components()
            if count == 1 or self.i.shape[0] == 0:
                self._minor = (0, np.zeros(0, dtype=np.intp))
            else:
                rows = self._lo_rows
                main = int(np.argmax(sum_by(labels[rows], self._lo_counts, count)))
                self._minor = (main, np.flatnonzero(self.repeat_over_lo(labels != main)))
        return self._minor
