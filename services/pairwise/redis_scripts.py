"""Lua scripts on Redis: every script of every service runs through `ScriptRunner`.

A script is sent by its SHA1 (EVALSHA), never by its text; one the server does not know
(first use, Redis restarted, or SCRIPT FLUSH) is loaded and only the calls that did not run
are sent again. Calls go in pipelined round trips: the calls made at about the same time
share one (`run`), or a caller sends its own list in one (`run_all`). Under a few hundred
concurrent voters every NextPair and SubmitVote runs a script; one pipeline per event-loop
iteration costs a fraction of one round trip per call, and each call still gets its own
reply or error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions
from redis.asyncio import Redis

from pairwise.coalescing import Coalescer

# Pipelined calls per shared round trip at most, and shared round trips in flight at once
# (one at a time makes the groups larger: less CPU per call under load, one round trip of
# wait when idle).
MAX_GROUP = 256
MAX_IN_FLIGHT = 1

ScriptArg = str | int | float | bytes | memoryview


@dataclass(frozen=True)
class Script:
    """A Lua script and the SHA1 that EVALSHA names it by."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# One script call: the script, its KEYS and its ARGV.
Call = tuple[Script, Sequence[str], Sequence[ScriptArg]]


@dataclass(frozen=True)
class FollowUp:
    """A command sent after the scripts of every round trip, on the same connection, so Redis
    runs it after them (marking the causes written as awake, WAITAOF after writes). `check`
    receives its reply, or its error reply as an exception, and may raise to fail the whole
    `run_all`."""

    command: tuple[str | int, ...]
    check: Callable[[Any], None]


class ScriptRunner:
    """EVALSHA through pipelines on `redis_client` (a redis.asyncio client).

    A Redis error reply to one call is that call's error only; a connection failure or a
    timeout raises for every call of its round trip.
    """

    def __init__(self, redis_client: Redis, *, max_group: int = MAX_GROUP,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._redis = redis_client
        self._groups: Coalescer[Call, Any] = Coalescer(
            self.run_all, max_group=max_group, max_in_flight=max_in_flight)

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """The reply of `script` run with `keys` and `args`, sent in one round trip with the
        other calls of `run` made at about the same time. Raises the call's error reply."""
        return await self._groups.submit((script, keys, args))

    async def run_now(self, script: Script, keys: Sequence[str],
                      args: Sequence[ScriptArg]) -> Any:
        """Like `run`, in a round trip of its own, sent at once (a call that must not wait
        behind other callers' groups, or that is large enough to slow them down)."""
        (reply,) = await self.run_all([(script, keys, args)])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def run_all(self, calls: Sequence[Call], *,
                      follow_ups: Sequence[FollowUp] = ()) -> list[Any]:
        """Run `calls` in one pipelined round trip, in order; per call, its reply or its error
        reply as an exception (returned, not raised).

        Calls whose script the server does not know are sent again, in a further round trip,
        once their scripts are loaded; the `follow_ups` go, in order, after the calls of
        every round trip.
        """
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        while todo:
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in todo:
                    script, keys, args = calls[i]
                    pipe.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
                for follow_up in follow_ups:
                    pipe.execute_command(*follow_up.command)
                results = await pipe.execute(raise_on_error=False)
            if follow_ups:
                for follow_up, result in zip(follow_ups, results[-len(follow_ups):],
                                             strict=True):
                    follow_up.check(result)
            missing: list[int] = []
            for i, result in zip(todo, results, strict=False):
                if isinstance(result, redis.exceptions.NoScriptError):
                    missing.append(i)
                else:
                    replies[i] = result
            for script in {calls[i][0] for i in missing}:
                await self._redis.script_load(script.source)
            todo = missing
        return replies
