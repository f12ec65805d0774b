"""The naive baseline bulk mode is compared with: one XADD per vote, pipelined from
redis-py, into a private embedded server of the same kind as the cluster's (Valkey, AOF
on), never the cluster's own Redis. Nothing is checked, de-duplicated or counted."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

from loadtest.population import Population
from pairwise.embedded_redis import EmbeddedRedis


@dataclass(frozen=True)
class Baseline:
    votes: int
    seconds: float
    pipeline: int

    @property
    def votes_per_s(self) -> float:
        return self.votes / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "votes_per_s": self.votes_per_s,
                "method": "redis-py pipeline, one XADD per vote (fields k a b v u q), "
                          "private embedded Valkey with AOF everysec"}


def measure(population: Population, n_votes: int, pipeline: int, *, max_seconds: float = 30.0,
            seed: int = 0) -> Baseline:
    """XADD `n_votes` decided votes in pipelines of `pipeline` (stopping early after
    `max_seconds`); the clock covers building each vote's fields and the round trips."""
    rng = np.random.default_rng(seed)
    accepted = np.arange(population.n_seed, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="pairwise-baseline-") as folder:
        server = EmbeddedRedis(Path(folder)).start()
        client = redis.Redis.from_url(server.url)
        try:
            sent = 0
            started = time.perf_counter()
            while sent < n_votes and time.perf_counter() - started < max_seconds:
                votes = population.decided_votes(min(pipeline, n_votes - sent), accepted,
                                                 population.n_voters, rng)
                pipe = client.pipeline(transaction=False)
                for winner, loser, tie, voter in zip(
                        votes.winners.tolist(), votes.losers.tolist(), votes.ties.tolist(),
                        votes.voters.tolist(), strict=True):
                    pipe.xadd("votes:{baseline}", {
                        "k": "t" if tie else "w", "a": winner, "b": loser,
                        "v": f"b{sent}", "u": f"v{voter}", "q": "1"})
                    sent += 1
                pipe.execute()
            seconds = time.perf_counter() - started
        finally:
            client.close()
            server.stop()
    return Baseline(sent, seconds, pipeline)
