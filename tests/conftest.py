"""Shared fixtures: a real Redis server (embedded Valkey, AOF on) and real gRPC servers on
loopback ports, each service started in its own thread and event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import redis

from pairwise import keys
from pairwise.embedded_redis import EmbeddedRedis
from pairwise.grpc_server import RunningServer

ADMIN_TOKEN = "test-admin-token"
PLATFORM_TOKEN = "test-platform-token"
TOKEN_SECRET = b"test-prompt-token-secret"


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
    running = ready.result(timeout=30)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0.5), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
def cause_id() -> str:
    """A fresh cause id per test, so tests share one Redis without seeing each other."""
    return f"t-{uuid.uuid4().hex[:12]}"


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


def ingest_settings(redis_url: str, **overrides: Any) -> Any:
    from ingest.settings import Settings

    return Settings(redis_url=redis_url, token_secret=TOKEN_SECRET, port=0, **overrides)


def ranker_settings(redis_url: str, **overrides: Any) -> Any:
    from ranker.settings import Settings

    fast = {"fit_interval_s": 0.1, "checkpoint_interval_s": 0.3, "discover_interval_s": 0.1}
    return Settings(redis_url=redis_url, port=0, **{**fast, **overrides})


def gateway_settings(redis_url: str, ingest_addr: str, ranker_addr: str,
                     **overrides: Any) -> Any:
    from gateway.settings import Settings

    return Settings(redis_url=redis_url, admin_token=ADMIN_TOKEN, platform_token=PLATFORM_TOKEN,
                    token_secret=TOKEN_SECRET, ingest_addr=ingest_addr,
                    ranker_addrs=(ranker_addr,), port=0, **overrides)


@pytest.fixture(scope="session")
def cluster(redis_url: str) -> Iterator[Cluster]:
    """Ingest, ranker and gateway in-process, sharing the session's Redis."""
    from gateway.server import start as start_gateway
    from ingest.server import start as start_ingest
    from ranker.server import start as start_ranker

    with (serve_in_thread(start_ingest, ingest_settings(redis_url)) as ingest,
          serve_in_thread(start_ranker, ranker_settings(redis_url)) as ranker):
        ingest_addr = f"127.0.0.1:{ingest.port}"
        ranker_addr = f"127.0.0.1:{ranker.port}"
        with serve_in_thread(start_gateway,
                             gateway_settings(redis_url, ingest_addr, ranker_addr)) as gateway:
            yield Cluster(f"127.0.0.1:{gateway.port}", ingest_addr, ranker_addr)


def wait_counted_equals_accepted(cluster: Cluster, cause_ids: set[str],
                                 timeout_s: float = 20.0) -> None:
    """Assert each cause's ranking reflects exactly the votes ingest accepted (polls)."""
    from pairwise.v1 import gateway_pb2, gateway_pb2_grpc

    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        for cause in sorted(cause_ids):
            deadline = time.monotonic() + timeout_s
            while True:
                stats = stub.GetCauseStats(gateway_pb2.GetCauseStatsRequest(cause_id=cause),
                                           metadata=cluster.admin, timeout=5)
                if stats.votes_counted == stats.votes_accepted or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert stats.votes_counted == stats.votes_accepted, (
                f"cause {cause}: {stats.votes_accepted} votes accepted but "
                f"{stats.votes_counted} counted")


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
