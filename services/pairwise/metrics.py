"""Prometheus metrics of every service: what each one counts, the gRPC interceptor that times
every call, and the HTTP endpoint Prometheus scrapes (off unless a port is set).

Names follow the prometheus-client conventions (counters end in `_total`, durations are
histograms in seconds, sizes in bytes). The gRPC families use the names of the Go and Java
interceptors (`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`), so dashboards made for those read ours too:

    grpc_server_*                       every service: calls by service, method and code
    pairwise_ingest_votes_total         ingest: votes by path (interactive, bulk) and outcome
                                        (accepted, duplicate, rejected)
    pairwise_ingest_backlog_votes       ingest: per cause, accepted votes not yet in a ranker
                                        checkpoint (its last reading; what backpressure uses)
    pairwise_ranker_fit_seconds / _fit_iterations      ranker: each refit
    pairwise_ranker_checkpoint_seconds / _bytes        ranker: each checkpoint written
    pairwise_ranker_cause_events_total  ranker: causes loaded, unloaded, handed over, lost
    pairwise_ranker_causes_loaded       ranker: causes loaded now
    pairwise_ranker_lag_votes / _lag_seconds           ranker: per loaded cause, votes read
                                        but not in the published ranking yet, and how old that
                                        ranking is while they wait

The metric objects live in the process-wide default registry (prometheus-client's own
convention): a process serving several services counts them all, told apart by labels.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pairwise.config import env_int, env_str
from pairwise.handler_wrapping import WrappingInterceptor

logger = logging.getLogger(__name__)

# Latency buckets (s) from a cached read (~1 ms) to a deadline-bound call (10 s).
_RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0)

RPC_STARTED = Counter("grpc_server_started", "RPCs started on the server.",
                      ("grpc_type", "grpc_service", "grpc_method"))
RPC_HANDLED = Counter("grpc_server_handled", "RPCs completed on the server, by status code.",
                      ("grpc_type", "grpc_service", "grpc_method", "grpc_code"))
RPC_SECONDS = Histogram("grpc_server_handling_seconds",
                        "Time from the start of an RPC to its answer (streams: to their end).",
                        ("grpc_type", "grpc_service", "grpc_method"), buckets=_RPC_BUCKETS)

VOTES = Counter("pairwise_ingest_votes", "Votes ingest answered, by path and outcome.",
                ("path", "outcome"))

FIT_SECONDS = Histogram("pairwise_ranker_fit_seconds",
                        "Time of one refit, from cutting its input to publishing the ranking.",
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
FIT_ITERATIONS = Histogram("pairwise_ranker_fit_iterations", "Solver iterations of one refit.",
                           buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233))
CHECKPOINT_SECONDS = Histogram("pairwise_ranker_checkpoint_seconds",
                               "Time to write one checkpoint and acknowledge its entries.",
                               buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5, 1.0, 2.5))
CHECKPOINT_BYTES = Histogram("pairwise_ranker_checkpoint_bytes",
                             "Bytes of one checkpoint write (a delta, or a whole base).",
                             buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                                      16777216, 67108864))
CAUSE_EVENTS = Counter("pairwise_ranker_cause_events",
                       "Causes this ranker loaded (under its lease), unloaded when idle, handed "
                       "over to their new owner, or closed because their lease was lost.",
                       ("event",))


# -- the gRPC interceptor -----------------------------------------------------------------


def _split(method: str) -> tuple[str, str]:
    """("pairwise.v1.GatewayService", "NextPair") from "/pairwise.v1.GatewayService/NextPair"."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def _code(context: grpc.aio.ServicerContext) -> str:
    """The status the call ends with: set by the servicer or an abort (a StatusCode, or the
    core's number for it), OK when none was."""
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return _CODE_NAMES.get(int(code), "UNKNOWN")


class RpcMetricsInterceptor(WrappingInterceptor):
    """Counts each call when it starts and when it ends (with its status code) and times it;
    first of a server's interceptors, so the codes are those the client sees."""

    def __init__(self) -> None:
        super().__init__(lambda handler, method: _timed(handler, *_split(method)))


class _CallMetrics:
    """The metric children of one method: looked up once, not on every call."""

    __slots__ = ("started", "seconds", "labels", "handled")

    def __init__(self, kind: str, service: str, method: str) -> None:
        self.labels = (kind, service, method)
        self.started = RPC_STARTED.labels(*self.labels)
        self.seconds = RPC_SECONDS.labels(*self.labels)
        self.handled: dict[str, Any] = {}

    def done(self, code: str, began: float) -> None:
        self.seconds.observe(time.perf_counter() - began)
        counter = self.handled.get(code)
        if counter is None:
            counter = self.handled[code] = RPC_HANDLED.labels(*self.labels, code)
        counter.inc()


