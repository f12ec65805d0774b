"""Shared fixtures: a real Redis server (embedded Valkey, AOF on, on a unix socket) and real
gRPC servers on loopback ports they choose (port 0, read back), each service started in its
own thread and event loop; and `eventually`, the one way a test waits for a condition."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import redis

from pairwise import internal_auth, keys
from pairwise.embedded_redis import EmbeddedRedis
from pairwise.grpc_server import RunningServer
from pairwise.prompt_token import TokenKeys

ADMIN_TOKEN = "test-admin-token"
PLATFORM_TOKEN = "test-platform-token"
TOKEN_KEYS = TokenKeys(b"test-prompt-token-secret-of-32-bytes")
INTERNAL_SECRET = "test-internal-secret-of-32-bytes-at-least"

T = TypeVar("T")
S = TypeVar("S")


def eventually(probe: Callable[[], T], what: str, *, until: Callable[[T], object] = bool,
               timeout: float = 30.0, interval: float = 0.05) -> T:
    """The first value of `probe()` that satisfies `until` (by default: is truthy), probing
    every `interval` seconds; after `timeout` seconds the test fails naming `what` and the
    last value seen.

    The one way tests wait for what another thread or process does: on the condition
    itself, never on a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if until(last):
            return last
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def served_port(process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> int:
    """The port a service process started with port 0 bound, read back from the "serving"
    line it logs (JSON lines in `log`, its stdout)."""
    def port() -> int | None:
        if process.poll() is not None:
            pytest.fail(f"{log.name}: exited with {process.returncode} before serving:\n"
                        f"{log.read_text(errors='replace')[-2000:]}")
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("msg") == "serving":
                return int(record["port"])
        return None

    return eventually(port, f"{log.name}: its 'serving' line", timeout=timeout)


@contextlib.contextmanager
def serve_in_thread(start: Callable[[Any], Awaitable[RunningServer]],
                    settings: Any) -> Iterator[RunningServer]:
    """Run `start(settings)` on a fresh event loop in a daemon thread; stop it on exit."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[RunningServer] = concurrent.futures.Future()

    def runner() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready.set_result(loop.run_until_complete(start(settings)))
        except BaseException as exc:  # surfaced to the test through `ready`
            ready.set_exception(exc)
            return
        loop.run_forever()

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()
    try:
        running = ready.result(timeout=30)
    except BaseException:
        thread.join(timeout=10)
        loop.close()
        raise
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0.5), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    # A unix socket: parallel sessions on one machine never compete for a port.
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), unix_socket=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


# The test modules that start rankers of their own, each on a Redis database of its own:
# rankers sharing a database share the directory of rankers, and a cause would then belong
# to whichever ranker rendezvous hashing picks, not to the one the test started. Database 0
# is the session cluster's; the server has 16.
OWN_DATABASES = {"internal_auth": 1, "no_ranker": 2, "ranker": 3, "selection": 4,
                 "takeover": 5, "forwarding": 6, "trust": 7, "detection": 8, "segments": 9,
                 "views": 10, "bounds": 11, "internal_tls": 12,
                 "default_view": 13}


def own_database(url: str, name: str) -> str:
    """`url` on the Redis database OWN_DATABASES gives `name` (redis://host:port/N and
    unix://path?db=N alike)."""
    db = OWN_DATABASES[name]
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}?db={db}"
    return urllib.parse.urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture
def cause_id() -> str:
    """A fresh cause id per test, so tests share one Redis without seeing each other."""
    return f"t-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def self_signed(folder: Path, name: str) -> Certificate:
    """A P-256 key and a one-day certificate for `name` (and 127.0.0.1), made by openssl
    (the project does not depend on a Python crypto library)."""
    import shutil

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed: the TLS tests make their certificates with it "
                    "(Debian: apt-get install openssl)", pytrace=False)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return Certificate(cert, key)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Cluster:
    """The three services of one test session, on loopback ports."""

    gateway_addr: str
    ingest_addr: str
    ranker_addr: str
    admin: tuple[tuple[str, str], ...] = bearer(ADMIN_TOKEN)
    platform: tuple[tuple[str, str], ...] = bearer(PLATFORM_TOKEN)

    def channel(self, addr: str | None = None) -> grpc.Channel:
        return grpc.insecure_channel(addr or self.gateway_addr)


def internal(stub: S) -> S:
    """`stub` (of ingest or a ranker) sending the internal secret the fixtures' services
    check, as the gateway does."""
    return internal_auth.authenticated(stub, INTERNAL_SECRET)


def ingest_settings(redis_url: str, **overrides: Any) -> Any:
    from ingest.settings import Settings

    return Settings(redis_url=redis_url, token_keys=TOKEN_KEYS, port=0,
                    **{"internal_secret": INTERNAL_SECRET, **overrides})


def ranker_settings(redis_url: str, **overrides: Any) -> Any:
    from ranker.settings import Settings

    fast = {"fit_interval_s": 0.1, "checkpoint_interval_s": 0.3, "discover_interval_s": 0.1}
    return Settings(redis_url=redis_url, port=0,
                    **{"internal_secret": INTERNAL_SECRET, **fast, **overrides})


