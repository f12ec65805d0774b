"""Composition root of the ingest service: Redis client, vote store, gate, servicer, server."""

from __future__ import annotations

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ingest.backlog import BacklogGate
from ingest.intake import Intake
from ingest.servicer import IngestServicer
from ingest.settings import Settings
from ingest.vote_store import VoteStore
from pairwise.grpc_server import RunningServer, start_server
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


def redis_client(settings: Settings) -> redis.asyncio.Redis:
    """A client that fails fast when Redis is gone (the caller answers UNAVAILABLE).

    One immediate retry on a connection error covers a pooled connection left stale by a
    Redis restart; timeouts are not retried, since the write may have run (the client's own
    retry is de-duplicated instead). The pool is bounded and blocking: past
    `redis_max_connections` commands in flight a command waits for a connection (the default
    pool fails with "Too many connections" at 100, which a busy gateway reaches).
    """
    return redis.asyncio.Redis.from_pool(redis.asyncio.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_socket_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    ))


async def start(settings: Settings) -> RunningServer:
    """Serve IngestService (with health and reflection) on settings.host:settings.port."""
    client = redis_client(settings)
    store = VoteStore(client, wait_aof=settings.wait_aof,
                      wait_aof_timeout_ms=settings.wait_aof_timeout_ms)
    gate = BacklogGate(store.backlogs, settings.max_backlog, settings.backlog_check_interval_s)
    servicer = IngestServicer(Intake(store, gate, settings))
    try:
        running = await start_server(
            host=settings.host, port=settings.port,
            servicers=[(ingest_pb2_grpc.add_IngestServiceServicer_to_server, servicer)],
            service_names=[SERVICE_NAME])
    except BaseException:
        await client.aclose()
        raise
    running.closers.append(client.aclose)
    return running
