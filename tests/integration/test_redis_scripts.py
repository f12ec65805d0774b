"""The script runner against a real Redis: scripts the server forgot are loaded again, calls
made together share one round trip yet each gets its own reply or error, and a follow-up
command rides every round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.exceptions
from redis.asyncio import Redis

from pairwise.redis_scripts import FollowUp, Script, ScriptRunner

# KEYS: a counter. ARGV: a number. Adds it to the counter and returns the new total, or
# fails with an error reply when the number is negative.
ADD = Script("""
local n = tonumber(ARGV[1])
if n < 0 then return redis.error_reply('negative ' .. ARGV[1]) end
return redis.call('INCRBY', KEYS[1], n)
""")


class CountingClient:
    """A redis.asyncio client that counts its pipelines (one per round trip of scripts)."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self.round_trips = 0

    def pipeline(self, transaction: bool = True) -> Any:
        self.round_trips += 1
        return self._client.pipeline(transaction=transaction)

    async def script_load(self, source: str) -> Any:
        return await self._client.script_load(source)


def with_runner(redis_url: str,
                test: Callable[[ScriptRunner, CountingClient, Redis], Awaitable[None]]) -> None:
    async def main() -> None:
        client = Redis.from_url(redis_url)
        counting = CountingClient(client)
        try:
            await test(ScriptRunner(counting), counting, client)  # type: ignore[arg-type]
        finally:
            await client.aclose()

    asyncio.run(main())


def test_a_script_the_server_forgot_is_loaded_again(redis_url: str, cause_id: str) -> None:
    async def test(runner: ScriptRunner, counting: CountingClient, client: Redis) -> None:
        key = f"counter:{cause_id}"
        assert await runner.run(ADD, [key], [2]) == 2
        await client.script_flush()
        assert await runner.run(ADD, [key], [3]) == 5
        await client.script_flush()
        replies = await runner.run_all([(ADD, [key], [1]), (ADD, [key], [-1]),
                                        (ADD, [key], [10])])
        assert replies[0] == 6 and replies[2] == 16
        assert isinstance(replies[1], redis.exceptions.ResponseError)
        assert str(replies[1]) == "negative -1"
        assert await client.get(key) == b"16"  # every call ran exactly once

    with_runner(redis_url, test)


def test_calls_made_together_share_a_round_trip_and_keep_their_own_replies(
        redis_url: str, cause_id: str) -> None:
    async def test(runner: ScriptRunner, counting: CountingClient, client: Redis) -> None:
        await runner.run(ADD, [f"warm:{cause_id}"], [0])  # the server knows the script
        counting.round_trips = 0
        numbers = [1, 2, -3, 4, -5, 6]
        replies = await asyncio.gather(
            *(runner.run(ADD, [f"counter:{cause_id}:{i}"], [n]) for i, n in enumerate(numbers)),
            return_exceptions=True)
        assert counting.round_trips == 1
        for n, reply in zip(numbers, replies, strict=True):
            if n < 0:
                assert isinstance(reply, redis.exceptions.ResponseError)
                assert str(reply) == f"negative {n}"
            else:
                assert reply == n

    with_runner(redis_url, test)


def test_run_now_goes_alone_and_raises_its_error_reply(redis_url: str, cause_id: str) -> None:
    async def test(runner: ScriptRunner, counting: CountingClient, client: Redis) -> None:
        key = f"counter:{cause_id}"
        assert await runner.run_now(ADD, [key], [7]) == 7
        with pytest.raises(redis.exceptions.ResponseError, match="negative -7"):
            await runner.run_now(ADD, [key], [-7])
        assert await client.get(key) == b"7"

    with_runner(redis_url, test)


def test_a_follow_up_command_rides_every_round_trip(redis_url: str, cause_id: str) -> None:
    async def test(runner: ScriptRunner, counting: CountingClient, client: Redis) -> None:
        seen: list[Any] = []
        follow_up = FollowUp(("PING",), seen.append)
        await client.script_flush()
        counting.round_trips = 0
        replies = await runner.run_all([(ADD, [f"counter:{cause_id}"], [4])],
                                       follow_ups=[follow_up])
        assert replies == [4]
        # The first round trip found the script missing, the second ran it: PING after each.
        assert counting.round_trips == 2 and seen == [True, True]

        def refuse(reply: Any) -> None:
            raise RuntimeError("not on disk")

        with pytest.raises(RuntimeError, match="not on disk"):
            await runner.run_all([(ADD, [f"counter:{cause_id}"], [1])],
                                 follow_ups=[FollowUp(("PING",), refuse)])

    with_runner(redis_url, test)
