"""Pair counts per segment of a cause's voters, kept beside the overall counts.

A segment is one declared attribute value (pairwise.voter_attributes), named by positions:
(attribute, value). Each segment with a counted vote has a `SegmentPairCounts` of exactly
the counted votes whose voter declared that value, so a segment's ranking is the fit of only
its votes, and later views (a weighted fit over the segments of one attribute, a consensus
over them) read the same map. A vote joins one segment per attribute its voter declared;
votes of unknown attributes join none.

A segment stores its pairs as the overall counts do (20 bytes a pair) but no per-proposal
array: its wins, losses and ties per proposal are sums over its pairs, and its skips are
kept only for the proposals skipped in it (8 bytes each), so it grows with its votes, not
with the cause's proposals. The votes of one attribute's segments are a partition of (part
of) the counted votes, so its segments together hold about the overall counts' pairs (more
only where the same pair recurs in several segments) and none of the overall counts' 40
bytes a proposal: at 34,000 proposals they hold under 1.1 times the overall counts' bytes at
any number of votes (`python -m bench.segments memory`).

Checkpoints store the segments after the overall counts (`snapshot_parts`), and the votes
applied with attributes since the last save after the overall delta (`encode_journal`); a
checkpoint without them has no segment votes. A checkpoint whose segments were stored as
whole `PairCounts` (with a per-proposal array each) loads into the same segments.
"""

from __future__ import annotations

import numpy as np

from pairwise.voter_attributes import MAX_KEYS, UNKNOWN_CODE
from ranker.pair_counts import SKIP, PairCounts

Segment = tuple[int, int]
"""(attribute position, value position) in the cause's declaration."""

_SNAPSHOT_MAGIC = b"PWSG"
_VOTES_MAGIC = b"PWSV"
# Snapshot: magic, int64 number of segments; per segment int32 attribute, int32 value,
# int64 length, then that many bytes of its SegmentPairCounts snapshot (or of a whole
# PairCounts snapshot, per-proposal arrays included: the older form, still read).
_SEGMENT_HEADER = np.dtype([("attribute", "<i4"), ("value", "<i4"), ("length", "<i8")])
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

        def per_item(at: np.ndarray, counts: np.ndarray) -> np.ndarray:
            return np.bincount(at, weights=counts, minlength=n).astype(np.int64)

        wins = per_item(lo, wins_lo) + per_item(hi, wins_hi)
        losses = per_item(lo, wins_hi) + per_item(hi, wins_lo)
        ties = per_item(lo, ties_pair) + per_item(hi, ties_pair)
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


