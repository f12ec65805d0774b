"""The embedded Redis of tests and local runs: on a unix socket it needs no port at all; on a
port it chose, it survives another process taking that port first, and never mistakes
another server on it for its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from conftest import ADMIN_TOKEN, bearer, gateway_settings, serve_in_thread

from gateway.server import start as start_gateway
from pairwise import embedded_redis
from pairwise.embedded_redis import EmbeddedRedis, ServerExited
from pairwise.redis_client import shown
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc


def owner_pid(server: EmbeddedRedis) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def ports_offering_first(taken: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the next free-port choice `taken`, as if it were lost in a race."""
    offered: list[int] = []
    real = embedded_redis.free_port

    def racing() -> int:
        port = taken if not offered else real()
        offered.append(port)
        return port

    monkeypatch.setattr(embedded_redis, "free_port", racing)
    return offered


def test_a_unix_socket_server_serves_without_a_port(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r", unix_socket=True).start()
    try:
        assert server.url == f"unix://{(tmp_path / 'r' / 'redis.sock').resolve()}?db=0"
        assert owner_pid(server) == server.process.pid  # type: ignore[union-attr]
        client = redis.Redis.from_url(server.url.replace("db=0", "db=2"))
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
    finally:
        server.stop()


def test_a_port_taken_before_the_server_binds_it_is_replaced(
        tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = listener.getsockname()[1]
    offered = ports_offering_first(taken, monkeypatch)
    server = EmbeddedRedis(tmp_path / "r").start()
    try:
        assert offered[0] == taken and server.port == offered[-1] != taken
        assert owner_pid(server) == server.process.pid  # type: ignore[union-attr]
    finally:
        server.stop()


def test_another_redis_on_the_chosen_port_is_not_taken_for_ours(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = EmbeddedRedis(tmp_path / "other").start()
    try:
        ports_offering_first(other.port, monkeypatch)
        server = EmbeddedRedis(tmp_path / "ours").start()
        try:
            assert server.port != other.port
            assert owner_pid(server) == server.process.pid  # type: ignore[union-attr]
        finally:
            server.stop()
    finally:
        other.stop()


def test_a_port_asked_for_by_number_is_not_replaced(tmp_path: Path,
                                                    listener: socket.socket) -> None:
    with pytest.raises(ServerExited, match="Address already in use"):
        EmbeddedRedis(tmp_path / "r", port=listener.getsockname()[1]).start()


def test_a_password_protected_server_refuses_clients_without_it(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r", password="pa:ss/w@rd-of-the-run").start()
    try:
        assert redis.Redis.from_url(server.url).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=server.port, socket_timeout=5).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=server.port, password="guess", socket_timeout=5).ping()
        cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()  # type: ignore[union-attr]
        assert b"pa:ss" not in cmdline
        assert "pa:ss" not in shown(server.url) and shown(server.url).startswith("redis://:***@")
    finally:
        server.stop()
    socket_server = EmbeddedRedis(tmp_path / "s", unix_socket=True, password="secret").start()
    try:
        assert redis.Redis.from_url(socket_server.url).ping()
        assert shown(socket_server.url).endswith("?db=0&password=***")
    finally:
        socket_server.stop()


def test_each_service_connects_as_its_own_user_which_cannot_run_dangerous_commands(
        tmp_path: Path) -> None:
    passwords = {user: f"{user}-password-of-the-run" for user in embedded_redis.SERVICE_USERS}
    server = EmbeddedRedis(tmp_path / "r", password="operator-password",
                           service_passwords=passwords).start()
    admin = redis.Redis.from_url(server.url)
    try:
        # No password, another user's password, or none of them: refused.
        for stranger in (redis.Redis(port=server.port, socket_timeout=5),
                         redis.Redis(port=server.port, username="ingest",
                                     password=passwords["ranker"], socket_timeout=5),
                         redis.Redis(port=server.port, username="nobody",
                                     password="operator-password", socket_timeout=5)):
            with pytest.raises(redis.exceptions.AuthenticationError):
                stranger.ping()
            stranger.close()
        # The passwords are kept as digests, off the command line.
        config = (tmp_path / "r" / "auth.conf").read_text()
        assert all(password not in config for password in passwords.values())
        for user in embedded_redis.SERVICE_USERS:
            client = redis.Redis.from_url(server.service_url(user))
            assert client.acl_whoami() == user
            # What the services run: scripts, streams, WAITAOF, their client name.
            client.client_setname(f"{user}-1")
            assert client.eval("return redis.call('XADD', KEYS[1], '*', 'k', 'v')", 1,
                               f"votes:{{{user}}}")
            assert client.execute_command("WAITAOF", 1, 0, 1000)[0] == 1
            # What no service runs: wiping, reconfiguring or stopping the server.
            for dangerous in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET", "appendonly", "no"),
                              ("ACL", "SETUSER", user, "+@all"), ("SHUTDOWN", "NOSAVE"),
                              ("MODULE", "LIST"), ("KEYS", "*")):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    client.execute_command(*dangerous)
            client.close()
        # The operator's default user may; the AOF stayed on and nothing was wiped.
        assert admin.config_get("appendonly")["appendonly"] == "yes"
        assert admin.xlen("votes:{ingest}") == 1
    finally:
        admin.close()
        server.stop()
    with pytest.raises(ValueError, match="default user's password"):
        embedded_redis.command(0, tmp_path, service_passwords=passwords)


def test_a_full_server_refuses_writes_and_evicts_nothing(tmp_path: Path) -> None:
    """`python -m pairwise.embedded_redis` (what `make up` and compose run) under
    REDIS_MAXMEMORY: past the limit a write is refused (used memory > maxmemory), every key
    already written is still there, and the gateway answers such a refusal UNAVAILABLE."""
    port = embedded_redis.free_port()
    services = Path(embedded_redis.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(services), embedded_redis.MAXMEMORY_VARIABLE: "3mb"}
    env.pop(embedded_redis.PASSWORD_VARIABLE, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pairwise.embedded_redis", "--port", str(port),
         "--dir", str(tmp_path)], env=env)
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        embedded_redis.wait_ready(f"redis://127.0.0.1:{port}/0", timeout=10)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        written = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):  # ingest: UNAVAILABLE
            for written in range(100):  # noqa: B007 — how many got in is checked below
                client.set(f"receipt:{written}", b"x" * 100_000)
        assert written > 0
        assert all(client.exists(f"receipt:{k}") for k in range(written))
        # A write through the gateway is refused UNAVAILABLE (retryable), never UNKNOWN.
        with serve_in_thread(start_gateway, gateway_settings(
                f"redis://127.0.0.1:{port}/0", "127.0.0.1:1")) as gateway, \
                grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            with pytest.raises(grpc.RpcError) as refused:
                gateway_pb2_grpc.GatewayServiceStub(channel).CreateCause(
                    gateway_pb2.CreateCauseRequest(cause_id="full", title="Q ?"),
                    metadata=bearer(ADMIN_TOKEN), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "maxmemory" in refused.value.details()
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
