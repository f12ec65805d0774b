"""What pair selection needs of a cause's latest fit, as the ranker publishes it to gateways.

The ranker writes one summary per fit (`keys.selection_summary`: `version`, `data`); a
gateway keeps a decoded copy per cause and rebuilds its adaptive selection structures when
the version moves (the NextPair script returns it with every pair, so noticing costs no
extra round trip).

`data` is b"PWS1", the item count n (<u4), then four little-endian arrays of n values each:
proposal indices (<i4) in ability order, highest first; abilities (<f4); standard errors
(<f4); counted votes (<i4: comparisons, ties included, skips not). Single precision is
plenty for choosing pairs and halves what every gateway downloads per fit (34,000
proposals: 544 KB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MAGIC = b"PWS1"
_COLUMNS = (("items", "<i4"), ("abilities", "<f4"), ("std_errors", "<f4"), ("votes", "<i4"))


@dataclass(frozen=True)
class FitSummary:
    """One fit of one cause, in ability order (highest first); `version` orders summaries."""

    version: int
    items: np.ndarray
    abilities: np.ndarray
    std_errors: np.ndarray
    votes: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.items)
        if not len(self.abilities) == len(self.std_errors) == len(self.votes) == n:
            raise ValueError("items, abilities, std_errors and votes must have one length")

    @property
    def n_items(self) -> int:
        return len(self.items)


def encode(items: np.ndarray, abilities: np.ndarray, std_errors: np.ndarray,
           votes: np.ndarray) -> bytes:
    """The `data` of a summary (see the module docstring); arrays in ability order."""
    n = len(items)
    columns = (items, abilities, std_errors, votes)
    if any(len(column) != n for column in columns):
        raise ValueError("items, abilities, std_errors and votes must have one length")
    return b"".join([_MAGIC, np.array(n, dtype="<u4").tobytes()] + [
        np.ascontiguousarray(column, dtype=dtype).tobytes()
        for column, (_, dtype) in zip(columns, _COLUMNS, strict=True)])


def decode(version: int, data: bytes) -> FitSummary:
    """The summary `data` holds (ValueError when it is not one)."""
    view = memoryview(data)
    if bytes(view[:4]) != _MAGIC or len(view) < 8:
        raise ValueError("not a selection summary")
    n = int(np.frombuffer(view[4:8], dtype="<u4")[0])
    if len(view) != 8 + 16 * n:
        raise ValueError(f"selection summary of {n} items has {len(view)} bytes")
    out = {}
    offset = 8
    for name, dtype in _COLUMNS:
        out[name] = np.frombuffer(view[offset:offset + 4 * n], dtype=dtype).astype(
            np.int64 if dtype == "<i4" else np.float64)
        offset += 4 * n
    return FitSummary(version=version, **out)
