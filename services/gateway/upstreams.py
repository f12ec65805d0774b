"""The gateway's channels to the internal services: ingest, and the ranker that serves each
cause, found in the directory of live rankers (pairwise.ranker_directory); every call on
them carries the internal secret (pairwise.internal_auth)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc

from pairwise import errors, internal_auth, ranker_directory
from pairwise.redis_scripts import ScriptRunner
from pairwise.v1 import ingest_pb2_grpc, ranker_pb2_grpc

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _channel_options(service: str, *, attempts: int, backoff_s: float,
                     max_backoff_s: float) -> list[tuple[str, object]]:
    """Options of a channel to `service`, whose calls are retried on UNAVAILABLE only:
    every internal call is a read or an idempotent write (votes carry a vote_id or
    idempotency key), so a repeat cannot double-count. A name resolving to several
    addresses is balanced over all of them."""
    config = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
        "name": [{"service": service}],
        "retryPolicy": {
            "maxAttempts": attempts,
            "initialBackoff": f"{backoff_s}s",
            "maxBackoff": f"{max_backoff_s}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]})
    return [
        ("grpc.service_config", config),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.keepalive_time_ms", 30_000),
        # A restarted service is reconnected to within a second of serving again: gRPC's
        # defaults wait 1 s after the first failed attempt, 1.6 times longer after each
        # (up to 120 s), so a restart of a few seconds left calls failing for seconds more.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
    ]


_INGEST_OPTIONS = _channel_options("pairwise.v1.IngestService", attempts=4, backoff_s=0.1,
                                   max_backoff_s=1.0)
# A ranker answers UNAVAILABLE for a cause whose lease its previous owner still holds (a
# hand-over: a few short retries see it through) or because it is gone, when retrying the
# same address is useless until the directory drops it: `Rankers.call` then reads the
# directory again rather than wait here.
_RANKER_OPTIONS = _channel_options("pairwise.v1.RankerService", attempts=3, backoff_s=0.05,
                                   max_backoff_s=0.2)

# Calls still in flight on the channel of a ranker that left the directory get this long
# (seconds) to finish before the channel closes.
_LEFT_CHANNEL_GRACE_S = 5.0


class Rankers:
    """The live rankers as the directory lists them (re-read every `refresh_s` seconds, and
    when a call finds a cause moved), one channel to each; create inside the event loop.

    A ranker answers FAILED_PRECONDITION for a cause another ranker owns, and UNAVAILABLE
    while the cause's previous owner still holds its lease (or when it is down, after the
    channel's own retries): `call` re-reads the directory and tries once more, then answers
    UNAVAILABLE, so a client sees a hand-over only as a retryable moment.
    """

    def __init__(self, scripts: ScriptRunner, *, refresh_s: float, internal_secret: str,
                 internal_tls: internal_auth.ClientTls | None = None) -> None:
        self._scripts = scripts
        self._internal_secret = internal_secret
        self._internal_tls = internal_tls
        self._refresh_s = refresh_s
        self._live: dict[str, str] = {}
        self._stubs: dict[str, tuple[grpc.aio.Channel, ranker_pb2_grpc.RankerServiceStub]] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._background: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Read the directory now and every `refresh_s` seconds, in the background."""
        self._background = asyncio.get_running_loop().create_task(
            self._refresh_forever(), name="refresh-rankers")

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)
        for channel, _ in self._stubs.values():
            await channel.close()

    def stub_for(self, cause_id: str) -> ranker_pb2_grpc.RankerServiceStub:
        """The stub of the ranker that owns `cause_id` as the gateway last read the directory.

        Raises errors.Unavailable when no ranker is live.
        """
        owner = ranker_directory.owner_of(cause_id, self._live)
        if owner is None:
            raise errors.Unavailable("no ranker is live; retry")
        address = self._live[owner]
        if address not in self._stubs:
            channel = internal_auth.channel(address, self._internal_tls, _RANKER_OPTIONS)
            stub = internal_auth.authenticated(ranker_pb2_grpc.RankerServiceStub(channel),
                                               self._internal_secret)
            self._stubs[address] = (channel, stub)
        return self._stubs[address][1]

    async def call(self, cause_id: str,
                   method: Callable[[ranker_pb2_grpc.RankerServiceStub], Awaitable[T]]) -> T:
        """`method` called on the stub of `cause_id`'s ranker; on a moved cause or an
        unavailable ranker, once more after reading the directory again.

        Raises errors.Unavailable when the cause is still moving after that.
        """
        if not self._live:
            await self.refresh()
        try:
            return await method(self.stub_for(cause_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION,
                                  grpc.StatusCode.UNAVAILABLE):
                raise
        await self.refresh()
        try:
            return await method(self.stub_for(cause_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.FAILED_PRECONDITION:
                raise errors.Unavailable(
                    f"cause {cause_id!r} is moving between rankers; retry") from None
            raise

    async def refresh(self) -> None:
        """Read the directory again (concurrent callers share one read)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._read())
        await asyncio.shield(self._refreshing)

    async def _read(self) -> None:
        live = await ranker_directory.live(self._scripts)
        if live != self._live:
            logger.info("live rankers changed", extra={"rankers": sorted(live.values())})
        self._live = live
        for address in set(self._stubs) - set(live.values()):
            channel, _ = self._stubs.pop(address)
            closing = asyncio.get_running_loop().create_task(
                channel.close(_LEFT_CHANNEL_GRACE_S))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("could not read the directory of rankers; retrying",
                               extra={"error": repr(exc)})
            await asyncio.sleep(self._refresh_s)


class IngestStubs:
    """Ingest's methods over `n_channels` connections to `addr`, each call on the next one.

    Ingest is stateless: any number of processes may serve one address (sharing its port
    with SO_REUSEPORT on a host, or behind one DNS name listing every replica). The kernel
    or the resolver spreads connections, not calls, so one connection would feed one
    process: each channel keeps its own connection (a local subchannel pool), and a name
    that resolves to several addresses is balanced call by call over all of them
    (round_robin).
    """

    def __init__(self, addr: str, n_channels: int, *, internal_secret: str,
                 internal_tls: internal_auth.ClientTls | None = None) -> None:
        self._channels = [
            internal_auth.channel(addr, internal_tls, [
                *_INGEST_OPTIONS, ("grpc.use_local_subchannel_pool", 1)])
            for _ in range(n_channels)]
        self._stubs = [internal_auth.authenticated(ingest_pb2_grpc.IngestServiceStub(c),
                                                   internal_secret)
                       for c in self._channels]
        self._next = itertools.cycle(self._stubs)

    def __getattr__(self, method: str) -> Any:
        return getattr(next(self._next), method)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


class Upstreams:
    """grpc.aio channels to ingest and to the rankers; create inside the event loop."""

    def __init__(self, ingest_addr: str, rankers: Rankers, *, internal_secret: str,
                 internal_tls: internal_auth.ClientTls | None = None,
                 ingest_channels: int = 1) -> None:
        self._ingest = IngestStubs(ingest_addr, ingest_channels, internal_secret=internal_secret,
                                   internal_tls=internal_tls)
        # Typed as the stub it stands for: every attribute is one of its methods.
        self.ingest = cast(ingest_pb2_grpc.IngestServiceStub, self._ingest)
        self.rankers = rankers

    async def close(self) -> None:
        await self.rankers.close()
        await self._ingest.close()
