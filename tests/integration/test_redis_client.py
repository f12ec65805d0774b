"""The client factory against a real Redis: a read asked to block longer than the socket
timeout fails as a dead server would, unless the client was told it blocks that long; a
service starting while Redis is away waits for it, for a while."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import pytest
import redis.exceptions
from conftest import eventually

from pairwise import redis_client
from pairwise.embedded_redis import EmbeddedRedis

SOCKET_TIMEOUT_S = 1.0
BLOCK_MS = 2_000


def read_empty_stream(redis_url: str, stream: str, *, blocking_s: float) -> object:
    async def main() -> object:
        client = redis_client.connect(redis_url, connect_timeout_s=1.0,
                                      socket_timeout_s=SOCKET_TIMEOUT_S, max_connections=2,
                                      pool_timeout_s=1.0, blocking_s=blocking_s)
        try:
            return await client.xread({stream: "$"}, block=BLOCK_MS)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_a_blocking_read_outlasts_the_socket_timeout_only_when_declared(
        redis_url: str, cause_id: str) -> None:
    stream = f"empty:{{{cause_id}}}"
    assert read_empty_stream(redis_url, stream, blocking_s=BLOCK_MS / 1000) in (None, [], {})
    with pytest.raises(redis.exceptions.TimeoutError):
        read_empty_stream(redis_url, stream, blocking_s=0.0)



def ping_when_reachable(url: str, attempts: list[int], wait_s: float) -> bool:
    async def main() -> bool:
        client = redis_client.connect(url, connect_timeout_s=1.0, socket_timeout_s=1.0,
                                      max_connections=1, pool_timeout_s=1.0)

        async def ping() -> bool:
            attempts.append(1)
            return bool(await client.ping())
        try:
            return await redis_client.when_reachable(ping, "the test's server", wait_s)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_a_start_while_redis_is_away_waits_for_it_then_gives_up_naming_it(
        tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", unix_socket=True).start()
    url = server.url
    server.stop()
    try:
        attempts: list[int] = []
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(ping_when_reachable, url, attempts, 60.0)
            eventually(lambda: len(attempts) >= 2, "a second attempt while Redis is away")
            server.start()
            assert waiting.result(timeout=30) is True
        server.stop()
        with pytest.raises(SystemExit, match="the test's server unreachable for 1 s"):
            ping_when_reachable(url, [], 1.0)
    finally:
        server.stop()
