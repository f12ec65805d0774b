"""Sufficient statistics of a cause's vote log: per-item tallies and per-pair win/tie counts.

Bradley–Terry only needs, for each unordered pair of items, how often each side won and how
often they tied; this module keeps exactly that (plus per-item tallies a ranking displays),
so the ranker never re-reads the log. Items are dense indices ``0..n_items-1`` (the proposal
index the vote log carries); pairs are stored once, as ``lo < hi``, sorted by ``(lo, hi)``.

Storage is 20 bytes per distinct pair (one int64 key packing both indices, three uint32
counts) and 40 bytes per item (five int64 tallies). A batch of k votes costs O(k log k) to
aggregate plus O(k log p) to find its pairs among the p stored ones; pairs seen for the first
time wait in a small sorted side buffer that is merged into the main arrays in one linear pass
when it outgrows `_PENDING_MIN` or 1/`_PENDING_FRACTION` of them (or when the pairs are read),
so no batch re-sorts or copies all pairs.

For incremental checkpoints, a `PairCounts` can keep a journal of the votes applied since it
was last taken (`start_journal` / `take_journal`): a snapshot plus the journals taken after
it (`encode_votes` / `decode_votes`, 9 bytes a vote) restore the counts exactly.
"""

from __future__ import annotations

import threading

import numpy as np

from pairwise import vote_log

WIN, TIE, SKIP = vote_log.WIN_CODE, vote_log.TIE_CODE, vote_log.SKIP_CODE
"""Vote kind codes (uint8): WIN means ``a`` beat ``b``; TIE means they tied; SKIP means the
pair was shown and the voter skipped it."""

_RAW_MAGIC = b"PWPC"
_RAW_VERSION = 2
# Raw snapshot (version 2): magic, then little-endian uint32 version, int64 n_items,
# int64 votes_applied, int64 n_pairs; then the five int64 tallies, the int64 pair keys and
# the three uint32 pair counts, each a plain array.
_RAW_HEADER = np.dtype([("magic", "S4"), ("version", "<u4"), ("n_items", "<i8"),
                        ("votes_applied", "<i8"), ("n_pairs", "<i8")])
_VOTES_MAGIC = b"PWV1"
_MAX_INDEX = np.iinfo(np.int32).max - 1
_MAX_COUNT = np.iinfo(np.uint32).max
_COUNT_DTYPE = np.uint32
_INDEX_DTYPE = np.int32
_TALLY_NAMES = ("wins", "losses", "ties", "skips", "appearances")
_COUNT_NAMES = ("wins_lo", "wins_hi", "ties_pair")
_LOW_BITS = 0xFFFFFFFF
_PENDING_MIN = 1 << 16
"""The side buffer of new pairs is merged once it holds more than this many pairs and ..."""
_PENDING_FRACTION = 64
"""... more than 1/64 of the stored ones: each merge moves every stored pair once, so new
pairs cost an amortised ~64 moves each, while a batch's insertions into the buffer move at
most 1/64 of the pairs (≈ 2 ms at 9M pairs)."""


