"""Ingest configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from pairwise.config import env_int, env_str


@dataclass(frozen=True)
class Settings:
    redis_url: str
    token_secret: bytes
    host: str = "127.0.0.1"
    port: int = 50052
    # Largest RecordVotes batch accepted (votes); larger ones get INVALID_ARGUMENT.
    max_batch: int = 10_000

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            redis_url=env_str("REDIS_URL"),
            token_secret=env_str("PAIRWISE_TOKEN_SECRET").encode(),
            host=env_str("INGEST_HOST", "127.0.0.1"),
            port=env_int("INGEST_PORT", 50052),
            max_batch=env_int("INGEST_MAX_BATCH", 10_000),
        )
