"""Pair counts per crossed cell of a cause's voters: one combination of one value per declared
attribute, "unknown" being a value, so that every counted vote is in exactly one cell.

The representative view weights the cells to every attribute's population margins at once
(raking, or post-stratification when the crossing is known), which the counts per attribute
value (ranker.segment_counts) cannot: they do not say how the attributes combine. A cell is
named by its voters' attribute codes (`voter_attributes.decode_codes`, one byte per possible
key, `UNKNOWN_CODE` where unknown) as `MAX_KEYS` bytes. Votes of voters who declared nothing
are in no stored cell: their cell is the overall counts less every stored cell
(`segment_views.stratum`), so a cause whose voters declare nothing holds no cell at all.

A cell stores its pairs as a segment does (`SegmentPairCounts`, 20 bytes a pair and 8 a
proposal skipped in it). The cells' votes are a partition of the votes with a known
attribute, so the cells together hold about the overall counts' pairs (more only where the
same pair recurs in several cells), like one attribute's segments.

The number of cells held is bounded by `MAX_CELLS`. A vote that would open a cell past the
bound is counted nowhere in the cells: the cells are then no longer complete (`complete`
is False), are dropped, and stay so (counting the log again would open the same cells);
the representative view then says it is weighted by one attribute (`segment_views`).

A vote is counted in its cell lazily: `apply` opens the cells its batch names (so the bound
and `complete` are exact at once) and keeps the votes aside; they are counted into their
cells, all pending votes in one pass, when the cells are read (`counts`, `votes`, `nbytes`,
`snapshot_parts`) or by `flush`. Counting a batch costs a few numpy calls per cell it touches,
and a batch of a hundred interactive votes touches about a hundred cells: counted at once,
each cell's calls serve many batches' votes, and the reader (a representative fit, a
checkpoint, the consumer's own `flush` in a thread) pays it off the event loop.

Snapshots (`snapshot_parts`) follow the segments' in the checkpoint (`SegmentCounts`); a
checkpoint from before cells were kept has segments and no cell section: `from_bytes` is not
called, and the consumer counts the log again to rebuild them (ranker.log_consumer).
"""

from __future__ import annotations

import numpy as np

from pairwise.voter_attributes import MAX_KEYS, UNKNOWN_CODE
from ranker.pending_votes import PendingVotes
from ranker.sparse_pair_counts import SegmentPairCounts

Cell = bytes
"""A cell: its voters' attribute codes, `MAX_KEYS` bytes (`UNKNOWN_CODE` where unknown)."""

MAX_CELLS = 4_096
"""Cells held per cause, at most. Four attributes of seven values each, crossed with
"unknown", make 4,096 cells; a sponsor's census table rarely has more. Each cell held costs
about 2.4 KB beyond its pairs (its arrays' and object's headers), so the bound keeps that
under 10 MB a cause, and the weighting's cost, linear in the cells, bounded."""

_MAGIC = b"PWCL"
# Section: magic, int64 number of cells, int64 flags (bit 0: incomplete); per cell its
# MAX_KEYS code bytes, int64 length, then that many bytes of its SegmentPairCounts snapshot.
_HEADER = np.dtype([("magic", "S4"), ("n_cells", "<i8"), ("flags", "<i8")])
_CELL_HEADER = np.dtype([("codes", f"S{MAX_KEYS}"), ("length", "<i8")])
_INCOMPLETE = 1


def all_unknown() -> Cell:
    """The cell of voters who declared nothing (never stored)."""
    return bytes([UNKNOWN_CODE]) * MAX_KEYS


_ALL_UNKNOWN_KEY = np.frombuffer(all_unknown(), dtype="<u8")[0]