def _ended(context: grpc.aio.ServicerContext, exc: BaseException) -> str:
    """The code a call that raised `exc` ends with."""
    if isinstance(exc, grpc.aio.AbortError):
        return _code(context)
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        # The client went away (or its deadline passed) before the answer.
        return "CANCELLED"
    return "UNKNOWN"


def _timed(handler: grpc.RpcMethodHandler, service: str, method: str) -> grpc.RpcMethodHandler:
    if handler.unary_unary or handler.stream_unary:
        # One answer, whether the request is one message or a stream of them.
        inner = handler.unary_unary or handler.stream_unary
        calls = _CallMetrics("unary" if handler.unary_unary else "client_stream",
                             service, method)

        async def one_answer(request_or_iterator, context):  # type: ignore[no-untyped-def]
            calls.started.inc()
            began = time.perf_counter()
            try:
                reply = await inner(request_or_iterator, context)
            except BaseException as exc:
                calls.done(_ended(context, exc), began)
                raise
            calls.done(_code(context), began)
            return reply
        make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler)
        return make(one_answer, handler.request_deserializer, handler.response_serializer)
    if handler.unary_stream:
        inner_us = handler.unary_stream
        calls_us = _CallMetrics("server_stream", service, method)

        async def unary_stream(request, context):  # type: ignore[no-untyped-def]
            calls_us.started.inc()
            began = time.perf_counter()
            try:
                async for response in inner_us(request, context):
                    yield response
            except BaseException as exc:
                calls_us.done(_ended(context, exc), began)
                raise
            calls_us.done(_code(context), began)
        return grpc.unary_stream_rpc_method_handler(
            unary_stream, handler.request_deserializer, handler.response_serializer)
    return handler


# -- per-cause gauges, read when scraped --------------------------------------------------


GaugeReading = tuple[str, str, "dict[str, float] | float"]


class PerCauseGauges(Collector):
    """Gauges read from `read()` at each scrape (nothing is kept per vote): `read()` yields
    (metric name, help, {cause: value}) for the causes this process has now, so an unloaded
    cause drops out of the next scrape; or (name, help, value) for a gauge of the process."""

    def __init__(self, read: Callable[[], Iterable[GaugeReading]]) -> None:
        self._read = read

    def describe(self) -> list[Any]:
        # Nothing to check at registration: the families are known only when read.
        return []

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, documentation, values in self._read():
            if not isinstance(values, dict):
                yield GaugeMetricFamily(name, documentation, value=values)
                continue
            family = GaugeMetricFamily(name, documentation, labels=("cause",))
            for cause_id, value in values.items():
                family.add_metric((cause_id,), value)
            yield family


# -- the endpoint ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsSettings:
    """Where a service serves /metrics: off when `port` is 0. Several processes of one kind
    on one host (replicas sharing their gRPC port) each take the first free port of
    `port`, `port + 1`, ... `port + port_range - 1`."""

    host: str = "127.0.0.1"
    port: int = 0
    port_range: int = 1

    @property
    def enabled(self) -> bool:
        return self.port > 0

    @classmethod
    def from_env(cls, service: str) -> MetricsSettings:
        """`<SERVICE>_METRICS_PORT` (0: off), `METRICS_HOST`, `METRICS_PORT_RANGE`."""
        settings = cls(host=env_str("METRICS_HOST", "127.0.0.1"),
                       port=env_int(f"{service.upper()}_METRICS_PORT", 0),
                       port_range=env_int("METRICS_PORT_RANGE", 1))
        if settings.port < 0 or settings.port_range < 1:
            raise SystemExit(f"settings {service.upper()}_METRICS_PORT must be >= 0 and "
                             f"METRICS_PORT_RANGE >= 1, got {settings.port} and "
                             f"{settings.port_range}")
        return settings


OFF = MetricsSettings()


@dataclass
class MetricsEndpoint:
    """A running /metrics server; `close()` stops it."""

    port: int
    _server: Any
    _collectors: list[Collector]

    def add(self, collector: Collector) -> None:
        """Serve `collector` too until close."""
        REGISTRY.register(collector)
        self._collectors.append(collector)

    def close(self) -> None:
        for collector in self._collectors:
            REGISTRY.unregister(collector)
        self._collectors.clear()
        self._server.shutdown()
        self._server.server_close()


def serve(settings: MetricsSettings) -> MetricsEndpoint | None:
    """Start the /metrics HTTP server (a thread of prometheus-client), or None when off.

    Raises SystemExit naming the ports when none of the range is free.
    """
    if not settings.enabled:
        return None
    last: OSError | None = None
    for port in range(settings.port, settings.port + settings.port_range):
        try:
            server, _thread = start_http_server(port, addr=settings.host)
        except OSError as exc:
            last = exc
            continue
        logger.info("metrics served", extra={"host": settings.host, "port": port})
        return MetricsEndpoint(port, server, [])
    raise SystemExit(f"cannot serve metrics on {settings.host} ports {settings.port}-"
                     f"{settings.port + settings.port_range - 1}: {last}")
