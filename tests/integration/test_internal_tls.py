"""Ingest and a ranker serving TLS (INTERNAL_TLS_CERT / INTERNAL_TLS_KEY) with a self-signed
certificate made for the test, and a gateway that trusts it (INTERNAL_TLS_CA, with
INTERNAL_TLS_NAME: rankers publish IP addresses): votes flow and are counted; a gateway that
dials them in plaintext gets no answer; the health probe checks them over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    Certificate,
    bearer,
    eventually,
    gateway_settings,
    ingest_settings,
    own_database,
    ranker_settings,
    self_signed,
    serve_in_thread,
)

from gateway.server import start as start_gateway
from ingest.server import start as start_ingest
from pairwise import health_probe
from pairwise.internal_auth import ClientTls
from pairwise.tls import ServerIdentity
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2
from ranker.server import start as start_ranker

NAME = "pairwise.internal"
TIMEOUT_S = 10


@dataclass
class Internals:
    redis_url: str
    ingest_addr: str
    ranker_addr: str
    certificate: Certificate


@pytest.fixture(scope="module")
def internals(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Internals]:
    certificate = self_signed(tmp_path_factory.mktemp("internal-tls"), NAME)
    identity = ServerIdentity.from_files("INTERNAL_TLS_CERT", str(certificate.cert),
                                         "INTERNAL_TLS_KEY", str(certificate.key))
    url = own_database(redis_url, "internal_tls")
    with (serve_in_thread(start_ingest, ingest_settings(url, min_view_ms=0, tls=identity))
          as ingest,
          serve_in_thread(start_ranker, ranker_settings(url, tls=identity)) as ranker):
        yield Internals(url, f"127.0.0.1:{ingest.port}", f"127.0.0.1:{ranker.port}",
                        certificate)


def cast_a_vote(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str) -> None:
    stub.CreateCause(gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="t"),
                     metadata=bearer(ADMIN_TOKEN), timeout=TIMEOUT_S)
    stub.AddProposals(gateway_pb2.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=f"p{k}", text=f"proposition {k}") for k in range(3)]),
        metadata=bearer(ADMIN_TOKEN), timeout=TIMEOUT_S)
    pair = stub.NextPair(gateway_pb2.NextPairRequest(cause_id=cause_id, voter_id="v1"),
                         metadata=bearer(PLATFORM_TOKEN), timeout=TIMEOUT_S)
    stub.SubmitVote(gateway_pb2.SubmitVoteRequest(
        cause_id=cause_id, voter_id="v1", prompt_token=pair.prompt_token,
        choice=types_pb2.CHOICE_LEFT), metadata=bearer(PLATFORM_TOKEN), timeout=TIMEOUT_S)


def test_a_gateway_trusting_the_certificate_votes_and_reads_through_tls(
        internals: Internals, cause_id: str) -> None:
    trusted = ClientTls(internals.certificate.cert.read_bytes(), NAME)
    settings = gateway_settings(internals.redis_url, internals.ingest_addr,
                                internal_tls=trusted)
    with (serve_in_thread(start_gateway, settings) as gateway,
          grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel):
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        cast_a_vote(stub, cause_id)

        def counted() -> int:
            try:
                return stub.GetRanking(gateway_pb2.GetRankingRequest(cause_id=cause_id),
                                       metadata=bearer(PLATFORM_TOKEN),
                                       timeout=TIMEOUT_S).votes_counted
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                    raise
                return 0

        eventually(counted, "the vote counted by the ranker, read through TLS",
                   until=lambda n: n == 1)


def test_a_gateway_dialling_them_in_plaintext_gets_no_answer(
        internals: Internals, cause_id: str) -> None:
    settings = gateway_settings(internals.redis_url, internals.ingest_addr,
                                internal_timeout_s=3)
    with (serve_in_thread(start_gateway, settings) as gateway,
          grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel):
        with pytest.raises(grpc.RpcError) as refused:
            cast_a_vote(gateway_pb2_grpc.GatewayServiceStub(channel), cause_id)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]


def test_the_health_probe_checks_them_over_tls(internals: Internals, tmp_path: Path) -> None:
    trusted = internals.certificate.cert.read_bytes()
    for addr in (internals.ingest_addr, internals.ranker_addr):
        assert health_probe.check(addr, tls_trusted=trusted,
                                  tls_name=NAME) == health_probe.SERVING
        assert health_probe.check(addr, timeout_s=1.0) == health_probe.UNREACHABLE
    stranger = self_signed(tmp_path, NAME).cert.read_bytes()
    assert health_probe.check(internals.ingest_addr, timeout_s=1.0, tls_trusted=stranger,
                              tls_name=NAME) == health_probe.UNREACHABLE
