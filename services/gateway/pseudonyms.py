"""Voter pseudonyms for exports: HMAC-SHA256 of the voter id under a salt of the cause's own.

A voter keeps one pseudonym throughout a cause (the salt is written once), so an analyst can
still count votes per voter; a pseudonym says nothing about the voter's other causes (each
has its own random salt), and without the salt a voter id cannot be confirmed by hashing
guesses.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

# 32 hex digits (128 bits): no two of a cause's voters share one in practice, at half the
# bytes per row of the full digest.
PSEUDONYM_HEX_DIGITS = 32
# Voters remembered while exporting. Hashing a voter costs ~1.5 µs, and a voter casts
# several votes scattered over the log: with every voter of a 1,000,000-voter cause
# remembered, each is hashed once. Bounded (~100 bytes a voter with 30-byte ids, so ~100 MB
# at most, freed when the export ends); past it the memory starts afresh.
CACHE_MAX = 1_000_000
# SHA-256's block size in bytes: HMAC pads (shorter) keys to it.
_BLOCK = 64
_SPACE = ord(" ")
_EMPTY = np.uint64(2**64 - 1)
# Voter ids are read 8 bytes at a time; the mask keeps the first k bytes of a window.
_WINDOW = 8
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(_WINDOW + 1)], dtype=np.uint64)


class Pseudonyms:
    """The pseudonyms of one cause's voters, given its salt (bytes, at most 64).

    HMAC-SHA256 is computed from its definition, H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m)), with the
    two keyed blocks hashed once here and copied per voter: `hmac.digest` sets up OpenSSL's
    HMAC afresh on every call, which costs three times as much (~5 against ~1.7 µs a voter).
    Voter ids and pseudonyms are UTF-8 bytes, as the vote log holds them.

    A list is looked up in whole arrays (`_VoterTable`), not one voter at a time: a
    dictionary look-up among a million voters costs ~0.5-1 µs a vote (each misses the CPU's
    caches, one after the other, behind the interpreter's steps).
    """

    def __init__(self, salt: bytes, cache_max: int = CACHE_MAX) -> None:
        if len(salt) > _BLOCK:
            raise ValueError(f"a salt of at most {_BLOCK} bytes, got {len(salt)}")
        key = salt.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))
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
            new = list(dict.fromkeys([voter_ids[start:end] for start, end in zip(
                starts[missing].tolist(), ends[missing].tolist(), strict=True)]))
            if table.size + len(new) > self._cache_max:
                table.clear()  # the pseudonyms found above are copies, and stay
            table.add(new, [self._hash(voter_id) for voter_id in new])
            pseudonyms[missing] = table.find(text, starts[missing], ends[missing])[1]
        out = np.empty((len(ends), PSEUDONYM_HEX_DIGITS + 1), dtype=np.uint8)
        out[:, :PSEUDONYM_HEX_DIGITS] = pseudonyms
        out[:, PSEUDONYM_HEX_DIGITS] = _SPACE
        return out.tobytes()[:-1]

    def _hash(self, voter_id: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(voter_id)
        outer = self._outer.copy()
        outer.update(inner.digest())
        self.hashed += 1
        return outer.hexdigest()[:PSEUDONYM_HEX_DIGITS].encode()


class _VoterTable:
    """Voter ids and their pseudonyms in arrays, found by a 64-bit fingerprint of the id in
    an open-addressing hash table (linear probing, at most half full), every step a numpy
    call over all the ids looked up at once.

    A fingerprint only points at a candidate: the candidate's bytes (kept as the 8-byte
    windows `_windows` reads) are compared with the id's, so two ids that share a
    fingerprint (by chance or made so) never share a pseudonym; the second of them is kept
    in a dictionary (`_others`) instead.
    """

    def __init__(self) -> None:
        # Per-window keys of the fingerprint, random per process: which ids collide cannot
        # be planned (and a collision costs only a dictionary look-up).
        self._keys = np.frombuffer(os.urandom(8 * 64), dtype=np.uint64).copy()
        self.clear()

    def clear(self) -> None:
        self.size = 0
        self._pseudonyms = np.zeros((1 << 12, PSEUDONYM_HEX_DIGITS), dtype=np.uint8)
        self._fingerprints = np.zeros(1 << 12, dtype=np.uint64)
        self._lengths = np.zeros(1 << 12, dtype=np.int64)
        # Row r's windows are _window_values[_first_windows[r]:_first_windows[r + 1]].
        self._first_windows = np.zeros(1 << 12, dtype=np.int64)
        self._window_values = np.zeros(1 << 13, dtype=np.uint64)
        self._slot_bits = 13
        # Slot s holds (fingerprint, row), row _EMPTY when free: one cache line a probe.
        self._slots = np.full((1 << self._slot_bits, 2), _EMPTY, dtype=np.uint64)
        self._others: dict[bytes, bytes] = {}

    def find(self, text: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray]:
        """For the ids text[starts[i]:ends[i]]: whether each is here, and the pseudonyms
        (n × 32 hex digits, a copy; rows of ids not here are of no use)."""
        windows = _windows(text, starts, ends)
        fingerprints = self._fingerprint(windows, ends - starts)
        rows = self._probe(fingerprints)
        found = rows >= 0
        collided = np.flatnonzero(found & ~self._same(windows, ends - starts, rows))
        found[collided] = False
        pseudonyms = self._pseudonyms[np.maximum(rows, 0)]
        # An id in `_others` shares its fingerprint with an id of the table.
        for position in collided.tolist() if self._others else ():
            pseudonym = self._others.get(text[starts[position]:ends[position]].tobytes())
            if pseudonym is not None:
                found[position] = True
                pseudonyms[position] = np.frombuffer(pseudonym, dtype=np.uint8)
        return found, pseudonyms

    def add(self, voter_ids: list[bytes], pseudonyms: list[bytes]) -> None:
        """Remember the pseudonyms of voter ids not here yet (distinct)."""
        if not voter_ids:
            return
        text, starts, ends = _split(b" ".join(voter_ids))
        values, word_of_window, first_window = windows = _windows(text, starts, ends)
        fingerprints = self._fingerprint(windows, ends - starts)
        # An id whose fingerprint another has (here already, or earlier in this list) goes
        # to the dictionary.
        _, first = np.unique(fingerprints, return_index=True)
        fresh = np.zeros(len(voter_ids), dtype=bool)
        fresh[first] = True
        fresh &= self._probe(fingerprints) < 0
        for position in np.flatnonzero(~fresh).tolist():
            self._others[voter_ids[position]] = pseudonyms[position]
        kept = np.flatnonzero(fresh)
        n_new = len(kept)
        if not n_new:
            return
        kept_windows = values[fresh[word_of_window]]
        counts = np.diff(np.append(first_window, len(values)))[kept]
        self._reserve(n_new, len(kept_windows))
        rows = np.arange(self.size, self.size + n_new)
        self._pseudonyms[rows] = np.frombuffer(
            b"".join([pseudonyms[k] for k in kept.tolist()]),
            dtype=np.uint8).reshape(n_new, PSEUDONYM_HEX_DIGITS)
        self._fingerprints[rows] = fingerprints[kept]
        self._lengths[rows] = (ends - starts)[kept]
        used = self._first_windows[self.size]
        self._window_values[used:used + len(kept_windows)] = kept_windows
        self._first_windows[self.size + 1:self.size + n_new + 1] = used + np.cumsum(counts)
        self.size += n_new
        if 2 * self.size > len(self._slots):
            while 2 * self.size > 1 << self._slot_bits:
                self._slot_bits += 1
            self._slots = np.full((1 << self._slot_bits, 2), _EMPTY, dtype=np.uint64)
            self._insert(self._fingerprints[:self.size], np.arange(self.size))
        else:
            self._insert(fingerprints[kept], rows)

    def _reserve(self, rows: int, windows: int) -> None:
        """Room for `rows` more voters holding `windows` more windows (capacities doubled
        as needed)."""
        while self.size + rows + 1 > len(self._pseudonyms):
            self._pseudonyms = _doubled(self._pseudonyms)
            self._fingerprints = _doubled(self._fingerprints)
            self._lengths = _doubled(self._lengths)
            self._first_windows = _doubled(self._first_windows)
        while self._first_windows[self.size] + windows > len(self._window_values):
            self._window_values = _doubled(self._window_values)

    def _probe(self, fingerprints: np.ndarray) -> np.ndarray:
        """The row whose fingerprint each of `fingerprints` is, -1 where none is."""
        mask = (1 << self._slot_bits) - 1
        slots = (fingerprints >> np.uint64(64 - self._slot_bits)).astype(np.int64)
        rows = np.full(len(fingerprints), -1, dtype=np.int64)
        active = np.arange(len(fingerprints))
        while len(active):
            at = slots[active]
            held = self._slots[at]
            taken = held[:, 1] != _EMPTY
            same = taken & (held[:, 0] == fingerprints[active])
            rows[active[same]] = held[same, 1].astype(np.int64)
            going_on = taken & ~same
            active = active[going_on]
            slots[active] = (at[going_on] + 1) & mask
        return rows

    def _insert(self, fingerprints: np.ndarray, rows: np.ndarray) -> None:
        """Put rows (distinct fingerprints, none in the table) into their slots."""
        mask = (1 << self._slot_bits) - 1
        slots = (fingerprints >> np.uint64(64 - self._slot_bits)).astype(np.int64)
        pending = np.arange(len(fingerprints))
        while len(pending):
            at = slots[pending]
            free = self._slots[at, 1] == _EMPTY
            # One row per free slot this round; the others probe on.
            free_slots, first = np.unique(at[free], return_index=True)
            placed = pending[free][first]
            self._slots[free_slots, 0] = fingerprints[placed]
            self._slots[free_slots, 1] = rows[placed]
            done = np.zeros(len(fingerprints), dtype=bool)
            done[placed] = True
            pending = pending[~done[pending]]
            slots[pending] = (slots[pending] + 1) & mask

    def _fingerprint(self, windows: tuple[np.ndarray, np.ndarray, np.ndarray],
                     lengths: np.ndarray) -> np.ndarray:
        """A 64-bit fingerprint of each id from its windows (`_windows`): each window mixed
        with a key of its position, summed, mixed with the length."""
        values, word_of_window, first_window = windows
        position = np.arange(len(values)) - first_window[word_of_window]
        mixed = _mix(values ^ self._keys[position % len(self._keys)])
        with np.errstate(over="ignore"):
            sums = np.add.reduceat(mixed, first_window) if len(mixed) else mixed
            return _mix(sums + lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))

    def _same(self, windows: tuple[np.ndarray, np.ndarray, np.ndarray], lengths: np.ndarray,
              rows: np.ndarray) -> np.ndarray:
        """Whether each id (its windows, `_windows`, and length) is the one of row rows[i],
        byte for byte (False where the row is -1)."""
        values, word_of_window, first_window = windows
        at = np.maximum(rows, 0)
        same_length = (rows >= 0) & (self._lengths[at] == lengths)
        position = np.arange(len(values)) - first_window[word_of_window]
        # Ids of another length compare windows past their row's (any bytes): they differ.
        known = self._window_values[np.minimum(
            self._first_windows[at][word_of_window] + position, len(self._window_values) - 1)]
        differing = np.add.reduceat((values != known).astype(np.int64), first_window) \
            if len(values) else np.zeros(len(lengths), np.int64)
        return same_length & (differing == 0)


def _split(voter_ids: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bytes of space-separated ids, then a space, and where each id starts and ends."""
    text = np.frombuffer(voter_ids + b" ", dtype=np.uint8)
    ends = np.flatnonzero(text == _SPACE)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    return text, starts, ends