def gateway_settings(redis_url: str, ingest_addr: str, **overrides: Any) -> Any:
    """A gateway's settings; it finds the rankers in the directory on `redis_url`."""
    from gateway.settings import Settings

    return Settings(redis_url=redis_url, token_keys=TOKEN_KEYS, ingest_addr=ingest_addr, port=0,
                    **{"admin_token": ADMIN_TOKEN, "platform_token": PLATFORM_TOKEN,
                       "internal_secret": INTERNAL_SECRET, **overrides})


@pytest.fixture(scope="session")
def cluster(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Ingest, ranker and gateway in-process, sharing the session's Redis."""
    from gateway.server import start as start_gateway
    from ingest.server import start as start_ingest
    from ranker.server import start as start_ranker

    # The tests vote as fast as a script can, which ingest would flag as too fast for a
    # person (INGEST_MIN_VIEW_MS) and the ranking would leave out: here every vote is
    # trusted. Trust flags have a cluster of their own (tests/integration/test_trust.py).
    with (serve_in_thread(start_ingest, ingest_settings(redis_url, min_view_ms=0)) as ingest,
          serve_in_thread(start_ranker, ranker_settings(redis_url)) as ranker):
        ingest_addr = f"127.0.0.1:{ingest.port}"
        ranker_addr = f"127.0.0.1:{ranker.port}"
        archives = str(tmp_path_factory.mktemp("archives"))
        with serve_in_thread(start_gateway, gateway_settings(
                redis_url, ingest_addr, archive_dir=archives)) as gateway:
            yield Cluster(f"127.0.0.1:{gateway.port}", ingest_addr, ranker_addr)


class RestartableCluster:
    """Ingest, ranker and gateway on the Redis at `url` (a database of its own); the ranker
    (with the gateway) can be restarted. Ingest flags votes shown for less than
    `min_view_ms` as untrusted. `stub` is a GatewayService stub on the current gateway."""

    def __init__(self, url: str, *, min_view_ms: int) -> None:
        from ingest.server import start as start_ingest

        self.url = url
        self._stack = contextlib.ExitStack()
        ingest = self._stack.enter_context(
            serve_in_thread(start_ingest, ingest_settings(url, min_view_ms=min_view_ms)))
        self.ingest_addr = f"127.0.0.1:{ingest.port}"
        self._ranker_gateway: contextlib.ExitStack | None = None
        self.gateway_addr = ""
        self._channel: grpc.Channel | None = None
        self.stub: Any = None
        self.start_ranker_and_gateway()

    def start_ranker_and_gateway(self) -> None:
        from gateway.server import start as start_gateway
        from pairwise.v1 import gateway_pb2_grpc
        from ranker.server import start as start_ranker

        stack = contextlib.ExitStack()
        stack.enter_context(serve_in_thread(start_ranker, ranker_settings(self.url)))
        gateway = stack.enter_context(serve_in_thread(start_gateway, gateway_settings(
            self.url, self.ingest_addr)))
        self._ranker_gateway = stack
        self.gateway_addr = f"127.0.0.1:{gateway.port}"
        self._channel = grpc.insecure_channel(self.gateway_addr)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)

    def restart_ranker(self) -> None:
        """Stop the ranker (and its gateway) and start new ones on the same Redis."""
        self.stop_ranker_and_gateway()
        self.start_ranker_and_gateway()

    def stop_ranker_and_gateway(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._ranker_gateway is not None:
            self._ranker_gateway.close()

    def close(self) -> None:
        self.stop_ranker_and_gateway()
        self._stack.close()


def wait_counted_equals_accepted(cluster: Cluster, cause_ids: set[str],
                                 timeout: float = 20.0) -> None:
    """Assert each cause's ranking reflects exactly the votes ingest accepted (polls)."""
    from pairwise.v1 import gateway_pb2, gateway_pb2_grpc

    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)

        def stats(cause: str) -> Any:
            return stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(cause_id=cause),
                                      metadata=cluster.admin, timeout=5)

        for cause in sorted(cause_ids):
            eventually(lambda c=cause: stats(c), f"cause {cause}: every accepted vote counted",
                       until=lambda s: s.votes_counted == s.votes_accepted, timeout=timeout)


@pytest.fixture(autouse=True)
def _every_accepted_vote_is_counted(request: pytest.FixtureRequest) -> Iterator[None]:
    """After any test that used the cluster: votes_counted == votes_accepted for its causes."""
    if "cluster" not in request.fixturenames:
        yield
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    before = {c.decode() for c in client.smembers(keys.CAUSES)}
    yield
    created = {c.decode() for c in client.smembers(keys.CAUSES)} - before
    client.close()
    wait_counted_equals_accepted(request.getfixturevalue("cluster"), created)


def pytest_report_header() -> str:
    ignored = os.environ.get("REDIS_URL", "")
    return f"tests use their own embedded Valkey (AOF on); REDIS_URL={ignored!r} is not used"
