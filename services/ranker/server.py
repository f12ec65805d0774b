"""Composition root of the ranker: Redis client, fit processes, cause directory, gRPC server."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from pairwise import ranker_directory, redis_client
from pairwise.grpc_server import RunningServer, start_server
from pairwise.internal_auth import InternalAuthInterceptor
from pairwise.metrics import PerCauseGauges
from pairwise.v1 import ranker_pb2, ranker_pb2_grpc
from ranker.cause_directory import CauseDirectory
from ranker.fit_pool import FitPool
from ranker.servicer import RankerServicer
from ranker.settings import Settings

SERVICE_NAME = ranker_pb2.DESCRIPTOR.services_by_name["RankerService"].full_name


async def start(settings: Settings) -> RunningServer:
    """Serve RankerService on settings.host:settings.port (0 = any free port), join the
    directory of rankers under an id of this process's own, and start consuming the owned
    causes as they get votes or reads. Stopping the returned server leaves the directory,
    saves a final checkpoint of every loaded cause and gives back its leases."""
    ranker_id = ranker_directory.new_ranker_id(settings.name)
    # The vote reader has a connection of its own: queued behind the other commands, its
    # read (every cause's) timed out waiting and failed every cause at once. Its XREADGROUP
    # blocks up to read_block_ms on the server: its socket timeout covers that wait on top
    # of redis_socket_timeout_s.
    def connect(max_connections: int, blocking_s: float) -> Redis:
        return redis_client.connect(
            settings.redis_url, connect_timeout_s=settings.redis_connect_timeout_s,
            socket_timeout_s=settings.redis_socket_timeout_s,
            max_connections=max_connections, pool_timeout_s=settings.redis_pool_timeout_s,
            blocking_s=blocking_s, client_name=ranker_id)

    # So has the renewal of the ranker's registration and leases: queued behind loads and
    # checkpoints on a starved host, it came later than the lease time, and the ranker lost
    # every cause it held.
    client = connect(settings.redis_max_connections - 2, 0.0)
    reader_client = connect(1, settings.read_block_ms / 1000)
    renewal_client = connect(1, 0.0)
    fit_pool = FitPool(settings.fit_workers, nice=settings.fit_nice,
                       segment_workers=settings.segment_fit_workers)
    directory = CauseDirectory(client, reader_client, renewal_client, settings, fit_pool,
                               ranker_id=ranker_id)
    try:
        running = await start_server(
            host=settings.host, port=settings.port,
            servicers=[(ranker_pb2_grpc.add_RankerServiceServicer_to_server,
                        RankerServicer(directory))],
            service_names=[SERVICE_NAME],
            interceptors=[InternalAuthInterceptor(
                [settings.internal_secret, *settings.internal_previous_secrets], [SERVICE_NAME])],
            max_concurrent_rpcs=settings.max_concurrent_rpcs, tls=settings.tls,
            metrics_settings=settings.metrics)
    except BaseException:
        await fit_pool.close()
        await client.aclose()
        await reader_client.aclose()
        await renewal_client.aclose()
        raise
    # Closers run in reverse: causes first (final checkpoints need Redis), then fits, Redis.
    running.closers.extend([client.aclose, reader_client.aclose, renewal_client.aclose,
                            fit_pool.close])
    try:
        # A ranker (re)started while Redis restarts waits for it, as ingest does.
        address = settings.advertise_addr or f"{settings.host}:{running.port}"
        await redis_client.when_reachable(lambda: directory.join(address),
                                          redis_client.shown(settings.redis_url))
    except BaseException:
        await running.stop(0)
        raise
    running.closers.append(directory.close)
    if settings.port_file:
        Path(settings.port_file).write_text(f"{running.port}\n")
    if running.metrics_endpoint is not None:
        running.metrics_endpoint.add(PerCauseGauges(directory.gauges))
    return running
