"""Ranker configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from pairwise.config import env_float, env_int, env_str


@dataclass(frozen=True)
class Settings:
    redis_url: str
    host: str = "127.0.0.1"
    port: int = 50053
    # This replica owns the causes with shard_of(cause_id, shard_count) == shard_index.
    shard_index: int = 0
    shard_count: int = 1
    # Stable consumer name: after a restart the replica re-reads its own pending entries.
    consumer_name: str = "ranker-0"
    # Refit a cause at most this often, and only when new votes arrived.
    fit_interval_s: float = 0.5
    # Snapshot counts + last applied entry, and XACK, at most this often.
    checkpoint_interval_s: float = 2.0
    # How often to look for new causes.
    discover_interval_s: float = 1.0
    # Entries read per XREADGROUP.
    read_batch: int = 10_000

    @classmethod
    def from_env(cls) -> Settings:
        shard_index = env_int("RANKER_SHARD", 0)
        return cls(
            redis_url=env_str("REDIS_URL"),
            host=env_str("RANKER_HOST", "127.0.0.1"),
            port=env_int("RANKER_PORT", 50053),
            shard_index=shard_index,
            shard_count=env_int("RANKER_SHARDS", 1),
            consumer_name=env_str("RANKER_CONSUMER", f"ranker-{shard_index}"),
            fit_interval_s=env_float("RANKER_FIT_INTERVAL_S", 0.5),
            checkpoint_interval_s=env_float("RANKER_CHECKPOINT_INTERVAL_S", 2.0),
            discover_interval_s=env_float("RANKER_DISCOVER_INTERVAL_S", 1.0),
            read_batch=env_int("RANKER_READ_BATCH", 10_000),
        )
