"""The client factory against a real Redis: a read asked to block longer than the socket
timeout fails as a dead server would, unless the client was told it blocks that long."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from pairwise import redis_client

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

