"""Pair counts of part of a cause's votes (a segment of voters, a crossed cell), holding only
their pairs and the skips of the proposals skipped in them: `SegmentPairCounts`.

A part's counts grow with its votes, not with the cause's proposals: 20 bytes a pair (as the
overall counts) and 8 a proposal skipped in it, and no per-proposal array — its wins,
losses and ties per proposal are sums over its pairs, computed when read.
"""

from __future__ import annotations

import numpy as np

from ranker.pair_counts import SKIP, PairCounts

_SPARSE_MAGIC = b"PWSP"
# A SegmentPairCounts snapshot: this header, then the int64 pair keys, the three uint32
# pair counts, the int32 skipped proposals and their uint32 skips, each a plain array.
_SPARSE_HEADER = np.dtype([("magic", "S4"), ("n_items", "<i8"), ("votes_applied", "<i8"),
                           ("n_pairs", "<i8"), ("n_skipped", "<i8")])


class SegmentPairCounts(PairCounts):
    """`PairCounts` of one segment's votes, holding its pairs and the skips of the proposals
    skipped in it only: the per-proposal tallies are computed from them when read (each
    read of ``wins`` ... ``appearances`` is a pass over the pairs; `tallies` gives all five
    in one). `n_items` covers the largest proposal index its votes name.
    """

    def _init_tallies(self, n_items: int) -> None:
        # Proposals skipped in the segment (sorted) and their skips.
        self._skipped = np.zeros(0, dtype=np.int32)
        self._skip_counts = np.zeros(0, dtype=np.uint32)

    def ensure_items(self, n_items: int) -> None:
        if n_items > np.iinfo(np.int32).max:
            raise ValueError(f"n_items must be < 2**31, got {n_items}")
        self.n_items = max(self.n_items, int(n_items))

    def _add_tallies(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        skipped = kinds == SKIP
        if not skipped.any():
            return
        items, counts = np.unique(np.concatenate((a[skipped], b[skipped], self._skipped)),
                                  return_counts=True)
        # `self._skipped` joined once each: its counts replace those ones.
        counts = counts.astype(np.int64)
        known = np.searchsorted(items, self._skipped)
        counts[known] += self._skip_counts.astype(np.int64) - 1
        self._skipped = items.astype(np.int32)
        self._skip_counts = counts.astype(np.uint32)

    def tallies(self) -> dict[str, np.ndarray]:
        self.compact()
        n = self.n_items
        lo, hi = self._keys >> 32, self._keys & 0xFFFFFFFF
        wins_lo, wins_hi, ties_pair = self._counts
        # Pairs are sorted by lo: its sums are over contiguous runs (one sequential pass
        # each, in integers); the hi side's are scattered (bincount).
        starts = np.flatnonzero(np.concatenate(([True], lo[1:] != lo[:-1]))) if lo.size \
            else np.zeros(0, dtype=np.intp)
        rows = lo[starts]

        def over_lo(counts: np.ndarray) -> np.ndarray:
            sums = np.zeros(n, dtype=np.int64)
            if starts.size:
                sums[rows] = np.add.reduceat(counts, starts, dtype=np.int64)
            return sums

        def over_hi(counts: np.ndarray) -> np.ndarray:
            return np.bincount(hi, weights=counts, minlength=n).astype(np.int64)

        wins = over_lo(wins_lo) + over_hi(wins_hi)
        losses = over_lo(wins_hi) + over_hi(wins_lo)
        ties = over_lo(ties_pair) + over_hi(ties_pair)
        skips = np.zeros(n, dtype=np.int64)
        skips[self._skipped] = self._skip_counts
        return {"wins": wins, "losses": losses, "ties": ties, "skips": skips,
                "appearances": wins + losses + ties + skips}

    @property
    def wins(self) -> np.ndarray:  # type: ignore[override]
        return self.tallies()["wins"]

    @property
    def losses(self) -> np.ndarray:  # type: ignore[override]
        return self.tallies()["losses"]

    @property
    def ties(self) -> np.ndarray:  # type: ignore[override]
        return self.tallies()["ties"]

    @property
    def skips(self) -> np.ndarray:  # type: ignore[override]
        return self.tallies()["skips"]

    @property
    def appearances(self) -> np.ndarray:  # type: ignore[override]
        return self.tallies()["appearances"]

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (20 per pair, 8 per proposal skipped in the segment)."""
        arrays: tuple[np.ndarray, ...] = (
            self._keys, *self._counts, self._pending_keys, *self._pending_counts,
            self._skipped, self._skip_counts)
        return sum(int(array.nbytes) for array in arrays)

    def copy(self) -> SegmentPairCounts:
        """An independent deep copy."""
        return SegmentPairCounts.from_bytes(b"".join(self.snapshot_parts()))

    def snapshot_parts(self, max_part_bytes: int = 1 << 22) -> list[memoryview]:
        """A snapshot that `from_bytes` restores exactly, as parts of at most
        `max_part_bytes` (views of the live arrays, as `PairCounts.snapshot_parts`)."""
        with self._merge_lock:
            self._merge()
            keys, counts = self._keys, self._counts
        header = np.zeros((), dtype=_SPARSE_HEADER)
        header["magic"], header["n_items"] = _SPARSE_MAGIC, self.n_items
        header["votes_applied"], header["n_pairs"] = self.votes_applied, keys.shape[0]
        header["n_skipped"] = self._skipped.shape[0]
        parts = [memoryview(header.tobytes())]
        for array in (keys, *counts, self._skipped, self._skip_counts):
            data = np.ascontiguousarray(array).data.cast("B")
            parts += [data[k:k + max_part_bytes] for k in range(0, len(data), max_part_bytes)]
        return parts

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> SegmentPairCounts:
        """Restore `snapshot_parts` (joined), or a whole `PairCounts` snapshot of the same
        votes. Raises ValueError when `data` is neither."""
        view = memoryview(data).cast("B")
        if bytes(view[:4]) != _SPARSE_MAGIC:
            return cls.of(PairCounts.from_bytes(view))
        if len(view) < _SPARSE_HEADER.itemsize:
            raise ValueError("not a segment's counts: no snapshot header")
        header = np.frombuffer(view[:_SPARSE_HEADER.itemsize], dtype=_SPARSE_HEADER)[0]
        n_items, n_pairs = int(header["n_items"]), int(header["n_pairs"])
        n_skipped = int(header["n_skipped"])
        expected = _SPARSE_HEADER.itemsize + 20 * n_pairs + 8 * n_skipped
        if min(n_items, n_pairs, n_skipped) < 0 or len(view) != expected:
            raise ValueError("a segment's counts: length does not match its header")
        arrays = []
        at = _SPARSE_HEADER.itemsize
        for dtype, n in (("<i8", n_pairs), *((("<u4", n_pairs),) * 3), ("<i4", n_skipped),
                         ("<u4", n_skipped)):
            size = np.dtype(dtype).itemsize * n
            # Copies: the counts are updated in place, and `data` may be read-only.
            arrays.append(np.frombuffer(view[at:at + size], dtype=dtype).astype(dtype[1:]))
            at += size
        keys, wins_lo, wins_hi, ties_pair, skipped, skip_counts = arrays
        lo, hi = keys >> 32, keys & 0xFFFFFFFF
        if n_pairs and not (np.all(lo >= 0) and np.all(lo < hi) and np.all(hi < n_items)
                            and np.all(keys[1:] > keys[:-1])):
            raise ValueError("a segment's counts: pairs are not sorted, distinct lo < hi")
        if n_skipped and not (skipped[0] >= 0 and skipped[-1] < n_items
                              and np.all(skipped[1:] > skipped[:-1])):
            raise ValueError("a segment's counts: skipped proposals not sorted and distinct")
        counts = cls()
        counts.n_items, counts.votes_applied = n_items, int(header["votes_applied"])
        counts._keys, counts._counts = keys, (wins_lo, wins_hi, ties_pair)
        counts._skipped, counts._skip_counts = skipped, skip_counts
        return counts

    @classmethod
    def of(cls, whole: PairCounts) -> SegmentPairCounts:
        """The same votes' counts without `whole`'s per-proposal arrays."""
        whole.compact()
        counts = cls()
        counts.n_items, counts.votes_applied = whole.n_items, whole.votes_applied
        counts._keys, counts._counts = whole._keys, whole._counts
        skipped = np.flatnonzero(whole.skips)
        counts._skipped = skipped.astype(np.int32)
        counts._skip_counts = whole.skips[skipped].astype(np.uint32)
        return counts
