"""Lua scripts on Redis, the calls made at about the same time sent in one pipelined round trip.

Under a few hundred concurrent voters every NextPair and SubmitVote runs scripts (rate limit,
pair choice); one pipeline per event-loop iteration costs the gateway a fraction of one
round trip per call, and each call still gets its own reply or error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from gateway.coalescing import Coalescer

# Pipelined calls per round trip at most, and round trips in flight at once (one at a time
# makes the groups larger: less CPU per call under load, one round trip of wait when idle).
MAX_GROUP = 256
MAX_IN_FLIGHT = 1


@dataclass(frozen=True)
class Script:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


_Call = tuple[Script, Sequence[str], Sequence[str | int | float]]


class ScriptRunner:
    """EVALSHA through one shared pipeline per group of concurrent calls.

    A call's reply is the script's; a Redis error reply to one call raises for that call
    only; a connection failure raises for every call of its round trip. Scripts unknown to
    the server (first use, Redis restarted) are loaded and their calls sent again.
    """

    def __init__(self, redis_client: Redis, *, max_group: int = MAX_GROUP,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._redis = redis_client
        self._groups: Coalescer[_Call, Any] = Coalescer(
            self._run_group, max_group=max_group, max_in_flight=max_in_flight)

    async def run(self, script: Script, keys: Sequence[str],
                  args: Sequence[str | int | float]) -> Any:
        """The reply of `script` run with `keys` and `args`."""
        return await self._groups.submit((script, keys, args))

    async def _run_group(self, calls: list[_Call]) -> list[Any]:
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        while todo:
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    script, keys, args = calls[i]
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
            missing: list[int] = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, redis.exceptions.NoScriptError):
                    missing.append(i)
                else:
                    replies[i] = result
            for script in {calls[i][0] for i in missing}:
                await self._redis.script_load(script.source)
            todo = missing
        return replies
