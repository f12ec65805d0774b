"""The directory of live rankers, and which of them serves a cause.

Each ranker process registers under an id of its own (`new_ranker_id`) with its gRPC
address, and renews the registration every third of its `ttl_s` (`register`); one that
stops renewing (killed, stalled, cut off from Redis) drops out of the directory `ttl_s`
after its last renewal. A ranker that stops cleanly leaves at once (`leave`).

A cause is served by its rendezvous owner among the live rankers (`owner_of`): the ranker
whose hash of (ranker id, cause id) is highest. A ranker joining or leaving moves only the
causes it wins or held, about 1/N of them, and every process that reads the same directory
agrees on the owner without talking to the others. Agreement is not needed for counting
exactly once: two rankers that both believe they own a cause (one's view is a second
behind) are kept apart by the cause's lease (ranker.cause_leases), which the checkpoint
save checks.

Expiry uses Redis' clock (TIME in the scripts), so rankers on hosts whose clocks differ
agree on who is live. The directory keys hold no cause id: on a Redis Cluster they sit in
one slot of their own, and every script here touches only them.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Iterable

import redis.asyncio as aioredis

from pairwise import keys
from pairwise.redis_scripts import Script, ScriptRunner

# Lua setting `now_ms` (Redis' clock) and defining `live_rankers()`, the live ids and
# addresses as a flat list (id, address, id, address, ...); KEYS[1] is the rankers' sorted
# set (id -> expiry, ms), KEYS[2] the hash of their addresses.
_LIVE_LUA = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local function live_rankers()
  local out = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now_ms, '+inf')) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  end
  return out
end
"""

# ARGV[1] ranker id, ARGV[2] its address, ARGV[3] ttl (ms). Registers or renews the ranker,
# drops the expired ones, and returns the live rankers.
_REGISTER = Script(_LIVE_LUA + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if #expired > 0 then
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('HDEL', KEYS[2], unpack(expired))
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return live_rankers()
""")

# The live rankers (read only).
_LIVE = Script(_LIVE_LUA + "return live_rankers()\n")


def new_ranker_id(name: str) -> str:
    """An id no other ranker process has ever had: `name`, the host, the pid and a random
    suffix. It is also the process's consumer name in the vote logs' group, so two processes
    never read as one consumer (one would acknowledge entries the other applied)."""
    return f"{name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def register(scripts: ScriptRunner, ranker_id: str, address: str,
                   ttl_s: float) -> dict[str, str]:
    """Register or renew `ranker_id` at `address` for `ttl_s` seconds; the live rankers
    (this one included) by id, with their addresses."""
    reply = await scripts.run_now(_REGISTER, [keys.RANKERS, keys.RANKER_ADDRESSES],
                                  [ranker_id, address, int(ttl_s * 1000)])
    return _pairs(reply)


async def live(scripts: ScriptRunner) -> dict[str, str]:
    """The live rankers by id, with their addresses (for the gateway)."""
    return _pairs(await scripts.run_now(_LIVE, [keys.RANKERS, keys.RANKER_ADDRESSES], []))


async def leave(client: aioredis.Redis, ranker_id: str) -> None:
    """Take `ranker_id` out of the directory (a clean stop: its causes move at once)."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.RANKERS, ranker_id)
        pipe.hdel(keys.RANKER_ADDRESSES, ranker_id)
        await pipe.execute()


def owner_of(cause_id: str, ranker_ids: Iterable[str]) -> str | None:
    """The ranker of `ranker_ids` that serves `cause_id` (rendezvous hashing), or None when
    there is none."""
    best: tuple[int, str] | None = None
    for ranker_id in ranker_ids:
        score = (_weight(ranker_id, cause_id), ranker_id)
        if best is None or score > best:
            best = score
    return None if best is None else best[1]


def _weight(ranker_id: str, cause_id: str) -> int:
    digest = hashlib.blake2b(f"{ranker_id}\n{cause_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _pairs(reply: list[bytes | str]) -> dict[str, str]:
    items = [value.decode() if isinstance(value, bytes) else value for value in reply]
    return dict(zip(items[::2], items[1::2], strict=True))