def _pair_keys(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One int64 per pair that sorts like ``(lo, hi)``; indices are < 2**31 so no collision."""
    return (lo.astype(np.int64) << 32) | hi.astype(np.int64)


def _insert_sorted(
    keys: np.ndarray, counts: tuple[np.ndarray, ...], new_keys: np.ndarray,
    new_counts: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Merge sorted `new_keys` (absent from sorted `keys`) and their counts in one linear pass.

    Each new pair goes before the first stored pair with a larger key, so the result stays
    sorted without a global re-sort; where the new pairs land is worked out once for the keys
    and the three counts (np.insert would work it out for each, a large share of merging
    the few new pairs of each of hundreds of small counts).
    """
    at = np.searchsorted(keys, new_keys) + np.arange(new_keys.shape[0])
    old = np.ones(keys.shape[0] + new_keys.shape[0], dtype=bool)
    old[at] = False

    def merged(stored: np.ndarray, added: np.ndarray, dtype: np.dtype) -> np.ndarray:
        out = np.empty(old.shape[0], dtype=dtype)
        out[old] = stored
        out[at] = added
        return out

    return merged(keys, new_keys, keys.dtype), tuple(
        merged(old_counts, new, old_counts.dtype)
        for old_counts, new in zip(counts, new_counts, strict=True))


class PairCounts:
    """Mutable aggregate of every vote applied so far, over item indices ``0..n_items-1``.

    ``n_items`` grows to cover the largest index any applied vote names (or `ensure_items`).

    Attributes
    ----------
    n_items : int
        Number of items the per-item arrays cover.
    votes_applied : int
        Votes applied so far, of every kind (skips included).
    wins, losses, ties, skips, appearances : ndarray of int64, shape (n_items,)
        Per item: votes won, lost, tied, skipped, and shown in (any kind).
    pair_lo, pair_hi : ndarray of int32, shape (n_pairs,)
        The distinct unordered pairs that have at least one win or tie, ``lo < hi``, sorted
        lexicographically by ``(lo, hi)`` (computed from the stored keys on each access).
    wins_lo, wins_hi, ties_pair : ndarray of uint32, shape (n_pairs,)
        Per pair: times ``lo`` beat ``hi``, times ``hi`` beat ``lo``, ties between them.
        Reading any pair attribute first merges pending new pairs (see `compact`).
    """

    def __init__(self, n_items: int = 0) -> None:
        if n_items < 0:
            raise ValueError(f"n_items must be >= 0, got {n_items}")
        self.n_items = int(n_items)
        self.votes_applied = 0
        self._init_tallies(n_items)
        # Sorted pair keys (lo << 32 | hi) and their counts; pairs first seen since the last
        # merge live in the `_pending_*` arrays, also sorted, and are disjoint from these.
        self._keys = np.zeros(0, dtype=np.int64)
        self._counts = tuple(np.zeros(0, dtype=_COUNT_DTYPE) for _ in _COUNT_NAMES)
        self._pending_keys = np.zeros(0, dtype=np.int64)
        self._pending_counts = tuple(np.zeros(0, dtype=_COUNT_DTYPE) for _ in _COUNT_NAMES)
        # Reads merge pending pairs, so two threads reading at once (a snapshot and a fit's
        # subset) must not both merge.
        self._merge_lock = threading.Lock()
        # Votes applied since the journal was last taken (None: not journaling).
        self._journal: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def _init_tallies(self, n_items: int) -> None:
        self.wins = np.zeros(n_items, dtype=np.int64)
        self.losses = np.zeros(n_items, dtype=np.int64)
        self.ties = np.zeros(n_items, dtype=np.int64)
        self.skips = np.zeros(n_items, dtype=np.int64)
        self.appearances = np.zeros(n_items, dtype=np.int64)

    def tallies(self) -> dict[str, np.ndarray]:
        """The five per-item tallies by name (``wins`` ... ``appearances``), each of shape
        (n_items,) (the live arrays: copy before the counts change)."""
        return {name: getattr(self, name) for name in _TALLY_NAMES}

    @property
    def n_pairs(self) -> int:
        """Number of distinct unordered pairs with at least one win or tie."""
        return int(self._keys.shape[0] + self._pending_keys.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (20 per pair, 40 per item)."""
        arrays: tuple[np.ndarray, ...] = (
            self._keys, *self._counts, self._pending_keys, *self._pending_counts
        )
        tallies = sum(int(getattr(self, name).nbytes) for name in _TALLY_NAMES)
        return tallies + sum(int(array.nbytes) for array in arrays)

    def compact(self) -> None:
        """Merge the pairs first seen since the last merge into the sorted arrays (O(p))."""
        with self._merge_lock:
            self._merge()

    def _merge(self) -> None:
        if self._pending_keys.shape[0]:
            self._keys, self._counts = _insert_sorted(
                self._keys, self._counts, self._pending_keys, self._pending_counts
            )
            self._pending_keys = self._pending_keys[:0]
            self._pending_counts = tuple(c[:0] for c in self._pending_counts)

    @property
    def pair_keys(self) -> np.ndarray:
        """The pairs as sorted int64 keys ``lo << 32 | hi`` (the live array: copy before the
        counts change), shape (n_pairs,)."""
        self.compact()
        return self._keys

    @property
    def pair_lo(self) -> np.ndarray:
        self.compact()
        return (self._keys >> 32).astype(_INDEX_DTYPE)

    @property
    def pair_hi(self) -> np.ndarray:
        self.compact()
        return (self._keys & _LOW_BITS).astype(_INDEX_DTYPE)

    @property
    def wins_lo(self) -> np.ndarray:
        self.compact()
        return self._counts[0]

    @property
    def wins_hi(self) -> np.ndarray:
        self.compact()
        return self._counts[1]

    @property
    def ties_pair(self) -> np.ndarray:
        self.compact()
        return self._counts[2]

    def ensure_items(self, n_items: int) -> None:
        """Grow the per-item arrays to cover at least `n_items` items (zeros for new ones)."""
        if n_items > _MAX_INDEX + 1:
            raise ValueError(f"n_items must be <= {_MAX_INDEX + 1}, got {n_items}")
        if n_items <= self.n_items:
            return
        for name in _TALLY_NAMES:
            old = getattr(self, name)
            grown = np.zeros(n_items, dtype=np.int64)
            grown[: old.shape[0]] = old
            setattr(self, name, grown)
        self.n_items = int(n_items)

    def apply(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """Apply a batch of votes.

        Parameters
        ----------
        kinds : array_like of uint8, shape (k,)
            `WIN` (``a`` beat ``b``), `TIE` (``a`` and ``b`` tied) or `SKIP` (shown, skipped).
        a, b : array_like of int, shape (k,)
            Item indices, ``>= 0`` and ``a != b``.

        Notes
        -----
        Grows ``n_items`` to ``max(a, b) + 1``. Skips count in ``appearances`` and ``skips``
        only, never in the pair arrays. Cost is O(k log k) for the batch, O(k log p) to find
        its pairs, and an insertion into the bounded buffer of new pairs; the buffer's merge
        into the p stored pairs (linear, no re-sort) happens once per ~p/64 new pairs.

        Raises
        ------
        ValueError
            Shapes differ, an index is negative or too large, ``a == b``, a kind is unknown, or
            a pair count would overflow uint32. Nothing is changed when it raises.
        """
        kinds = np.asarray(kinds)
        a = np.asarray(a)
        b = np.asarray(b)
        if kinds.ndim != 1 or a.shape != kinds.shape or b.shape != kinds.shape:
            raise ValueError(
                f"kinds, a and b must be 1-D of one length, got shapes "
                f"{kinds.shape}, {a.shape}, {b.shape}"
            )
        k = kinds.shape[0]
        if k == 0:
            return
        for name, arr in (("kinds", kinds), ("a", a), ("b", b)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
        if kinds.min() < 0 or kinds.max() > SKIP:
            bad = kinds[(kinds < 0) | (kinds > SKIP)][0]
            raise ValueError(f"unknown vote kind {int(bad)} (expected WIN=0, TIE=1, SKIP=2)")
        a = a.astype(np.int64, copy=False)
        b = b.astype(np.int64, copy=False)
        low = min(int(a.min()), int(b.min()))
        if low < 0:
            raise ValueError(f"item indices must be >= 0, got {low}")
        high = max(int(a.max()), int(b.max()))
        if high > _MAX_INDEX:
            raise ValueError(f"item indices must be <= {_MAX_INDEX}, got {high}")
        same = a == b
        if same.any():
            first = int(np.flatnonzero(same)[0])
            raise ValueError(f"vote {first} pairs item {int(a[first])} with itself")

        plan = self._plan_pair_update(kinds, a, b)

        # Everything that can fail has been checked; from here on the state changes.
        self.ensure_items(max(self.n_items, high + 1))
        self._add_tallies(kinds, a, b)
        self.votes_applied += k
        if plan is not None:
            self._commit_pair_update(plan)
        if self._journal is not None:
            self._journal.append((kinds.astype(np.uint8), a.astype(np.int32),
                                  b.astype(np.int32)))

    def _add_tallies(self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        """Add checked votes to the tallies (which `ensure_items` grew to cover them)."""
        n = self.n_items
        is_win = kinds == WIN
        is_tie = kinds == TIE
        is_skip = kinds == SKIP
        self.wins += np.bincount(a[is_win], minlength=n)
        self.losses += np.bincount(b[is_win], minlength=n)
        self.ties += np.bincount(a[is_tie], minlength=n) + np.bincount(b[is_tie], minlength=n)
        self.skips += np.bincount(a[is_skip], minlength=n) + np.bincount(b[is_skip], minlength=n)
        self.appearances += np.bincount(a, minlength=n) + np.bincount(b, minlength=n)

    def start_journal(self) -> None:
        """Record every vote applied from now on, until taken (see `take_journal`)."""
        self._journal = []

    def take_journal(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The votes applied since `start_journal` or the last take, in order, as
        (kinds uint8, a int32, b int32); the journal starts again empty.

        Applying them to a copy of these counts taken at the previous take reproduces the
        counts exactly. Raises RuntimeError when no journal was started.
        """
        if self._journal is None:
            raise RuntimeError("no journal: call start_journal() first")
        parts, self._journal = self._journal, []
        if not parts:
            return (np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int32),
                    np.zeros(0, dtype=np.int32))
        kinds, a, b = (np.concatenate(column) for column in zip(*parts, strict=True))
        return kinds, a, b

    def _plan_pair_update(
        self, kinds: np.ndarray, a: np.ndarray, b: np.ndarray
    ) -> tuple[tuple[np.ndarray, ...], ...] | None:
        """Work out the batch's effect on the pair arrays without touching them.

        Returns, for the stored pairs, the pending pairs and the new pairs, (positions or keys,
        new totals per count), or None when the batch holds only skips. Raises ValueError if
        a count would overflow uint32.
        """
        decided = kinds != SKIP
        if not decided.any():
            return None
        kinds, a, b = kinds[decided], a[decided], b[decided]
        lo = np.minimum(a, b)
        hi = np.maximum(a, b)
        is_win = kinds == WIN
        batch_keys, inverse = np.unique(_pair_keys(lo, hi), return_inverse=True)
        m = batch_keys.shape[0]
        added = tuple(
            np.bincount(inverse, weights=flags, minlength=m).astype(np.int64)
            for flags in (is_win & (a < b), is_win & (a > b), kinds == TIE)
        )
        plans = []
        remaining = np.ones(m, dtype=bool)
        for keys, counts in ((self._keys, self._counts),
                             (self._pending_keys, self._pending_counts)):
            pos = np.searchsorted(keys, batch_keys)
            found = pos < keys.shape[0]
            found[found] = keys[pos[found]] == batch_keys[found]
            found &= remaining
            remaining &= ~found
            at = pos[found]
            plans.append((at, *(c[at].astype(np.int64) + add[found]
                                for c, add in zip(counts, added, strict=True))))
        plans.append((batch_keys[remaining], *(add[remaining] for add in added)))
        if any(t.size and int(t.max()) > _MAX_COUNT for plan in plans for t in plan[1:]):
            raise ValueError(f"a pair count would exceed {_MAX_COUNT}")
        return tuple(plans)

    def _commit_pair_update(self, plan: tuple[tuple[np.ndarray, ...], ...]) -> None:
        """Apply a plan from `_plan_pair_update` (cannot fail)."""
        stored, pending, new = plan
        for counts, (at, *totals) in ((self._counts, stored), (self._pending_counts, pending)):
            for column, total in zip(counts, totals, strict=True):
                column[at] = total
        new_keys, *new_counts = new
        if new_keys.size:
            self._pending_keys, self._pending_counts = _insert_sorted(
                self._pending_keys, self._pending_counts, new_keys, tuple(new_counts)
            )
        if self._pending_keys.shape[0] > max(
            _PENDING_MIN, self._keys.shape[0] // _PENDING_FRACTION
        ):
            self.compact()

    def subset(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The pairs among `items`, re-indexed to positions in `items`.

        Parameters
        ----------
        items : array_like of int, shape (m,)
            Distinct global item indices (e.g. the accepted proposals), normally sorted.
            Indices ``>= n_items`` are allowed (items with no votes yet) and have no pairs.

        Returns
        -------
        i, j : ndarray of int64, shape (p,)
            Positions in `items` of the two sides of each pair with at least one win or tie.
        wins_ij, wins_ji : ndarray of float64, shape (p,)
            Wins of ``items[i]`` over ``items[j]`` and the reverse, each tie counting half a
            win to each side.

        All four are new arrays (never views of the counts, which may change after).

        Raises
        ------
        ValueError
            `items` is not 1-D, holds a negative index, or repeats an index.
        """
        items = np.asarray(items, dtype=np.int64)
        if items.ndim != 1:
            raise ValueError(f"items must be 1-D, got shape {items.shape}")
        if items.size and items.min() < 0:
            raise ValueError("items must be >= 0")
        known = items[items < self.n_items]
        position = np.full(self.n_items, -1, dtype=np.int64)
        position[known] = np.flatnonzero(items < self.n_items)
        # Sorted items (the usual case) repeat none when strictly increasing; np.unique
        # sorts, holding the GIL ~1 ms at 34,000 items.
        if not np.all(items[1:] > items[:-1]) \
                and np.unique(items).shape[0] != items.shape[0]:
            raise ValueError("items must not repeat an index")
        self.compact()
        wins_lo, wins_hi, ties = self._counts
        if known.shape[0] == self.n_items and np.array_equal(known, np.arange(self.n_items)):
            # Every item, in order (the usual case): positions are the indices themselves,
            # and each array is one pass over the pairs (uint32 counts add to float64 exactly).
            half_ties = ties * 0.5
            return (self._keys >> 32, self._keys & _LOW_BITS, wins_lo + half_ties,
                    wins_hi + half_ties)
        pos_lo = position[self._keys >> 32]
        pos_hi = position[self._keys & _LOW_BITS]
        keep = (pos_lo >= 0) & (pos_hi >= 0)
        half_ties = 0.5 * ties[keep].astype(np.float64)
        return (
            pos_lo[keep],
            pos_hi[keep],
            wins_lo[keep].astype(np.float64) + half_ties,
            wins_hi[keep].astype(np.float64) + half_ties,
        )

    def copy(self) -> PairCounts:
        """An independent deep copy."""
        self.compact()
        clone = PairCounts(0)
        clone.n_items = self.n_items
        clone.votes_applied = self.votes_applied
        for name in _TALLY_NAMES:
            setattr(clone, name, getattr(self, name).copy())
        clone._keys = self._keys.copy()
        clone._counts = tuple(c.copy() for c in self._counts)
        return clone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PairCounts):
            return NotImplemented
        self.compact()
        other.compact()
        return (
            self.n_items == other.n_items
            and self.votes_applied == other.votes_applied
            and np.array_equal(self._keys, other._keys)
            and all(
                np.array_equal(getattr(self, name), getattr(other, name))
                for name in _TALLY_NAMES + _COUNT_NAMES
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"PairCounts(n_items={self.n_items}, n_pairs={self.n_pairs}, "
            f"votes_applied={self.votes_applied})"
        )

    def snapshot_parts(self, max_part_bytes: int = 1 << 22) -> list[memoryview]:
        """A binary snapshot that `from_bytes` restores exactly, as parts of at most
        `max_part_bytes` whose concatenation is the snapshot (`to_bytes`).

        The parts are views of the live arrays, not copies: they stay valid (the arrays are
        never resized in place) but follow later `apply` calls, so send them before applying
        more votes. Merges pending new pairs first.
        """
        if max_part_bytes < _RAW_HEADER.itemsize:
            raise ValueError(f"max_part_bytes must be >= {_RAW_HEADER.itemsize}")
        with self._merge_lock:
            self._merge()
            keys, counts = self._keys, self._counts
        header = np.zeros((), dtype=_RAW_HEADER)
        header["magic"], header["version"] = _RAW_MAGIC, _RAW_VERSION
        header["n_items"], header["votes_applied"] = self.n_items, self.votes_applied
        header["n_pairs"] = keys.shape[0]
        arrays = [getattr(self, name) for name in _TALLY_NAMES] + [keys, *counts]
        parts = [memoryview(header.tobytes())]
        for array in arrays:
            data = np.ascontiguousarray(array).data.cast("B")
            parts += [data[k:k + max_part_bytes] for k in range(0, len(data), max_part_bytes)]
        return parts

    def to_bytes(self) -> bytes:
        """A versioned binary snapshot that `from_bytes` restores exactly (20 bytes a pair,
        40 an item, 32 of header)."""
        return b"".join(self.snapshot_parts())

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> PairCounts:
        """Restore a snapshot made by `to_bytes` / `snapshot_parts`.

        Raises
        ------
        ValueError
            `data` is not a snapshot, is of an unknown version, or is inconsistent.
        """
        view = memoryview(data).cast("B")
        if len(view) < _RAW_HEADER.itemsize or bytes(view[:4]) != _RAW_MAGIC:
            raise ValueError("not a PairCounts snapshot: no snapshot header")
        header = np.frombuffer(view[:_RAW_HEADER.itemsize], dtype=_RAW_HEADER)[0]
        if int(header["version"]) != _RAW_VERSION:
            raise ValueError(f"unsupported PairCounts snapshot version {int(header['version'])}")
        n_items, n_pairs = int(header["n_items"]), int(header["n_pairs"])
        if n_items < 0 or n_pairs < 0 \
                or len(view) != _RAW_HEADER.itemsize + 40 * n_items + 20 * n_pairs:
            raise ValueError("not a PairCounts snapshot: length does not match its header")
        offset = _RAW_HEADER.itemsize

        def take(dtype: str, count: int) -> np.ndarray:
            nonlocal offset
            size = np.dtype(dtype).itemsize * count
            # A copy: the counts are updated in place, and `data` may be read-only.
            array = np.frombuffer(view[offset:offset + size], dtype=dtype).astype(
                dtype[1:], copy=True)
            offset += size
            return array

        fields = {name: take("<i8", n_items) for name in _TALLY_NAMES}
        keys = take("<i8", n_pairs)
        fields |= {name: take("<u4", n_pairs) for name in _COUNT_NAMES}
        lo, hi = keys >> 32, keys & _LOW_BITS
        if n_pairs and not (np.all(lo >= 0) and np.all(lo < hi) and np.all(hi <= _MAX_INDEX)
                            and np.all(keys[1:] > keys[:-1])):
            raise ValueError("snapshot pairs are not sorted, distinct lo < hi pairs")
        return cls._assemble(n_items, int(header["votes_applied"]), fields, keys)

    @classmethod
    def _assemble(cls, n_items: int, votes_applied: int, fields: dict[str, np.ndarray],
                  keys: np.ndarray) -> PairCounts:
        counts = cls(0)
        counts.n_items = n_items
        counts.votes_applied = votes_applied
        for name in _TALLY_NAMES:
            arr = fields[name]
            if arr.dtype != np.int64 or arr.shape != (n_items,):
                raise ValueError(f"snapshot field {name} has dtype {arr.dtype} shape {arr.shape}")
            setattr(counts, name, arr)
        counts._keys = keys
        counts._counts = tuple(fields[name].astype(_COUNT_DTYPE, copy=False)
                               for name in _COUNT_NAMES)
        return counts


def snapshot_length(data: bytes | memoryview) -> int:
    """The length of the snapshot (`PairCounts.to_bytes`) that `data` starts with, from its
    header, for data that holds something after it; ValueError when it starts with none."""
    view = memoryview(data).cast("B")
    if len(view) < _RAW_HEADER.itemsize or bytes(view[:4]) != _RAW_MAGIC:
        raise ValueError("not a PairCounts snapshot: no snapshot header")
    header = np.frombuffer(view[:_RAW_HEADER.itemsize], dtype=_RAW_HEADER)[0]
    return _RAW_HEADER.itemsize + 40 * int(header["n_items"]) + 20 * int(header["n_pairs"])


def encoded_votes_length(data: bytes | memoryview) -> int:
    """The length of the `encode_votes` output that `data` starts with, from its header;
    ValueError when it starts with none."""
    view = memoryview(data).cast("B")
    if len(view) < 12 or bytes(view[:4]) != _VOTES_MAGIC:
        raise ValueError("not an encoded vote list")
    return 12 + 9 * int(np.frombuffer(view[4:12], dtype="<i8")[0])


def encode_votes(kinds: np.ndarray, a: np.ndarray, b: np.ndarray) -> bytes:
    """Votes (e.g. a `PairCounts.take_journal`) as bytes: 9 a vote plus 12 of header."""
    n = len(kinds)
    return b"".join((_VOTES_MAGIC, np.array(n, dtype="<i8").tobytes(),
                     np.asarray(kinds, dtype=np.uint8).tobytes(),
                     np.asarray(a, dtype="<i4").tobytes(), np.asarray(b, dtype="<i4").tobytes()))


def decode_votes(data: bytes | memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (kinds, a, b) of `encode_votes`; raises ValueError when `data` is not its output.
    The values themselves are checked by `PairCounts.apply`."""
    view = memoryview(data).cast("B")
    if bytes(view[:4]) != _VOTES_MAGIC or len(view) < 12:
        raise ValueError("not an encoded vote list")
    n = int(np.frombuffer(view[4:12], dtype="<i8")[0])
    if n < 0 or len(view) != 12 + 9 * n:
        raise ValueError("encoded vote list: length does not match its header")
    kinds = np.frombuffer(view[12:12 + n], dtype=np.uint8)
    a = np.frombuffer(view[12 + n:12 + 5 * n], dtype="<i4").astype(np.int64)
    b = np.frombuffer(view[12 + 5 * n:], dtype="<i4").astype(np.int64)
    return kinds, a, b
