"""Publishing from a gateway that serves TLS (a self-signed certificate made for the test):
`python -m pairwise export` dials it with the certificate it is told to trust, ArchiveCause
writes its archive through the gateway's own loopback port, and the operator's console signs
in and shows a cause through it. A client that does not trust the certificate, or speaks
plaintext, gets no export."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    ADMIN_TOKEN,
    Certificate,
    Cluster,
    bearer,
    eventually,
    gateway_settings,
    self_signed,
    serve_in_thread,
)
from test_console import Operator

from console.server import start as start_console
from console.settings import Settings as ConsoleSettings
from gateway.server import start as start_gateway
from pairwise.tls import GatewayClientTls, ServerIdentity, gateway_channel
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2
from publishing.exporter import CHANNEL_OPTIONS
from publishing.recompute import recompute

ADMIN = bearer(ADMIN_TOKEN)
NAME = "gateway.test"
PROPOSALS = [f"p{k}" for k in range(6)]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"), NAME)


@pytest.fixture(scope="module")
def tls_gateway(cluster: Cluster, redis_url: str, certificate: Certificate,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway of the session's cluster serving TLS only, archiving into a folder of its
    own; its address."""
    identity = ServerIdentity.from_files("GATEWAY_TLS_CERT", str(certificate.cert),
                                         "GATEWAY_TLS_KEY", str(certificate.key))
    settings = gateway_settings(redis_url, cluster.ingest_addr, tls=identity,
                                archive_dir=str(tmp_path_factory.mktemp("tls-archives")))
    with serve_in_thread(start_gateway, settings) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture
def client_tls(certificate: Certificate) -> GatewayClientTls:
    return GatewayClientTls(certificate.cert.read_bytes(), NAME)


@pytest.fixture
def stub(tls_gateway: str,
         client_tls: GatewayClientTls) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with gateway_channel(tls_gateway, client_tls, CHANNEL_OPTIONS) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def counted_cause(stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str) -> int:
    """A cause with 300 imported votes, every one counted; the votes."""
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="TLS"), metadata=ADMIN,
                     timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=f"proposal {pid}") for pid in PROPOSALS]),
        metadata=ADMIN, timeout=5)
    pairs = [(k % 6, (k + 1 + k // 6) % 6) for k in range(300)]
    votes = [types_pb2.ImportedVote(vote_id=f"imp-{k}", cause_id=cause_id, voter_id=f"u{k % 30}",
                                    winner_id=PROPOSALS[a], loser_id=PROPOSALS[b])
             for k, (a, b) in enumerate(pairs) if a != b]
    reply = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=votes)]), metadata=ADMIN,
                             timeout=30)
    assert reply.accepted == len(votes)
    eventually(lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, limit=1),
                                       metadata=ADMIN, timeout=5),
               "every vote counted", until=lambda r: r.votes_counted == len(votes))
    return len(votes)


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_TLS")}
    return subprocess.run([sys.executable, "-m", "pairwise", *map(str, args)],
                          env={**env, "PAIRWISE_ADMIN_TOKEN": ADMIN_TOKEN},
                          capture_output=True, text=True, timeout=120)


def test_the_export_command_trusts_the_certificate_it_is_given(
        stub: gateway_pb2_grpc.GatewayServiceStub, tls_gateway: str, certificate: Certificate,
        cause_id: str, tmp_path: Path) -> None:
    votes = counted_cause(stub, cause_id)

    untrusted = run_cli("export", "--cause", cause_id, "--out", tmp_path / "no",
                        "--gateway", tls_gateway, "--tls")
    assert untrusted.returncode == 2 and "UNAVAILABLE" in untrusted.stderr
    plaintext = run_cli("export", "--cause", cause_id, "--out", tmp_path / "no",
                        "--gateway", tls_gateway)
    assert plaintext.returncode == 2 and "UNAVAILABLE" in plaintext.stderr
    missing = run_cli("export", "--cause", cause_id, "--out", tmp_path / "no",
                      "--gateway", tls_gateway, "--tls-ca", tmp_path / "none.crt")
    assert missing.returncode == 2 and "--tls-ca" in missing.stderr

    done = run_cli("export", "--cause", cause_id, "--out", tmp_path / "export",
                   "--gateway", tls_gateway, "--tls-ca", certificate.cert, "--tls-name", NAME)
    assert done.returncode == 0, done.stderr
    assert f"{votes:,} votes" in done.stdout
    report = recompute(tmp_path / "export")
    assert report.matches, report


def test_a_cause_is_archived_through_a_gateway_serving_tls(
        stub: gateway_pb2_grpc.GatewayServiceStub, cause_id: str) -> None:
    votes = counted_cause(stub, cause_id)
    stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id), metadata=ADMIN, timeout=5)
    eventually(lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id),
                                       metadata=ADMIN, timeout=5),
               "the final ranking", until=lambda r: r.final)

    reply = eventually(lambda: stub.ArchiveCause(gw.ArchiveCauseRequest(
        cause_id=cause_id, reason="published"), metadata=ADMIN, timeout=60), "archived")

    assert reply.votes_archived == votes
    assert reply.cause.state == types_pb2.CAUSE_STATE_ARCHIVED
    report = recompute(Path(reply.cause.archive))
    assert report.matches, report


def test_the_console_works_through_a_gateway_serving_tls(
        stub: gateway_pb2_grpc.GatewayServiceStub, tls_gateway: str,
        client_tls: GatewayClientTls, cause_id: str) -> None:
    votes = counted_cause(stub, cause_id)
    console = start_console(ConsoleSettings(gateway_addr=tls_gateway, port=0,
                                            gateway_tls=client_tls))
    try:
        operator = Operator(console.port)
        signed_in = operator.sign_in()
        assert signed_in.status == 303, signed_in.body
        page = operator.request("GET", f"/causes/{cause_id}")
        assert page.status == 200
        assert f'id="ranking-counted">{votes:,}<' in page.body
    finally:
        console.stop()
