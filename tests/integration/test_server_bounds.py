"""Every server refuses calls past its bound on calls in progress (streams included) with
RESOURCE_EXHAUSTED at once, instead of queueing them without bound: ingest and the rankers
as the gateway (INGEST_MAX_CONCURRENT_RPCS, RANKER_MAX_CONCURRENT_RPCS)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from conftest import (
    eventually,
    ingest_settings,
    internal,
    own_database,
    ranker_settings,
    serve_in_thread,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ingest.server import start as start_ingest
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc, ranker_pb2, ranker_pb2_grpc
from ranker.server import start as start_ranker

TIMEOUT_S = 10


def one_call(service: str, channel: grpc.Channel) -> None:
    """A unary call of `service`'s own (an unknown cause: any answer but the bound will do)."""
    if service == "ingest":
        internal(ingest_pb2_grpc.IngestServiceStub(channel)).GetVoteStats(
            ingest_pb2.GetVoteStatsRequest(cause_id="no-such-cause"), timeout=TIMEOUT_S)
    else:
        internal(ranker_pb2_grpc.RankerServiceStub(channel)).ReadRanking(
            ranker_pb2.ReadRankingRequest(cause_id="no-such-cause", limit=1),
            timeout=TIMEOUT_S)


@pytest.fixture(params=["ingest", "ranker"])
def bounded(request: pytest.FixtureRequest, redis_url: str) -> Iterator[tuple[str, str]]:
    """(service, address) of a server that takes 2 calls at once."""
    url = own_database(redis_url, "bounds")
    if request.param == "ingest":
        started = serve_in_thread(start_ingest, ingest_settings(url, max_concurrent_rpcs=2))
    else:
        started = serve_in_thread(start_ranker, ranker_settings(url, max_concurrent_rpcs=2))
    with started as running:
        yield request.param, f"127.0.0.1:{running.port}"


def test_a_call_past_the_bound_is_refused_at_once_and_taken_again_after(
        bounded: tuple[str, str]) -> None:
    service, addr = bounded
    with grpc.insecure_channel(addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        # Two streams that stay open hold the two places.
        watches = [health.Watch(health_pb2.HealthCheckRequest(), timeout=60) for _ in range(2)]
        for watch in watches:
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as refused:
            one_call(service, channel)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
        for watch in watches:
            watch.cancel()

        def answered() -> bool:
            try:
                one_call(service, channel)
            except grpc.RpcError as exc:
                return exc.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            return True

        # The places come back as the streams end (the server learns of each cancel).
        eventually(answered, f"{service} answering again once the streams ended")
