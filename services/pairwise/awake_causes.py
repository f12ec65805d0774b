"""The awake set: the causes whose vote logs may hold votes no ranker checkpoint covers yet.

A ranker reads only the logs of the causes it has loaded, all of them in one blocking
XREADGROUP (ranker.vote_reader), and unloads a cause that stays idle. It learns that an
unloaded cause got votes from the set `keys.AWAKE_CAUSES`, which it polls:

- **Ingest** adds a cause (`mark_command`) after the scripts that wrote its votes, in the
  same pipelined round trip (on a Redis Cluster, whose nodes do not order one pipeline,
  once they replied), so Redis runs the SADD after them; a vote is answered OK only once
  that SADD succeeded. A cause already in the set costs one O(1) no-op per round trip.
- **A ranker** adds a cause (`wake`) when it loads it, before it reads the cause's new
  entries, so a ranker killed while it holds delivered entries leaves the cause in the set
  for its successor, which loads every cause of the set it takes over: each was loaded
  somewhere, or got votes, so that is bounded by what the rankers held. It removes a cause
  only when putting it to sleep (`put_to_sleep`, or `put_all_to_sleep` as it stops), once a
  final checkpoint covers everything it read: first SREM, then a look at the log
  (`has_uncounted`): any entry not yet delivered to the rankers' group, or delivered and not
  acknowledged, and the cause is loaded again (or, as it stops, put back in the set).

No vote that got OK is left uncounted: its SADD ran after it. If that SADD ran after the
ranker's SREM, the cause is in the set and is loaded at the next poll; if before, the vote
was already in the log when the ranker looked, and the look finds it. Two cases are left to
`uncounted_among`, run by each ranker when it starts and every `RANKER_SWEEP_INTERVAL_S`:
a vote written by an ingest killed before its SADD (the client got no OK and retries, which
marks the cause, unless it gives up), and a Redis that lost the last second of its AOF
between a vote and its SADD.

Every command and script here names one key, so none of them crosses a Redis Cluster slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from pairwise import keys
from pairwise.redis_scripts import Script, ScriptRunner


def mark_command(cause_ids: Iterable[str]) -> tuple[str, ...]:
    """The SADD ingest sends after writing votes of `cause_ids` (at least one)."""
    return ("SADD", keys.AWAKE_CAUSES, *sorted(set(cause_ids)))


# KEYS[1] the awake set. ARGV[1] a cause id. A script, so that it shares the round trip of
# the other causes' calls (and, on one server, of the load that follows it).
_WAKE = Script("return redis.call('SADD', KEYS[1], ARGV[1])")


async def wake(scripts: ScriptRunner, cause_id: str) -> None:
    """Add `cause_id` to the set (a ranker, before it loads the cause)."""
    await scripts.run(_WAKE, [keys.AWAKE_CAUSES], [cause_id])


async def members(client: aioredis.Redis) -> list[str]:
    """Every cause in the set (of every ranker: callers keep the ones they own)."""
    return [_text(raw) for raw in await client.smembers(keys.AWAKE_CAUSES)]  # type: ignore[misc]


async def put_to_sleep(client: aioredis.Redis, cause_id: str) -> bool:
    """Remove `cause_id` from the set, then look at its log: True when nothing in it is left
    to count, False when the cause must be loaded again (it got votes meanwhile, or entries
    are pending). Call only once a checkpoint covers every entry this ranker read.

    Two round trips, in this order: the look must see every vote whose SADD ran before the
    SREM (a pipeline would keep the order on one server, not across a cluster's nodes).
    """
    await client.srem(keys.AWAKE_CAUSES, cause_id)
    return not await has_uncounted(client, cause_id)


async def put_all_to_sleep(client: aioredis.Redis, cause_ids: Sequence[str]) -> list[str]:
    """`put_to_sleep` for a ranker that stops: remove `cause_ids` (at least one) from the
    set, look at their logs, and put back those with something left to count for their next
    owner to load; those put back. Three round trips whatever the number of causes.

    Raises the error of a round trip that failed; if the look failed, every cause was put
    back (or, were that to fail too, the causes with votes wait for a sweep).
    """
    await client.srem(keys.AWAKE_CAUSES, *cause_ids)
    try:
        uncounted = await uncounted_among(client, cause_ids)
    except BaseException:
        await client.sadd(keys.AWAKE_CAUSES, *cause_ids)
        raise
    if uncounted:
        await client.sadd(keys.AWAKE_CAUSES, *uncounted)
    return uncounted


async def has_uncounted(client: aioredis.Redis, cause_id: str) -> bool:
    """Whether the cause's log holds entries not delivered to the rankers' group, or
    delivered and not acknowledged (a checkpoint does not cover them yet)."""
    return bool(await uncounted_among(client, [cause_id]))


async def uncounted_among(client: aioredis.Redis, cause_ids: Sequence[str]) -> list[str]:
    """The causes of `cause_ids` whose logs hold entries `has_uncounted` would report; one
    pipelined round trip of two commands a cause."""
    if not cause_ids:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for cause_id in cause_ids:
            pipe.xlen(keys.votes(cause_id))
            pipe.xinfo_groups(keys.votes(cause_id))
        replies = await pipe.execute(raise_on_error=False)
    found = []
    for k, cause_id in enumerate(cause_ids):
        length, groups = replies[2 * k], replies[2 * k + 1]
        if isinstance(length, Exception):
            raise length
        if not length:
            continue
        if isinstance(groups, redis.exceptions.ResponseError):
            continue  # the log was deleted between the two commands
        if isinstance(groups, Exception):
            raise groups
        if _uncounted(groups):
            found.append(cause_id)
    return found


def _uncounted(groups: list[dict[str, Any]]) -> bool:
    """Whether the rankers' group (from XINFO GROUPS of a non-empty log) has entries to
    deliver or to acknowledge; a lag Redis cannot compute counts as entries to deliver."""
    for group in groups:
        if _text(group["name"]) == keys.RANKER_GROUP:
            return bool(group["pending"]) or group.get("lag") != 0
    return True  # never read by a ranker


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
