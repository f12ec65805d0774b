"""Voter pseudonyms for exports: HMAC-SHA256 of the voter id under a salt of the cause's own.

A voter keeps one pseudonym throughout a cause (the salt is written once), so an analyst can
still count votes per voter; a pseudonym says nothing about the voter's other causes (each
has its own random salt), and without the salt a voter id cannot be confirmed by hashing
guesses.
"""

from __future__ import annotations

import os

import numpy as np

try:
    # CPython's own SHA-256 (the one hashlib falls back on without OpenSSL): copying and
    # finishing its state costs less than OpenSSL's EVP contexts do for a one-block
    # message, ~1.4 against ~1.9 µs a voter here. Any SHA-256 gives the same pseudonyms.
    from _sha256 import sha256 as _sha256  # Python 3.11
except ImportError:  # pragma: no cover - other Pythons
    try:
        from _sha2 import sha256 as _sha256  # Python 3.12 on
    except ImportError:
        from hashlib import sha256 as _sha256

# 32 hex digits (128 bits): no two of a cause's voters share one in practice, at half the
# bytes per row of the full digest.
PSEUDONYM_HEX_DIGITS = 32
# Voters remembered while exporting. Hashing a voter costs ~1.4 µs, and a voter casts
# several votes scattered over the log: with every voter of a 1,000,000-voter cause
# remembered, each is hashed once. Bounded (a row of 8 bytes per 8 bytes of id plus 40, and
# a slot and a fingerprint of 8 bytes each; rows and slots held at twice the voters at most:
# ~85 MB for 12-byte ids, ~135 MB for ids of 64 bytes, freed when the export ends); past it
# the memory starts afresh.
CACHE_MAX = 1_000_000
# SHA-256's block size in bytes: HMAC pads (shorter) keys to it.
_BLOCK = 64
_DIGEST_BYTES = 32
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_SPACE = ord(" ")
# Voter ids are read 8 bytes at a time; the mask keeps the first k bytes of a window.
_WINDOW = 8
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(_WINDOW + 1)], dtype=np.uint64)
# Windows an id of the table's rows may have (64 bytes); longer ids go to a dictionary.
_MAX_WINDOWS = 8
_PSEUDONYM_WORDS = PSEUDONYM_HEX_DIGITS // _WINDOW
_EMPTY = np.uint64(2**64 - 1)
_TAG = np.uint64(2**32 - 1)
_PSEUDONYM_ITEM = np.dtype(f"V{PSEUDONYM_HEX_DIGITS}")


