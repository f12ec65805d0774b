"""Composition root of the ingest service: Redis client, vote store, gate, servicer, server."""

from __future__ import annotations

import logging

from ingest.backlog import BacklogGate
from ingest.intake import Intake
from ingest.servicer import IngestServicer
from ingest.settings import Settings
from ingest.vote_store import VoteStore
from pairwise import redis_client
from pairwise.declared_attributes import DeclaredAttributes
from pairwise.grpc_server import RunningServer, start_server
from pairwise.internal_auth import InternalAuthInterceptor
from pairwise.metrics import PerCauseGauges
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


async def start(settings: Settings) -> RunningServer:
    """Serve IngestService (with health and reflection) on settings.host:settings.port."""
    # A connection error is retried once: every write of ingest is de-duplicated by vote_id,
    # so a write that ran before the connection broke is not recorded twice.
    client = redis_client.connect(
        settings.redis_url, connect_timeout_s=settings.redis_connect_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
        max_connections=settings.redis_max_connections,
        pool_timeout_s=settings.redis_pool_timeout_s, retry_on_connection_error=True)
    store = VoteStore(client, wait_aof=settings.wait_aof,
                      wait_aof_timeout_ms=settings.wait_aof_timeout_ms,
                      wait_replicas=settings.wait_replicas)
    gate = BacklogGate(store.backlogs, settings.max_backlog, settings.backlog_check_interval_s)
    servicer = IngestServicer(Intake(store, gate, settings, DeclaredAttributes(client)))
    try:
        if settings.wait_replicas:
            await store.check_replicas(redis_client.shown(settings.redis_url))
        if settings.wait_aof:
            await store.check_durability(redis_client.shown(settings.redis_url))
        else:
            logger.warning(
                "INGEST_WAITAOF=false: votes are acknowledged before Redis fsyncs them; a host "
                "crash or power loss loses the last second of acknowledged votes")
        running = await start_server(
            host=settings.host, port=settings.port,
            servicers=[(ingest_pb2_grpc.add_IngestServiceServicer_to_server, servicer)],
            service_names=[SERVICE_NAME],
            interceptors=[InternalAuthInterceptor(
                [settings.internal_secret, *settings.internal_previous_secrets], [SERVICE_NAME])],
            max_concurrent_rpcs=settings.max_concurrent_rpcs, tls=settings.tls,
            reuse_port=settings.reuse_port, metrics_settings=settings.metrics)
    except BaseException:
        await client.aclose()
        raise
    running.closers.append(client.aclose)
    if running.metrics_endpoint is not None:
        running.metrics_endpoint.add(PerCauseGauges(lambda: [(
            "pairwise_ingest_backlog_votes",
            "Accepted votes of a cause not yet in a ranker checkpoint (this ingest's latest "
            "reading, what backpressure compares with INGEST_MAX_BACKLOG).",
            gate.estimates())]))
    return running
