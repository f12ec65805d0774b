"""Cause leases: the one ranker allowed to write a cause's checkpoint, for a bounded time.

A ranker takes a cause's lease (`acquire`) before it loads the cause, renews the leases it
holds together with its directory registration (`renew`: every third of the lease time),
and gives one back when it hands the cause over or puts it to sleep (`release`). A lease
holds a token unique to one acquisition (`LeaseTokens`); the checkpoint save
(ranker.redis_vote_stream) refuses any caller whose token is not the stored one, in the same
script that writes. So a ranker whose lease ran out (it stalled, or lost Redis for longer
than the lease) can never write a checkpoint again, even if it has not noticed yet: the
lease, not the ranker's view of the directory, decides who writes.

A killed ranker's leases run out `ttl_s` after its last renewal, when its directory entry
does (pairwise.ranker_directory): the new owner, which waits for both, takes the lease on
its next try. Every script names one lease key, so none crosses a Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from pairwise import keys
from pairwise.redis_scripts import Script, ScriptRunner

# KEYS[1] lease, KEYS[2] cause. ARGV[1] token, ARGV[2] ttl (ms). Takes the lease when it is
# free (or already the caller's); returns the token that holds it now, ARCHIVED for an
# archived cause (none may be taken: the archive releases what a ranker would load), or
# MISSING for a cause never created (nothing to load: a read answers NOT_FOUND).
_ACQUIRE = Script("""
if redis.call('EXISTS', KEYS[2]) == 0 then return 'MISSING' end
if redis.call('HGET', KEYS[2], 'state') == 'ARCHIVED' then return 'ARCHIVED' end
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return held end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return ARGV[1]
""")

# KEYS[1] lease. ARGV[1] token, ARGV[2] ttl (ms). Extends the lease if the caller holds it;
# 1 if it did, 0 if the lease was lost.
_RENEW = Script("""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
""")

# KEYS[1] lease. ARGV[1] token. Frees the lease if the caller holds it.
_RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
""")


class LeaseTokens:
    """Tokens of one ranker process: its id and a counter, so that each acquisition of a
    lease by the process has a token of its own (a cause closed and loaded again by the same
    process cannot write with the token of its previous load)."""

    def __init__(self, ranker_id: str) -> None:
        self._ranker_id = ranker_id
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._ranker_id}/{next(self._counter)}"


# What `acquire` answers for an archived cause, and for a cause never created.
ARCHIVED = "ARCHIVED"
MISSING = "MISSING"


def holder(token: str) -> str:
    """The ranker id of the process that holds `token`."""
    return token.rpartition("/")[0]


async def acquire(scripts: ScriptRunner, leases: Sequence[tuple[str, str]],
                  ttl_s: float) -> list[str | BaseException]:
    """Take each (cause id, token) lease of `leases` for `ttl_s` seconds if it is free; per
    lease the token that holds it now (the one given when taken), ARCHIVED (the cause is
    archived), MISSING (no such cause), or the error its call got. The calls share round
    trips (`ScriptRunner.run`): a ranker takes the causes of one that left, and reads ask
    for many, at once."""
    replies = await asyncio.gather(
        *(scripts.run(_ACQUIRE, [keys.lease(cause_id), keys.cause(cause_id)],
                      [token, int(ttl_s * 1000)])
          for cause_id, token in leases), return_exceptions=True)
    return [reply if isinstance(reply, BaseException)
            else reply.decode() if isinstance(reply, bytes) else str(reply)
            for reply in replies]


async def renew(scripts: ScriptRunner, leases: Sequence[tuple[str, str]],
                ttl_s: float) -> list[str]:
    """Extend each (cause id, token) lease of `leases` by `ttl_s` seconds, in one round trip;
    the causes whose lease was lost (expired, or taken by another ranker). Raises the first
    error reply (the caller keeps its leases and tries again)."""
    replies = await scripts.run_all(
        [(_RENEW, [keys.lease(cause_id)], [token, int(ttl_s * 1000)])
         for cause_id, token in leases])
    lost = []
    for (cause_id, _), reply in zip(leases, replies, strict=True):
        if isinstance(reply, Exception):
            raise reply
        if not int(reply):
            lost.append(cause_id)
    return lost


async def release(scripts: ScriptRunner, cause_id: str, token: str) -> None:
    """Free `cause_id`'s lease if `token` holds it (its next owner need not wait)."""
    await scripts.run(_RELEASE, [keys.lease(cause_id)], [token])