def _windows(text: np.ndarray, starts: np.ndarray, ends: np.ndarray,
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 8-byte windows of each id text[starts[i]:ends[i]] as little-endian integers
    (bytes past the id's end masked to 0; an empty id has one window, 0), the id of each
    window, and the first window of each id. `text` must hold 7 bytes past the last end,
    or the ids' last window is read short."""
    lengths = ends - starts
    counts = np.maximum((lengths + _WINDOW - 1) // _WINDOW, 1)
    first_window = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=first_window[1:])
    word_of_window = np.repeat(np.arange(len(counts)), counts)
    offset = (np.arange(int(counts.sum())) - first_window[word_of_window]) * _WINDOW
    window_starts = starts[word_of_window] + offset
    padded = text if len(text) >= _WINDOW else np.concatenate(
        [text, np.zeros(_WINDOW, np.uint8)])
    limit = len(padded) - _WINDOW
    # Every byte offset viewed as the start of a little-endian 8-byte integer (unaligned).
    as_integers = np.ndarray((limit + 1,), dtype="<u8", buffer=padded, strides=(1,))
    values = as_integers[np.minimum(window_starts, limit)]
    short = window_starts > limit
    if short.any():  # the last window of the text's last id: shifted into place
        shift = ((window_starts[short] - limit) * 8).astype(np.uint64)
        values[short] = values[short] >> shift
    keep = np.clip(lengths[word_of_window] - offset, 0, _WINDOW)
    return values.astype(np.uint64) & _MASKS[keep], word_of_window, first_window


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves about half the output bits."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return values ^ (values >> np.uint64(31))


def _doubled(array: np.ndarray) -> np.ndarray:
    grown = np.zeros((2 * len(array), *array.shape[1:]), dtype=array.dtype)
    grown[:len(array)] = array
    return grown
