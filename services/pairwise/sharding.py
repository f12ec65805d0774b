"""Which ranker replica owns a cause: a stable hash of the cause id modulo the replica count."""

from __future__ import annotations

import zlib


def shard_of(cause_id: str, n_shards: int) -> int:
    """Index in [0, n_shards) of the ranker replica that consumes and serves `cause_id`."""
    if n_shards < 1:
        raise ValueError("n_shards must be >= 1")
    return zlib.crc32(cause_id.encode()) % n_shards