class CellCounts:
    """The counts of every crossed cell with counted votes of a known attribute:
    `counts[cell]`. `complete` is False once a vote could not be counted in its cell (past
    `MAX_CELLS`); the cells are then empty."""

    def __init__(self, *, max_cells: int | None = None) -> None:
        self._counts: dict[Cell, SegmentPairCounts] = {}
        self.complete = True
        self.max_cells = MAX_CELLS if max_cells is None else max_cells
        # Votes applied but not yet counted in their cells, (kinds, a, b, cell key) each: the
        # cells are opened already.
        self._pending = PendingVotes(self._count)

    def __bool__(self) -> bool:
        return bool(self._counts)

    @property
    def counts(self) -> dict[Cell, SegmentPairCounts]:
        """Each cell's counts, every applied vote counted (the live map: do not change it)."""
        self.flush()
        return self._counts

    @property
    def pending_votes(self) -> int:
        """Votes applied and not yet counted in their cells (`flush` counts them)."""
        return self._pending.votes

    @property
    def nbytes(self) -> int:
        return sum(counts.nbytes for counts in self.counts.values())

    def votes(self) -> dict[Cell, int]:
        """Counted votes (skips included) per cell."""
        return {cell: counts.votes_applied for cell, counts in self.counts.items()}

    def apply(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray,
              attributes: np.ndarray) -> None:
        """Add counted votes to the cells of their voters' `attributes` (rows of
        voter_attributes.decode_codes, shape (n, MAX_KEYS), uint8); rows of no known
        attribute are left out (their cell is not stored). The cells they name are opened
        now; the votes are counted in them at the next read or `flush`."""
        if not self.complete or not len(kinds):
            return
        codes = np.ascontiguousarray(attributes, dtype=np.uint8)
        key = codes.view("<u8").reshape(-1)  # MAX_KEYS == 8 bytes: one key per row
        known = key != _ALL_UNKNOWN_KEY
        if not known.any():
            return
        keys = key[known]
        distinct = np.unique(keys).astype("<u8").tobytes()
        named = [distinct[at:at + MAX_KEYS] for at in range(0, len(distinct), MAX_KEYS)]
        with self._pending.lock:
            new = [cell for cell in named if cell not in self._counts]
            if len(self._counts) + len(new) > self.max_cells:
                self._counts, self.complete = {}, False
                self._pending.clear()
                return
            for cell in new:
                self._counts[cell] = SegmentPairCounts()
            self._pending.add(np.asarray(kinds)[known], np.asarray(a)[known],
                              np.asarray(b)[known], keys)

    def flush(self) -> None:
        """Count the pending votes in their cells (a pass over them and a few numpy calls
        per cell they touch)."""
        self._pending.flush()

    def _count(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray,
               keys: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        cells = keys[starts].astype("<u8").tobytes()
        for k, (start, stop) in enumerate(zip(starts.tolist(),
                                              [*starts[1:].tolist(), keys.shape[0]],
                                              strict=True)):
            rows = order[start:stop]
            self._counts[cells[k * MAX_KEYS:(k + 1) * MAX_KEYS]].apply(kinds[rows], a[rows],
                                                                       b[rows])

    def snapshot_parts(self) -> list[memoryview]:
        """A snapshot that `from_bytes` restores (views of the live arrays, as
        `PairCounts.snapshot_parts`)."""
        header = np.zeros((), dtype=_HEADER)
        header["magic"], header["n_cells"] = _MAGIC, len(self.counts)
        header["flags"] = 0 if self.complete else _INCOMPLETE
        parts = [memoryview(header.tobytes())]
        for cell, counts in sorted(self.counts.items()):
            snapshot = counts.snapshot_parts()
            cell_header = np.zeros((), dtype=_CELL_HEADER)
            cell_header["codes"] = cell
            cell_header["length"] = sum(len(part) for part in snapshot)
            parts += [memoryview(cell_header.tobytes()), *snapshot]
        return parts

    @staticmethod
    def is_snapshot(data: bytes | memoryview) -> bool:
        """Whether `data` starts with a cell section."""
        return bytes(memoryview(data)[:4]) == _MAGIC

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> CellCounts:
        """Restore `snapshot_parts` (joined). ValueError when `data` is not such a snapshot."""
        view = memoryview(data).cast("B")
        if len(view) < _HEADER.itemsize or not cls.is_snapshot(view):
            raise ValueError("not a cell counts snapshot")
        header = np.frombuffer(view[:_HEADER.itemsize], dtype=_HEADER)[0]
        cells = cls()
        cells.complete = not int(header["flags"]) & _INCOMPLETE
        at = _HEADER.itemsize
        for _ in range(int(header["n_cells"])):
            if at + _CELL_HEADER.itemsize > len(view):
                raise ValueError("cell counts snapshot: truncated")
            # Read as raw bytes: numpy's S dtype drops trailing NUL bytes (code 0).
            codes = bytes(view[at:at + MAX_KEYS])
            length = int(np.frombuffer(view[at + MAX_KEYS:at + _CELL_HEADER.itemsize],
                                       dtype="<i8")[0])
            at += _CELL_HEADER.itemsize
            if length < 0 or at + length > len(view):
                raise ValueError("cell counts snapshot: length does not match its headers")
            cells._counts[codes] = SegmentPairCounts.from_bytes(view[at:at + length])
            at += length
        if at != len(view):
            raise ValueError("cell counts snapshot: length does not match its headers")
        return cells
