"""A gateway serving TLS (GATEWAY_TLS_CERT / GATEWAY_TLS_KEY), with a self-signed certificate
made for the test: the documented Python client votes through it, a client that does not
trust the certificate or speaks plaintext gets no answer, the health probe checks it, and a
bad identity stops start-up naming the settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    Certificate,
    Cluster,
    bearer,
    gateway_settings,
    self_signed,
    serve_in_thread,
)

from gateway.server import start as start_gateway
from pairwise import health_probe
from pairwise.tls import ServerIdentity
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "vote_flow.py"
TIMEOUT_S = 10


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return self_signed(tmp_path_factory.mktemp("tls"), "gateway.test")


def identity(certificate: Certificate) -> ServerIdentity | None:
    return ServerIdentity.from_files("GATEWAY_TLS_CERT", str(certificate.cert),
                                     "GATEWAY_TLS_KEY", str(certificate.key))


@pytest.fixture(scope="module")
def tls_gateway(cluster: Cluster, redis_url: str, certificate: Certificate) -> Iterator[str]:
    """A gateway of the session's cluster serving TLS; its address."""
    settings = gateway_settings(redis_url, cluster.ingest_addr, tls=identity(certificate))
    with serve_in_thread(start_gateway, settings) as running:
        yield f"127.0.0.1:{running.port}"


def test_the_documented_client_votes_over_tls(tls_gateway: str, certificate: Certificate,
                                              cause_id: str) -> None:
    env = {**os.environ, "PAIRWISE_ADMIN_TOKEN": ADMIN_TOKEN,
           "PAIRWISE_PLATFORM_TOKEN": PLATFORM_TOKEN}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--gateway", tls_gateway, "--cause", cause_id,
         "--voters", "2", "--votes-per-voter", "2", "--tls-ca", str(certificate.cert),
         "--tls-name", "gateway.test"],
        env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ranking of 4 proposals, 4 votes counted" in done.stdout


def create_cause(channel: grpc.Channel, cause_id: str) -> None:
    gateway_pb2_grpc.GatewayServiceStub(channel).CreateCause(
        gateway_pb2.CreateCauseRequest(cause_id=cause_id, title="t"),
        metadata=bearer(ADMIN_TOKEN), timeout=TIMEOUT_S)


def test_clients_that_do_not_trust_the_certificate_or_speak_plaintext_get_no_answer(
        tls_gateway: str, certificate: Certificate, tmp_path: Path, cause_id: str) -> None:
    stranger = self_signed(tmp_path, "gateway.test")  # same name, another key
    attempts = {
        "plaintext": grpc.insecure_channel(tls_gateway),
        "the system's CAs": grpc.secure_channel(
            tls_gateway, grpc.ssl_channel_credentials(),
            options=[("grpc.ssl_target_name_override", "gateway.test")]),
        "another certificate": grpc.secure_channel(
            tls_gateway, grpc.ssl_channel_credentials(stranger.cert.read_bytes()),
            options=[("grpc.ssl_target_name_override", "gateway.test")]),
        "another name": grpc.secure_channel(
            tls_gateway, grpc.ssl_channel_credentials(certificate.cert.read_bytes()),
            options=[("grpc.ssl_target_name_override", "elsewhere.test")]),
    }
    for what, channel in attempts.items():
        with channel, pytest.raises(grpc.RpcError) as refused:
            create_cause(channel, cause_id)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE, what  # type: ignore[attr-defined]
    # The right trust and name: the same call answers (and created the cause only now).
    with grpc.secure_channel(
            tls_gateway, grpc.ssl_channel_credentials(certificate.cert.read_bytes()),
            options=[("grpc.ssl_target_name_override", "gateway.test")]) as channel:
        create_cause(channel, cause_id)


def test_the_health_probe_checks_a_tls_gateway(tls_gateway: str,
                                               certificate: Certificate) -> None:
    trusted = certificate.cert.read_bytes()
    assert health_probe.check(tls_gateway, tls_trusted=trusted,
                              tls_name="gateway.test") == health_probe.SERVING
    assert health_probe.check(tls_gateway, timeout_s=1.0) == health_probe.UNREACHABLE
    probe = subprocess.run(
        [sys.executable, "-m", "pairwise.health_probe", tls_gateway, "--tls-cert",
         str(certificate.cert), "--tls-name", "gateway.test"],
        capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and probe.stdout.strip() == "SERVING", probe.stderr


def test_a_bad_tls_identity_stops_start_up_naming_the_settings(
        certificate: Certificate, tmp_path: Path, redis_url: str) -> None:
    with pytest.raises(SystemExit, match="GATEWAY_TLS_KEY is missing"):
        ServerIdentity.from_files("GATEWAY_TLS_CERT", str(certificate.cert),
                                  "GATEWAY_TLS_KEY", "")
    with pytest.raises(SystemExit, match="GATEWAY_TLS_CERT: cannot read"):
        ServerIdentity.from_files("GATEWAY_TLS_CERT", str(tmp_path / "absent.crt"),
                                  "GATEWAY_TLS_KEY", str(certificate.key))
    with pytest.raises(SystemExit, match="GATEWAY_TLS_CERT: .* holds no PEM certificate"):
        ServerIdentity.from_files("GATEWAY_TLS_CERT", str(certificate.key),
                                  "GATEWAY_TLS_KEY", str(certificate.key))
    # Both files PEM, but the key is another certificate's: refused when the port is bound.
    other = self_signed(tmp_path, "other.test")
    mismatched = ServerIdentity.from_files("GATEWAY_TLS_CERT", str(certificate.cert),
                                           "GATEWAY_TLS_KEY", str(other.key))
    settings = gateway_settings(redis_url, "127.0.0.1:1", tls=mismatched)
    with pytest.raises(SystemExit, match="GATEWAY_TLS_CERT / GATEWAY_TLS_KEY"):
        with serve_in_thread(start_gateway, settings):
            pass