class SegmentCounts:
    """The counts of every segment with counted votes: `counts[(attribute, value)]`."""

    def __init__(self) -> None:
        self.counts: dict[Segment, SegmentPairCounts] = {}
        # Votes with attributes applied since the journal was last taken (None: off).
        self._journal: list[tuple[np.ndarray, ...]] | None = None

    def __bool__(self) -> bool:
        return bool(self.counts)

    @property
    def nbytes(self) -> int:
        return sum(counts.nbytes for counts in self.counts.values())

    def votes(self) -> dict[Segment, int]:
        """Counted votes (skips included) per segment."""
        return {segment: counts.votes_applied for segment, counts in self.counts.items()}

    def apply(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray,
              attributes: np.ndarray | None) -> None:
        """Add counted votes (as `PairCounts.apply` takes them) to the segments their voters'
        `attributes` name (rows of voter_attributes.decode_codes; None: none known).

        Call after the same votes were applied to the overall counts, which checked them.
        """
        if attributes is None or not len(kinds):
            return
        known = attributes != UNKNOWN_CODE
        rows = known.any(axis=1)
        if not rows.any():
            return
        for attribute in np.flatnonzero(known.any(axis=0)).tolist():
            column = attributes[:, attribute]
            for value in np.unique(column[known[:, attribute]]).tolist():
                voted = column == value
                segment = self.counts.get((attribute, value))
                if segment is None:
                    segment = self.counts[(attribute, value)] = SegmentPairCounts()
                segment.apply(kinds[voted], a[voted], b[voted])
        if self._journal is not None:
            self._journal.append((kinds[rows].astype(np.uint8), a[rows].astype(np.int32),
                                  b[rows].astype(np.int32),
                                  attributes[rows].astype(np.uint8)))

    def start_journal(self) -> None:
        """Record the votes with attributes applied from now on (see `encode_journal`)."""
        self._journal = []

    def encode_journal(self) -> bytes:
        """The votes with attributes applied since `start_journal` or the last call, as bytes
        (17 a vote plus 12; b"" for none), and start the journal again empty. Applying them
        (`apply_encoded`) to the segments as they were at the previous call reproduces them.
        """
        if self._journal is None:
            raise RuntimeError("no journal: call start_journal() first")
        parts, self._journal = self._journal, []
        if not parts:
            return b""
        kinds, a, b, attributes = (np.concatenate(column) for column in zip(*parts, strict=True))
        return b"".join((_VOTES_MAGIC, np.array(len(kinds), dtype="<i8").tobytes(),
                         kinds.tobytes(), a.astype("<i4").tobytes(), b.astype("<i4").tobytes(),
                         attributes.tobytes()))

    def apply_encoded(self, data: bytes | memoryview) -> None:
        """Apply votes encoded by `encode_journal`; ValueError when `data` is not that."""
        view = memoryview(data).cast("B")
        if len(view) < 12 or bytes(view[:4]) != _VOTES_MAGIC:
            raise ValueError("not an encoded list of segment votes")
        n = int(np.frombuffer(view[4:12], dtype="<i8")[0])
        if n < 0 or len(view) != 12 + (9 + MAX_KEYS) * n:
            raise ValueError("encoded segment votes: length does not match its header")
        at = 12
        kinds = np.frombuffer(view[at:at + n], dtype=np.uint8)
        a = np.frombuffer(view[at + n:at + 5 * n], dtype="<i4").astype(np.int64)
        b = np.frombuffer(view[at + 5 * n:at + 9 * n], dtype="<i4").astype(np.int64)
        attributes = np.frombuffer(view[at + 9 * n:], dtype=np.uint8).reshape(n, MAX_KEYS)
        self.apply(kinds, a, b, attributes)

    def snapshot_parts(self) -> list[memoryview]:
        """A snapshot that `from_bytes` restores (views of the live arrays, as
        `PairCounts.snapshot_parts`); no parts when there is no segment."""
        if not self.counts:
            return []
        parts = [memoryview(_SNAPSHOT_MAGIC + np.array(len(self.counts), "<i8").tobytes())]
        for (attribute, value), counts in sorted(self.counts.items()):
            snapshot = counts.snapshot_parts()
            header = np.zeros((), dtype=_SEGMENT_HEADER)
            header["attribute"], header["value"] = attribute, value
            header["length"] = sum(len(part) for part in snapshot)
            parts += [memoryview(header.tobytes()), *snapshot]
        return parts

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> SegmentCounts:
        """Restore `snapshot_parts` (joined); empty data is no segment. ValueError when
        `data` is not such a snapshot."""
        segments = cls()
        view = memoryview(data).cast("B")
        if not len(view):
            return segments
        if len(view) < 12 or bytes(view[:4]) != _SNAPSHOT_MAGIC:
            raise ValueError("not a segment counts snapshot")
        n = int(np.frombuffer(view[4:12], dtype="<i8")[0])
        at = 12
        for _ in range(n):
            header = np.frombuffer(view[at:at + _SEGMENT_HEADER.itemsize],
                                   dtype=_SEGMENT_HEADER)[0]
            at += _SEGMENT_HEADER.itemsize
            length = int(header["length"])
            segments.counts[(int(header["attribute"]), int(header["value"]))] = \
                SegmentPairCounts.from_bytes(view[at:at + length])
            at += length
        if at != len(view):
            raise ValueError("segment counts snapshot: length does not match its headers")
        return segments
