"""Ingest and the rankers answer only the cluster's own services: a call without the internal
secret, or with another one, is refused UNAUTHENTICATED and records nothing; health checks stay
open; a gateway holding the wrong secret says so instead of blaming its caller."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
import redis
from conftest import (
    ADMIN_TOKEN,
    INTERNAL_SECRET,
    PLATFORM_TOKEN,
    bearer,
    gateway_settings,
    ingest_settings,
    internal,
    own_database,
    ranker_settings,
    serve_in_thread,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.server import start as start_gateway
from ingest.server import start as start_ingest
from pairwise import internal_auth, keys
from pairwise.v1 import (
    gateway_pb2,
    gateway_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    ranker_pb2,
    ranker_pb2_grpc,
    types_pb2,
)
from ranker.server import start as start_ranker

ROTATED_OUT = "the-secret-before-the-rotation-32-bytes"
TIMEOUT_S = 10


@dataclass
class Internals:
    ingest_addr: str
    ranker_addr: str


@pytest.fixture(scope="module")
def auth_redis_url(redis_url: str) -> str:
    """A database of its own: its ranker is then the only one, and owns every cause."""
    return own_database(redis_url, "internal_auth")


@pytest.fixture(scope="module")
def internals(auth_redis_url: str) -> Iterator[Internals]:
    """Ingest and a ranker that also accept a secret being rotated out."""
    with (serve_in_thread(start_ingest, ingest_settings(
              auth_redis_url, min_view_ms=0, internal_previous_secrets=(ROTATED_OUT,))) as ingest,
          serve_in_thread(start_ranker, ranker_settings(
              auth_redis_url, internal_previous_secrets=(ROTATED_OUT,))) as ranker):
        yield Internals(f"127.0.0.1:{ingest.port}", f"127.0.0.1:{ranker.port}")


def create_cause(r: redis.Redis, cause_id: str) -> None:
    """The keys ingest reads of a cause with proposals p0 and p1 (no ranker counts it)."""
    r.hset(keys.cause(cause_id), mapping={"title": "t", "auto_accept": 0, "created_at_ms": 1})
    r.hset(keys.proposal_index(cause_id), mapping={"p0": 0, "p1": 1})
    r.rpush(keys.proposal_ids(cause_id), "p0", "p1")


def imported(cause_id: str) -> ingest_pb2.RecordVotesRequest:
    return ingest_pb2.RecordVotesRequest(votes=[types_pb2.ImportedVote(
        vote_id="v1", cause_id=cause_id, voter_id="anyone", winner_id="p0", loser_id="p1")])


def refusal(call) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(("metadata", "problem"), [
    ((), "is missing"),
    (internal_auth.metadata("x" * 40), "is wrong"),
    (bearer(ADMIN_TOKEN), "is wrong"),
    ((("authorization", "Basic " + INTERNAL_SECRET),), "is wrong"),
])
def test_ingest_refuses_votes_without_the_internal_secret(
        internals: Internals, auth_redis_url: str, cause_id: str,
        metadata: tuple[tuple[str, str], ...], problem: str) -> None:
    r = redis.Redis.from_url(auth_redis_url)
    create_cause(r, cause_id)
    with grpc.insecure_channel(internals.ingest_addr) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        error = refusal(lambda: stub.RecordVotes(imported(cause_id), metadata=metadata,
                                                 timeout=TIMEOUT_S))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        details = error.details()  # type: ignore[attr-defined]
        assert f"the internal secret {problem}" in details
        assert "PAIRWISE_INTERNAL_SECRET" in details and "IngestService" in details
        assert INTERNAL_SECRET not in details
        stats = refusal(lambda: stub.GetVoteStats(
            ingest_pb2.GetVoteStatsRequest(cause_id=cause_id), metadata=metadata,
            timeout=TIMEOUT_S))
        assert stats.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    # Nothing recorded: the refusal came before any servicer code.
    assert r.xlen(keys.votes(cause_id)) == 0
    r.close()


def test_ingest_records_with_the_secret_and_with_the_one_being_rotated_out(
        internals: Internals, auth_redis_url: str, cause_id: str) -> None:
    r = redis.Redis.from_url(auth_redis_url)
    create_cause(r, cause_id)
    with grpc.insecure_channel(internals.ingest_addr) as channel:
        for secret in (INTERNAL_SECRET, ROTATED_OUT):
            stub = internal_auth.authenticated(ingest_pb2_grpc.IngestServiceStub(channel),
                                               secret)
            reply = stub.RecordVotes(imported(cause_id), timeout=TIMEOUT_S)
            assert reply.accepted + reply.duplicates == 1
    assert r.xlen(keys.votes(cause_id)) == 1
    r.close()


def test_the_ranker_refuses_reads_and_streams_without_the_internal_secret(
        internals: Internals, cause_id: str) -> None:
    with grpc.insecure_channel(internals.ranker_addr) as channel:
        stub = ranker_pb2_grpc.RankerServiceStub(channel)
        read = refusal(lambda: stub.ReadRanking(
            ranker_pb2.ReadRankingRequest(cause_id=cause_id, limit=10), timeout=TIMEOUT_S))
        follow = refusal(lambda: next(iter(stub.FollowRanking(
            ranker_pb2.FollowRankingRequest(cause_id=cause_id, limit=10),
            metadata=internal_auth.metadata("y" * 32), timeout=TIMEOUT_S))))
        export = refusal(lambda: next(iter(stub.StreamRanking(
            ranker_pb2.StreamRankingRequest(cause_id=cause_id), timeout=TIMEOUT_S))))
        for error, problem in ((read, "is missing"), (follow, "is wrong"),
                               (export, "is missing")):
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            assert f"the internal secret {problem}: RankerService" in error.details()  # type: ignore[attr-defined]
        # With the secret the same read gets past the check (NOT_FOUND: no such cause).
        known = refusal(lambda: internal(stub).ReadRanking(
            ranker_pb2.ReadRankingRequest(cause_id=cause_id, limit=10), timeout=TIMEOUT_S))
        assert known.code() is grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_health_checks_and_watches_need_no_secret(internals: Internals) -> None:
    for addr in (internals.ingest_addr, internals.ranker_addr):
        with grpc.insecure_channel(addr) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()


def test_a_gateway_with_the_wrong_secret_answers_internal_naming_the_setting(
        internals: Internals, auth_redis_url: str, cause_id: str) -> None:
    settings = gateway_settings(auth_redis_url, internals.ingest_addr,
                                internal_secret="not-the-cluster-secret-but-32-bytes")
    with (serve_in_thread(start_gateway, settings) as gateway,
          grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel):
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        stub.CreateCause(gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="t"),
                         metadata=bearer(ADMIN_TOKEN), timeout=TIMEOUT_S)
        error = refusal(lambda: stub.GetCauseStats(
            gateway_pb2.GetCauseStatsRequest(cause_id=cause_id),
            metadata=bearer(PLATFORM_TOKEN), timeout=TIMEOUT_S))
        # Not UNAUTHENTICATED: the platform's token was right, the operator must act.
        assert error.code() is grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
        assert "PAIRWISE_INTERNAL_SECRET" in error.details()  # type: ignore[attr-defined]


def test_the_gateway_refuses_to_start_when_a_client_token_is_the_internal_secret(
        auth_redis_url: str) -> None:
    for same in ("admin_token", "platform_token"):
        with pytest.raises(SystemExit) as stopped:
            gateway_settings(auth_redis_url, "127.0.0.1:1", **{same: INTERNAL_SECRET})
        assert "PAIRWISE_INTERNAL_SECRET must differ" in str(stopped.value)


# The gateway sends the secret; only the servers that check it read the previous ones.
@pytest.mark.parametrize(("service", "setting", "value"), [
    *((service, "PAIRWISE_INTERNAL_SECRET", value) for service in ("ingest", "ranker", "gateway")
      for value in ("", "s" * 31)),
    *((service, "PAIRWISE_INTERNAL_PREVIOUS_SECRETS", "o" * 32 + ",short")
      for service in ("ingest", "ranker")),
])
def test_a_missing_or_short_internal_secret_stops_start_up_naming_the_setting(
        service: str, setting: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = importlib.import_module(f"{service}.settings").Settings
    for name, default in (("REDIS_URL", "redis://127.0.0.1:1/0"),
                          ("PAIRWISE_ADMIN_TOKEN", "a"), ("PAIRWISE_PLATFORM_TOKEN", "p"),
                          ("PAIRWISE_TOKEN_SECRET", "t" * 32),
                          ("PAIRWISE_INTERNAL_SECRET", "i" * 32)):
        monkeypatch.setenv(name, default)
    monkeypatch.setenv(setting, value)
    with pytest.raises(SystemExit) as stopped:
        settings.from_env()
    assert setting in str(stopped.value)