class Pseudonyms:
    """The pseudonyms of one cause's voters, given its salt (bytes, at most 64).

    HMAC-SHA256 is computed from its definition, H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)), with the
    two keyed blocks hashed once here and copied per voter: `hmac.digest` sets up OpenSSL's
    HMAC afresh on every call, which costs nearly three times as much (~3.9 against ~1.4 µs
    a voter). Voter ids and pseudonyms are UTF-8 bytes, as the vote log holds them.

    A list is looked up in whole arrays (`_VoterTable`), not one voter at a time: among a
    million voters a dictionary look-up costs ~1.6-2.2 µs a vote even driven by `map` (each
    misses the CPU's caches, one after the other), the table ~0.5 µs (loaded cores).
    """

    def __init__(self, salt: bytes, cache_max: int = CACHE_MAX) -> None:
        if len(salt) > _BLOCK:
            raise ValueError(f"a salt of at most {_BLOCK} bytes, got {len(salt)}")
        key = salt.ljust(_BLOCK, b"\0")
        self._inner = _sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = _sha256(bytes(byte ^ 0x5C for byte in key))
        self._cache_max = cache_max
        self._table = _VoterTable()
        self.hashed = 0

    def of(self, voter_id: str) -> str:
        """The pseudonym of `voter_id`."""
        return self.of_list(voter_id.encode()).decode()

    def of_list(self, voter_ids: bytes) -> bytes:
        """The pseudonyms of space-separated voter ids, space-separated in the same order.

        Each voter not remembered is hashed once, however many of its votes the list holds.
        A call costs some tens of microseconds whatever its length: pass long lists.
        """
        text, starts, ends = _split(voter_ids)
        table = self._table
        found, pseudonyms = table.find(text, starts, ends)
        missing = np.flatnonzero(~found)
        if len(missing):
            missing_ids = list(map(voter_ids.__getitem__, map(
                slice, starts[missing].tolist(), ends[missing].tolist())))
            new = list(dict.fromkeys(missing_ids))
            hashed = self._hash_all(new)
            row_of = dict(zip(new, range(len(new)), strict=True))
            rows = np.fromiter(map(row_of.__getitem__, missing_ids), dtype=np.intp,
                               count=len(missing_ids))
            _as_items(pseudonyms)[missing] = _as_items(hashed)[rows]
            if table.size + len(new) > self._cache_max:
                table.clear()
            table.add(new, hashed)
        out = np.empty((len(ends), PSEUDONYM_HEX_DIGITS + 1), dtype=np.uint8)
        out[:, :PSEUDONYM_HEX_DIGITS] = pseudonyms
        out[:, PSEUDONYM_HEX_DIGITS] = _SPACE
        return out.tobytes()[:-1]

    def _hash_all(self, voter_ids: list[bytes]) -> np.ndarray:
        """The pseudonyms of `voter_ids` (n × 32 hex digits, ASCII)."""
        inner, outer = self._inner.copy, self._outer.copy
        digests: list[bytes] = []
        digested = digests.append
        for voter_id in voter_ids:
            hashing = inner()
            hashing.update(voter_id)
            keyed = outer()
            keyed.update(hashing.digest())
            digested(keyed.digest())
        n = len(voter_ids)
        kept = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(
            n, _DIGEST_BYTES)[:, :PSEUDONYM_HEX_DIGITS // 2]
        hexed = np.empty((n, PSEUDONYM_HEX_DIGITS), dtype=np.uint8)
        hexed[:, 0::2] = _HEX_DIGITS[kept >> 4]
        hexed[:, 1::2] = _HEX_DIGITS[kept & 15]
        self.hashed += n
        return hexed


class _VoterTable:
    """Voter ids and their pseudonyms in arrays, found by a 64-bit fingerprint of the id in
    an open-addressing hash table (linear probing, at most half full), every step a numpy
    call over all the ids looked up at once.

    Each voter is one row of `_records` (uint64): its length, its bytes as `_width` 8-byte
    windows (zero past its end), its pseudonym (32 hex digits as 4 words), so that finding a
    voter reads one slot and one row. A slot holds a row and 32 bits of its fingerprint; a
    candidate row is then compared byte for byte, and the probe goes on past a row that
    only shares bits of the fingerprint, so two ids never share a pseudonym. Ids longer than
    `_MAX_WINDOWS` windows (rare: they would widen every row) are kept in a dictionary.
    """

    def __init__(self) -> None:
        # The fingerprint's multipliers (odd), random per process: which ids collide cannot
        # be planned (and a collision costs only a longer probe).
        self._multipliers = np.frombuffer(os.urandom(8 * (_MAX_WINDOWS + 1)),
                                          dtype=np.uint64) | np.uint64(1)
        self.clear()

    def clear(self) -> None:
        self.size = 0
        self._width = 1
        self._records = np.zeros((1 << 12, 1 + self._width + _PSEUDONYM_WORDS), np.uint64)
        self._fingerprints = np.zeros(1 << 12, dtype=np.uint64)  # to rebuild the slots
        self._slot_bits = 13
        # Slot s holds row << 32 | the fingerprint's low 32 bits, _EMPTY when free.
        self._slots = np.full(1 << self._slot_bits, _EMPTY, dtype=np.uint64)
        self._long: dict[bytes, bytes] = {}

    def find(self, text: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray]:
        """For the ids text[starts[i]:ends[i]] (`_split`'s): whether each is here, and the
        pseudonyms (n × 32 hex digits; rows of ids not here are zeros).

        Rows are read with `np.take` and pseudonyms moved as 32-byte items: indexing a 2-D
        array with an index array costs four times as much per row (~220 against ~50 ns)."""
        n = len(starts)
        lengths = ends - starts
        found = np.zeros(n, dtype=bool)
        pseudonyms = np.zeros((n, _PSEUDONYM_WORDS), dtype=np.uint64)
        longest = int(lengths.max()) if n else 0
        width = min(max(-(-longest // _WINDOW), 1), self._width)
        # Ids longer than every row's windows are not in the arrays.
        fits = lengths <= _WINDOW * width
        active = np.arange(n) if longest <= _WINDOW * width else np.flatnonzero(fits)
        values = _window_matrix(text, starts[active], lengths[active], width)
        fingerprints = self._fingerprint(values, lengths[active])
        active_lengths = lengths[active].astype(np.uint64)
        tags = fingerprints & _TAG
        mask = (1 << self._slot_bits) - 1
        slots = (fingerprints >> np.uint64(64 - self._slot_bits)).astype(np.intp)
        as_items = _as_items(pseudonyms)
        pending = np.arange(len(active))  # positions in `active`
        while len(pending):
            held = self._slots[slots[pending]]
            candidate = np.flatnonzero(((held & _TAG) == tags[pending]) & (held != _EMPTY))
            at = pending[candidate]
            record = np.take(self._records, (held[candidate] >> np.uint64(32)).astype(np.intp),
                             axis=0)
            differs = record[:, 0] ^ active_lengths[at]
            for window in range(width):
                differs |= record[:, 1 + window] ^ values[at, window]
            same = differs == 0
            hit = active[at[same]]
            found[hit] = True
            as_items[hit] = record[:, -_PSEUDONYM_WORDS:].view(_PSEUDONYM_ITEM)[same, 0]
            going_on = held != _EMPTY
            going_on[candidate[same]] = False
            pending = pending[going_on]
            slots[pending] = (slots[pending] + 1) & mask
        if self._long and not fits.all():
            for position in np.flatnonzero(~fits).tolist():
                pseudonym = self._long.get(text[starts[position]:ends[position]].tobytes())
                if pseudonym is not None:
                    found[position] = True
                    pseudonyms[position] = np.frombuffer(pseudonym, dtype=np.uint64)
        return found, pseudonyms.view(np.uint8)

    def add(self, voter_ids: list[bytes], pseudonyms: np.ndarray) -> None:
        """Remember the pseudonyms (n × 32 hex digits) of voter ids not here yet (distinct)."""
        if not voter_ids:
            return
        text, starts, ends = _split(b" ".join(voter_ids))
        lengths = ends - starts
        words = np.ascontiguousarray(pseudonyms).view(np.uint64)
        long = lengths > _WINDOW * _MAX_WINDOWS
        for position in np.flatnonzero(long).tolist():
            self._long[voter_ids[position]] = words[position].tobytes()
        kept = np.flatnonzero(~long)
        n_new = len(kept)
        if not n_new:
            return
        width = max(-(-int(lengths[kept].max()) // _WINDOW), 1)
        if width > self._width:
            self._widen(width)
        values = _window_matrix(text, starts[kept], lengths[kept], self._width)
        fingerprints = self._fingerprint(values, lengths[kept])
        while self.size + n_new > len(self._records):
            self._records = _doubled(self._records)
            self._fingerprints = _doubled(self._fingerprints)
        rows = slice(self.size, self.size + n_new)
        self._records[rows, 0] = lengths[kept]
        self._records[rows, 1:1 + self._width] = values
        self._records[rows, 1 + self._width:] = words[kept]
        self._fingerprints[rows] = fingerprints
        self.size += n_new
        if 2 * self.size > len(self._slots):
            while 2 * self.size > 1 << self._slot_bits:
                self._slot_bits += 1
            self._slots = np.full(1 << self._slot_bits, _EMPTY, dtype=np.uint64)
            self._insert(self._fingerprints[:self.size], np.arange(self.size))
        else:
            self._insert(fingerprints, np.arange(rows.start, rows.stop))

    def _widen(self, width: int) -> None:
        """Rows of `width` windows (more than now) for a longer id."""
        records = np.zeros((len(self._records), 1 + width + _PSEUDONYM_WORDS), np.uint64)
        records[:, :1 + self._width] = self._records[:, :1 + self._width]
        records[:, -_PSEUDONYM_WORDS:] = self._records[:, -_PSEUDONYM_WORDS:]
        self._records, self._width = records, width

    def _insert(self, fingerprints: np.ndarray, rows: np.ndarray) -> None:
        """Put rows (their fingerprints; none of their ids in the table) into free slots."""
        mask = (1 << self._slot_bits) - 1
        slots = (fingerprints >> np.uint64(64 - self._slot_bits)).astype(np.intp)
        packed = (rows.astype(np.uint64) << np.uint64(32)) | (fingerprints & _TAG)
        pending = np.arange(len(fingerprints))
        while len(pending):
            at = slots[pending]
            free = self._slots[at] == _EMPTY
            # Rows wanting the same free slot: one of them is written last and keeps it
            # (read back), the others probe on.
            self._slots[at[free]] = packed[pending[free]]
            placed = free & (self._slots[at] == packed[pending])
            pending = pending[~placed]
            slots[pending] = (slots[pending] + 1) & mask

    def _fingerprint(self, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """A 64-bit fingerprint of each id from its windows (n × w, `_window_matrix`) and
        length: the windows times their multipliers, summed (a zero window adds nothing, so
        any w at least the id's own gives the same), then mixed so that every bit counts in
        the top bits that pick the slot."""
        with np.errstate(over="ignore"):
            # Column by column: numpy sums along a short axis slowly.
            mixed = lengths.astype(np.uint64) * self._multipliers[0]
            for window in range(values.shape[1]):
                mixed += values[:, window] * self._multipliers[1 + window]
            mixed ^= mixed >> np.uint64(29)
            mixed *= np.uint64(0xBF58476D1CE4E5B9)
            mixed ^= mixed >> np.uint64(32)
            return mixed


def _split(voter_ids: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bytes of space-separated ids, then a space and 8 zero bytes (so that every id's
    last window can be read whole), and where each id starts and ends."""
    text = np.frombuffer(voter_ids + b" " + bytes(_WINDOW), dtype=np.uint8)
    ends = np.flatnonzero(text == _SPACE)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    return text, starts, ends


def _window_matrix(text: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                   width: int) -> np.ndarray:
    """The ids text[starts[i]:starts[i] + lengths[i]] as n × `width` little-endian 8-byte
    windows, bytes past an id's end zeroed (`text` as `_split` makes it)."""
    limit = len(text) - _WINDOW
    # Every byte offset viewed as the start of a little-endian 8-byte integer (unaligned).
    as_integers = np.ndarray((limit + 1,), dtype="<u8", buffer=text, strides=(1,))
    offsets = np.arange(0, _WINDOW * width, _WINDOW)
    values: np.ndarray = as_integers[np.minimum(starts[:, None] + offsets, limit)]
    values &= _MASKS[np.clip(lengths[:, None] - offsets, 0, _WINDOW)]
    return values


def _as_items(pseudonyms: np.ndarray) -> np.ndarray:
    """Pseudonyms (n rows of 32 bytes, contiguous) as n items of 32 bytes: a row moved as one
    item, where indexing rows of a 2-D array copies them byte by byte."""
    return pseudonyms.view(_PSEUDONYM_ITEM)[:, 0]


def _doubled(array: np.ndarray) -> np.ndarray:
    grown = np.zeros((2 * len(array), *array.shape[1:]), dtype=array.dtype)
    grown[:len(array)] = array
    return grown
