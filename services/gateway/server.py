"""Composition root of the gateway: Redis, internal channels, interceptors, servicer."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from gateway.archive import Archives, export_writer
from gateway.auth import GATEWAY_PREFIX, AuthInterceptor
from gateway.catalog_store import CatalogStore
from gateway.pair_selection import PairSelector
from gateway.ranking_watches import RankingWatches
from gateway.rate_limit import Bucket, RateLimiter, RateLimitInterceptor, one_token
from gateway.servicer import GatewayServicer
from gateway.settings import Settings
from gateway.upstreams import Rankers, Upstreams
from gateway.vote_export import VoteExport
from gateway.vote_forwarding import VoteForwarder
from pairwise import redis_client
from pairwise.cause_life import LifeStore
from pairwise.declared_attributes import DeclaredAttributes
from pairwise.exclusions import ExclusionStore
from pairwise.grpc_server import RunningServer, start_server
from pairwise.redis_scripts import ScriptRunner
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc
from pairwise.voter_flags import VoterFlagStore

logger = logging.getLogger(__name__)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
# Tokens each voting call takes from the voter's bucket; a SubmitVote that also chooses the
# next pair does the work of two calls and costs two (gateway.rate_limit says why).
RATE_LIMITED_METHODS = {
    GATEWAY_PREFIX + "NextPair": one_token,
    GATEWAY_PREFIX + "SubmitVote": lambda request: 2 if request.want_next_pair else 1,
}


async def start(settings: Settings) -> RunningServer:
    """Serve GatewayService on settings.host:settings.port (0 = any free port)."""
    redis = redis_client.connect(
        settings.redis_url, connect_timeout_s=settings.redis_connect_timeout_s,
        socket_timeout_s=settings.redis_socket_timeout_s,
        max_connections=settings.redis_max_connections,
        pool_timeout_s=settings.redis_pool_timeout_s)
    # The rate-limit and pair scripts of concurrent calls share round trips.
    scripts = ScriptRunner(redis, max_in_flight=settings.script_groups_in_flight)
    upstreams = Upstreams(settings.ingest_addr,
                          Rankers(scripts, refresh_s=settings.rankers_refresh_s,
                                  internal_secret=settings.internal_secret,
                                  internal_tls=settings.internal_tls),
                          internal_secret=settings.internal_secret,
                          internal_tls=settings.internal_tls,
                          ingest_channels=settings.ingest_channels)
    archives = Archives(redis, scripts, Path(settings.archive_dir))
    servicer = GatewayServicer(
        catalog=CatalogStore(redis, scripts=scripts, max_proposals=settings.max_proposals),
        pairs=PairSelector(redis, scripts=scripts, newcomer_share=settings.newcomer_share,
                           max_seen=settings.max_seen_pairs,
                           seen_ttl_s=settings.seen_pairs_ttl_s),
        upstreams=upstreams,
        watches=RankingWatches(upstreams.rankers.stub_for, max_followers=settings.max_watches,
                               max_followers_per_cause=settings.max_watches_per_cause),
        votes=VoteForwarder(upstreams.ingest, max_group=settings.vote_group_max,
                            max_in_flight=settings.vote_groups_in_flight),
        exports=VoteExport(redis),
        exclusion_store=ExclusionStore(redis, scripts), life=LifeStore(redis, scripts),
        archives=archives,
        attributes=DeclaredAttributes(redis),
        flag_store=VoterFlagStore(redis),
        token_keys=settings.token_keys, prompt_ttl_s=settings.prompt_ttl_s,
        internal_timeout_s=settings.internal_timeout_s, import_chunk=settings.import_chunk,
        pair_selection=settings.pair_selection, newcomer_votes=settings.newcomer_votes)
    # A burst left at 0 is one second's worth of tokens.
    limiter = RateLimiter(
        redis, scripts=scripts,
        voter=Bucket(settings.voter_rate_per_s, settings.voter_burst),
        cause=Bucket(settings.cause_rate_per_s,
                     settings.cause_burst or math.ceil(settings.cause_rate_per_s)),
        platform=Bucket(settings.platform_rate_per_s,
                        settings.platform_burst or math.ceil(settings.platform_rate_per_s)))
    try:
        running = await start_server(
            host=settings.host, port=settings.port,
            servicers=[(gateway_pb2_grpc.add_GatewayServiceServicer_to_server, servicer)],
            service_names=[SERVICE_NAME],
            max_concurrent_rpcs=settings.max_concurrent_rpcs, tls=settings.tls,
            reuse_port=settings.reuse_port, metrics_settings=settings.metrics,
            loopback_port=True,
            # Auth first: an unauthenticated caller must not spend a voter's rate limit.
            interceptors=[AuthInterceptor(settings.admin_token, settings.platform_token),
                          RateLimitInterceptor(limiter, RATE_LIMITED_METHODS)])
    except BaseException:
        await upstreams.close()
        await redis.aclose()
        raise
    running.closers.append(redis.aclose)
    running.closers.append(upstreams.close)
    # Archives are written through this gateway's own export calls (gateway.archive), on
    # its loopback port: the public one may serve TLS, or listen on another address only.
    archives.write_export = export_writer(f"127.0.0.1:{running.loopback_port}",
                                          settings.admin_token)
    upstreams.rankers.start()
    logger.info("gateway started", extra={"port": running.port, "tls": settings.tls is not None,
                                          "ingest": settings.ingest_addr})
    return running
