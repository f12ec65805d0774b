"""The client factory builds a bounded, blocking pool with the timeouts it is given; a client
that blocks on the server gets a socket timeout that much longer."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool

from pairwise import redis_client


def test_the_pool_is_bounded_and_blocking() -> None:
    client = redis_client.connect("redis://127.0.0.1:1", connect_timeout_s=0.5,
                                  socket_timeout_s=3.0, max_connections=7,
                                  pool_timeout_s=4.0, blocking_s=0.25)
    pool = client.connection_pool
    assert isinstance(pool, BlockingConnectionPool)
    assert (pool.max_connections, pool.timeout) == (7, 4.0)
    assert pool.connection_kwargs["socket_timeout"] == 3.25
    assert pool.connection_kwargs["socket_connect_timeout"] == 0.5
