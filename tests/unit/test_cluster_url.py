"""A redis+cluster:// URL makes a Redis Cluster client seeded by every node it lists, with
the URL's credentials and TLS, and the connection settings of a plain client (no network:
the client connects at its first command)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from pairwise import redis_client


def connect(url: str) -> Redis:
    return redis_client.connect(url, connect_timeout_s=1.5, socket_timeout_s=4.0,
                                max_connections=7, pool_timeout_s=2.0, blocking_s=1.0,
                                client_name="ranker-x")


def test_a_cluster_url_lists_its_seed_nodes_and_credentials() -> None:
    url = "redis+cluster://ingest:s%40cret@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002/0"
    client = connect(url)
    try:
        assert redis_client.is_cluster(url) and redis_client.is_cluster_client(client)
        assert isinstance(client, RedisCluster)
        seeds = client.nodes_manager.startup_nodes
        assert set(seeds) == {"10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.3:7002"}
        options = client.nodes_manager.connection_kwargs
        assert (options["username"], options["password"]) == ("ingest", "s@cret")
        assert options["client_name"] == "ranker-x"
        # The read may block on the server: its socket waits that much longer.
        assert (options["socket_timeout"], options["socket_connect_timeout"]) == (5.0, 1.5)
        assert options["max_connections"] == 7
        assert redis_client.shown(url) == (
            "redis+cluster://ingest:***@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002/0")
    finally:
        asyncio.run(client.aclose())


def test_rediss_cluster_speaks_tls_and_redis_stays_one_server() -> None:
    tls = connect("rediss+cluster://10.0.0.1:7000")
    plain = connect("redis://10.0.0.1:7000/0")
    try:
        assert tls.nodes_manager.connection_kwargs["connection_class"].__name__ == (  # type: ignore[attr-defined]
            "SSLConnection")
        assert not redis_client.is_cluster_client(plain) and isinstance(plain, Redis)
    finally:
        asyncio.run(tls.aclose())
        asyncio.run(plain.aclose())
