"""After each fit, tell pair selection what the fit learned (Redis adapter).

Two writes per published ranking:
- the fit summary (pairwise.selection_summary) that gateways build their adaptive selection
  structures from, under a version that moves with every write;
- the newcomer pool (`keys.newcomers`) brought in line with the votes counted: members that
  reached the cause's `newcomer_votes` leave it; the others' scores are reset to their
  counted votes, dropping the times they were shown since the previous fit without an answer
  (a skipped or abandoned prompt must not leave a proposal short of votes for ever).
  Accepted proposals missing from the pool under the threshold join it, so a cause created
  before the pool existed gets one on its first fit. Proposals accepted after the fit's
  catalog read are left as they are; rejected ones are never added back.

Writes are best effort: the previous summary stays in force when one fails, and a later fit
writes again. Only the latest ranking is written when fits come faster than the writes.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
from redis.asyncio import Redis

from pairwise import keys, selection_summary
from pairwise.redis_scripts import Script, ScriptRunner
from ranker.cause_tasks import CauseTasks
from ranker.ranking import Ranking

logger = logging.getLogger(__name__)

DEFAULT_NEWCOMER_VOTES = 10
# Pool members reset or removed per script call: each call holds Redis for ~2-4 ms on a
# slow core, so that NextPair and ranking reads are not held up behind a 34,000-item pool.
POOL_CHUNK = 500

# KEYS: accepted, newcomers.  ARGV: k, then k indices to remove, then (index, votes) pairs
# to set for the accepted ones among them.
_RECONCILE_POOL = Script("""
local removed = tonumber(ARGV[1])
for i = 2, removed + 1, 500 do
  redis.call('ZREM', KEYS[2], unpack(ARGV, i, math.min(i + 499, removed + 1)))
end
for i = removed + 2, #ARGV, 2 do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[i + 1], ARGV[i])
  end
end
return 0
""")


class SelectionPublisher:
    """Writes one cause's fit summary and newcomer pool after each fit (`offer`)."""

    def __init__(self, client: Redis, cause_id: str, scripts: ScriptRunner,
                 tasks: CauseTasks) -> None:
        self.cause_id = cause_id
        self._redis = client
        self._scripts = scripts
        self._tasks = tasks
        self._latest: Ranking | None = None
        self._writing = False
        # Counted votes by proposal index at the previous write (-1: not in it), or None
        # before the first: what the next write need not send again.
        self._votes: np.ndarray | None = None

    def offer(self, ranking: Ranking) -> None:
        """Write `ranking` soon, unless a newer one is offered first."""
        self._latest = ranking
        if not self._writing:
            self._writing = True
            self._tasks.spawn(self._drain(), "selection")

    async def _drain(self) -> None:
        try:
            while self._latest is not None:
                ranking, self._latest = self._latest, None
                try:
                    await self.write(ranking)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("selection summary not written; the previous one stays",
                                   extra={"cause_id": self.cause_id, "error": repr(exc)})
        finally:
            self._writing = False

    async def write(self, ranking: Ranking) -> None:
        """Write the summary of `ranking` and reconcile the newcomer pool with its votes.

        Only what can have changed is sent: proposals whose counted votes moved since the
        previous write (all of them on the first), and members whose estimate reached the
        threshold while their counted votes did not (shown without an answer).
        """
        items = np.asarray(ranking.proposal_index)
        votes = (np.asarray(ranking.wins) + np.asarray(ranking.losses)
                 + np.asarray(ranking.ties))
        data = selection_summary.encode(items, ranking.abilities, ranking.std_errors, votes)
        summary_key = keys.selection_summary(self.cause_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(summary_key, "data", data)
            pipe.hincrby(summary_key, "version", 1)
            pipe.hget(keys.cause(self.cause_id), "newcomer_votes")
            _, _, threshold = await pipe.execute()
        threshold = int(threshold or DEFAULT_NEWCOMER_VOTES)
        members = await self._redis.zrangebyscore(keys.newcomers(self.cause_id), threshold,
                                                  "+inf")
        capped = np.array([int(m) for m in members if isinstance(m, bytes | str)],
                          dtype=np.int64)

        previous = np.full(len(items), -1, dtype=np.int64)
        if self._votes is not None and len(items):
            known = items < len(self._votes)
            previous[known] = self._votes[items[known]]
        under = votes < threshold
        crossed = ~under & (previous < threshold)
        reset = under & ((previous != votes) | np.isin(items, capped))
        await self._reconcile(items[crossed], items[reset], votes[reset])
        dense = np.full(int(items.max()) + 1 if len(items) else 0, -1, dtype=np.int64)
        dense[items] = votes
        self._votes = dense

    async def _reconcile(self, removed: np.ndarray, members: np.ndarray,
                         votes: np.ndarray) -> None:
        pool_keys = (keys.accepted(self.cause_id), keys.newcomers(self.cause_id))
        for start in range(0, len(removed), POOL_CHUNK):
            chunk = removed[start:start + POOL_CHUNK].tolist()
            await self._scripts.run_now(_RECONCILE_POOL, pool_keys, [len(chunk), *chunk])
        for start in range(0, len(members), POOL_CHUNK):
            pairs = np.column_stack((members[start:start + POOL_CHUNK],
                                     votes[start:start + POOL_CHUNK])).ravel().tolist()
            await self._scripts.run_now(_RECONCILE_POOL, pool_keys, [0, *pairs])
