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

from collections.abc import KeysView

import numpy as np

from pairwise.voter_attributes import MAX_KEYS, UNKNOWN_CODE
from ranker.cell_counts import CellCounts
from ranker.pair_counts import SKIP
from ranker.pending_votes import PendingVotes
from ranker.sparse_pair_counts import SegmentPairCounts

Segment = tuple[int, int]
"""(attribute position, value position) in the cause's declaration."""

_SNAPSHOT_MAGIC = b"PWSG"
_VOTES_MAGIC = b"PWSV"
# Snapshot: magic, int64 number of segments; per segment int32 attribute, int32 value,
# int64 length, then that many bytes of its SegmentPairCounts snapshot (or of a whole
# PairCounts snapshot, per-proposal arrays included: the older form, still read).
_SEGMENT_HEADER = np.dtype([("attribute", "<i4"), ("value", "<i4"), ("length", "<i8")])


class SegmentCounts:
    """The counts of every segment with counted votes: `counts[(attribute, value)]`, and of
    every crossed cell of the same votes (`cells`, ranker.cell_counts). `cells_missing` is
    True for counts restored from a checkpoint stored before cells were kept, whose segments
    have votes its cells do not: counting the log again rebuilds them.

    As the cells do, the segments count their votes lazily: `apply` opens the segments a
    page of votes names and keeps the votes aside, and they are counted, all pending votes
    at once, when the counts are read (`counts`, `votes`, `nbytes`, `snapshot_parts`) or by
    `flush` — a reader's thread, off the event loop that applies pages of a hundred votes,
    each of which would cost every segment it touches a few numpy calls."""

    def __init__(self) -> None:
        self._counts: dict[Segment, SegmentPairCounts] = {}
        self.cells = CellCounts()
        self.cells_missing = False
        # Votes with a known attribute applied but not yet counted in their segments, as
        # (kinds, a, b, attributes); their segments are opened.
        self._pending = PendingVotes(self._count)
        # Votes with attributes applied since the journal was last taken (None: off).
        self._journal: list[tuple[np.ndarray, ...]] | None = None

    def __bool__(self) -> bool:
        return bool(self._counts)

    def segments(self) -> KeysView[Segment]:
        """Every segment with an applied vote (counted or pending): no counting."""
        return self._counts.keys()

    @property
    def counts(self) -> dict[Segment, SegmentPairCounts]:
        """Each segment's counts, every applied vote counted (the live map: do not change
        it)."""
        self.flush()
        return self._counts

    @property
    def pending_votes(self) -> int:
        """Votes applied and not yet counted in their segments or cells (`flush`)."""
        return max(self._pending.votes, self.cells.pending_votes)

    @property
    def nbytes(self) -> int:
        """Bytes of the segments' counts (the cells' are `cells.nbytes`)."""
        return sum(counts.nbytes for counts in self.counts.values())

    def votes(self) -> dict[Segment, int]:
        """Counted votes (skips included) per segment."""
        return {segment: counts.votes_applied for segment, counts in self.counts.items()}

    def apply(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray,
              attributes: np.ndarray | None) -> None:
        """Add counted votes (as `PairCounts.apply` takes them) to the segments their voters'
        `attributes` name (rows of voter_attributes.decode_codes; None: none known): the
        segments are opened now, the votes counted in them at the next read or `flush`.

        Call after the same votes were applied to the overall counts, which checked them.
        """
        if attributes is None or not len(kinds):
            return
        known = attributes != UNKNOWN_CODE
        rows = known.any(axis=1)
        if not rows.any():
            return
        kinds, a, b = np.asarray(kinds)[rows], np.asarray(a)[rows], np.asarray(b)[rows]
        declared = np.ascontiguousarray(attributes[rows], dtype=np.uint8)
        with self._pending.lock:
            for attribute in np.flatnonzero(known.any(axis=0)).tolist():
                column = declared[:, attribute]
                for value in np.unique(column[column != UNKNOWN_CODE]).tolist():
                    if (attribute, value) not in self._counts:
                        self._counts[(attribute, value)] = SegmentPairCounts()
            self._pending.add(kinds, a, b, declared)
        self.cells.apply(kinds, a, b, declared)
        if self._journal is not None:
            self._journal.append((kinds.astype(np.uint8), a.astype(np.int32),
                                  b.astype(np.int32), declared))

    def flush(self) -> None:
        """Count the pending votes in their segments and cells."""
        self._pending.flush()
        self.cells.flush()

    def _count(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray,
               attributes: np.ndarray) -> None:
        for attribute in range(attributes.shape[1]):
            column = attributes[:, attribute]
            declared = column != UNKNOWN_CODE
            if not declared.any():
                continue
            # Rows by value, each value's rows in order: one pass for the attribute.
            order = np.flatnonzero(declared)
            order = order[np.argsort(column[order], kind="stable")]
            values = column[order]
            starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
            for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), order.shape[0]],
                                   strict=True):
                voted = order[start:stop]
                self._counts[(attribute, int(values[start]))].apply(kinds[voted], a[voted],
                                                                    b[voted])

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
        # Checked here, as the overall counts check the votes `apply` is otherwise given:
        # counted later by a reader, a bad vote would fail that reader instead of this load.
        if n and (int(kinds.max()) > SKIP or min(int(a.min()), int(b.min())) < 0
                  or bool((a == b).any())):
            raise ValueError("encoded segment votes: an unknown kind, a negative proposal "
                             "index or a proposal paired with itself")
        self.apply(kinds, a, b, attributes)

    def snapshot_parts(self) -> list[memoryview]:
        """A snapshot that `from_bytes` restores (views of the live arrays, as
        `PairCounts.snapshot_parts`): the segments, then the cells' section; no parts when
        there is no segment (then there is no cell either)."""
        if not self.counts:
            return []
        parts = [memoryview(_SNAPSHOT_MAGIC + np.array(len(self.counts), "<i8").tobytes())]
        for (attribute, value), counts in sorted(self.counts.items()):
            snapshot = counts.snapshot_parts()
            header = np.zeros((), dtype=_SEGMENT_HEADER)
            header["attribute"], header["value"] = attribute, value
            header["length"] = sum(len(part) for part in snapshot)
            parts += [memoryview(header.tobytes()), *snapshot]
        return parts + self.cells.snapshot_parts()

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> SegmentCounts:
        """Restore `snapshot_parts` (joined); empty data is no segment. Segments without a
        cell section after them (stored before cells were kept) restore with
        `cells_missing`. ValueError when `data` is not such a snapshot."""
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
            segments._counts[(int(header["attribute"]), int(header["value"]))] = \
                SegmentPairCounts.from_bytes(view[at:at + length])
            at += length
        if at < len(view) and CellCounts.is_snapshot(view[at:]):
            segments.cells = CellCounts.from_bytes(view[at:])
        elif at != len(view):
            raise ValueError("segment counts snapshot: length does not match its headers")
        else:
            segments.cells_missing = bool(segments._counts)
        return segments
