"""The gRPC edge every service shares: server bootstrap, error mapping, answers before the
deadline, graceful shutdown.

A service's `start(settings)` builds its servicers and calls `start_server`; its
`__main__` calls `run(start, settings)`, which serves until SIGTERM/SIGINT and then
drains: health NOT_SERVING, `server.stop(grace)`, then the service's own closers.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
import redis.exceptions
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pairwise import errors, event_loop, metrics
from pairwise.handler_wrapping import WrappingInterceptor
from pairwise.tls import ServerIdentity

logger = logging.getLogger(__name__)

STATUS_OF: dict[type[errors.PairwiseError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

# Redis failures are transient for the client: every write carries an idempotency key. A
# server at its maxmemory refuses writes (noeviction) until an operator makes room. On a
# Redis Cluster, a slot moved by a failover (a MOVED a transaction does not follow: the
# client learns the new master from it, for the retry), a cluster down while it elects a
# new master, or a slot no master serves for the moment, are as transient.
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
               redis.exceptions.BusyLoadingError, redis.exceptions.OutOfMemoryError,
               redis.exceptions.AskError, redis.exceptions.TryAgainError,
               redis.exceptions.ClusterDownError, redis.exceptions.SlotNotCoveredError,
               redis.exceptions.RedisClusterUnreachableError)


T = TypeVar("T")

# A unary call still waiting on Redis or an internal service this close to its deadline is
# answered UNAVAILABLE (retryable: every write is de-duplicated) instead of being left to
# expire: a frozen Redis holds a command for the socket timeout (REDIS_SOCKET_TIMEOUT_S, 5 s),
# as long as the deadlines clients set, and the client should learn that a dependency is
# away, not only that its time ran out. The answer needs time to reach it: a tenth of the
# call's time, this much at most.
DEADLINE_MARGIN_S = 0.25
# grpc.aio reports "no deadline" as None or as an effectively infinite number of seconds.
_NO_DEADLINE_S = 1e9


_LATE = ("no answer from the vote store or an internal service before the call's deadline; "
         "retry (writes are de-duplicated)")


async def _before_deadline(call: Awaitable[T], context: grpc.aio.ServicerContext) -> T:
    """`call`'s result; the call is aborted UNAVAILABLE when it is not done as its deadline
    nears."""
    remaining = context.time_remaining()
    if remaining is None or remaining > _NO_DEADLINE_S:
        return await call
    timeout = asyncio.timeout(remaining - min(DEADLINE_MARGIN_S, remaining / 10))
    try:
        async with timeout:
            return await call
    except TimeoutError:
        if not timeout.expired():
            raise
    await context.abort(grpc.StatusCode.UNAVAILABLE, _LATE)
    raise AssertionError("abort returned")  # context.abort always raises


class DeadlineInterceptor(WrappingInterceptor):
    """Answers a unary call (or a client stream) still running near its deadline UNAVAILABLE;
    first of a server's interceptors, so that waits in the others (authentication, rate
    limits) are bounded too."""

    def __init__(self) -> None:
        super().__init__(lambda handler, _method: _bounded(handler))


def _bounded(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """`handler` answered UNAVAILABLE when still running as its call's deadline nears (a
    streamed answer has no single deadline to beat: left as it is)."""
    if not (handler.unary_unary or handler.stream_unary):
        return handler
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(request, context):  # type: ignore[no-untyped-def]
            return await _before_deadline(inner(request, context), context)
        return grpc.unary_unary_rpc_method_handler(
            unary_unary, handler.request_deserializer, handler.response_serializer)
    inner_su = handler.stream_unary

    async def stream_unary(request_iterator, context):  # type: ignore[no-untyped-def]
        return await _before_deadline(inner_su(request_iterator, context), context)
    return grpc.stream_unary_rpc_method_handler(
        stream_unary, handler.request_deserializer, handler.response_serializer)


_REFUSED_INSIDE = ("an internal service refused this service's internal secret "
                   "(PAIRWISE_INTERNAL_SECRET differs between the cluster's services)")


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status and message a client should see for `exc`, or None to let it propagate."""
    if isinstance(exc, errors.PairwiseError):
        for cls in type(exc).__mro__:
            if cls in STATUS_OF:
                return STATUS_OF[cls], str(exc)
    if isinstance(exc, _REDIS_DOWN):
        return grpc.StatusCode.UNAVAILABLE, f"vote store unavailable: {exc}"
    if isinstance(exc, grpc.aio.AioRpcError):
        if exc.code() is grpc.StatusCode.UNAUTHENTICATED:
            # The caller's own credentials passed; an internal service refusing this
            # service's is the operator's to fix, and must not read as the caller's fault.
            return grpc.StatusCode.INTERNAL, _REFUSED_INSIDE
        # An internal hop failed: pass its status through (e.g. ranker UNAVAILABLE).
        return exc.code(), exc.details() or ""
    return None


class UndecodableRequest:
    """Stands for a request whose bytes are not a valid message of the method's type.

    grpc calls a handler's deserializer before any interceptor or servicer code runs, and a
    deserializer that raises ends the call UNKNOWN with the exception's class in its details;
    the deserializers here return this instead, and the call is refused INVALID_ARGUMENT
    (naming the field "request") before its handler sees it. Interceptors that read the
    request before the handler pass this on untouched.
    """

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def error(self) -> errors.InvalidArgument:
        return errors.InvalidArgument("request", f"is not a valid message ({self.problem})")


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, returning an UndecodableRequest where it would raise DecodeError."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return UndecodableRequest(str(exc))
    return deserialize


async def _decoded(requests: Any) -> Any:
    """The messages of a request stream; InvalidArgument at the first undecodable one."""
    async for request in requests:
        if isinstance(request, UndecodableRequest):
            raise request.error()
        yield request


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    mapped = status_for(exc)
    if mapped is None:
        await _internal(context, exc, method)
    else:
        if mapped[1] == _REFUSED_INSIDE:
            logger.error(_REFUSED_INSIDE, extra={"method": method})
        await context.abort(*mapped)


# What a client is told of an exception nothing mapped to a status: nothing of the server's
# insides (exception class, message, addresses, paths); the log has the traceback.
_INTERNAL = "internal error (the server logged it)"


async def _internal(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    logger.error("unexpected error", exc_info=exc, extra={"method": method})
    await context.abort(grpc.StatusCode.INTERNAL, _INTERNAL)


class LastResortInterceptor(WrappingInterceptor):
    """Answers INTERNAL with a generic message, and logs the traceback, for an exception that
    nothing else turned into a status. First of a server's interceptors, so that it covers
    the others too: without it grpc ends the call UNKNOWN with the exception's class and
    message in its details. A bug still shows as one (INTERNAL, and an "unexpected error"
    line in the log); each expected failure gets its precise status where it is raised."""

    def __init__(self) -> None:
        super().__init__(_last_resort)


def _last_resort(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` answering INTERNAL for any exception but an abort (a status already set)."""
    # A handler returning a coroutine: a unary response, or a stream written with
    # context.write (grpc's own health Watch).
    inner = (handler.unary_unary or handler.stream_unary or handler.unary_stream
             or handler.stream_stream)

    async def unary_response(request_or_iterator, context):  # type: ignore[no-untyped-def]
        try:
            return await inner(request_or_iterator, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _internal(context, exc, method)

    if handler.unary_unary or handler.stream_unary:
        make = (grpc.unary_unary_rpc_method_handler if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler)
        return make(unary_response, handler.request_deserializer, handler.response_serializer)
    inner_stream = handler.unary_stream or handler.stream_stream
    if inner_stream is None:
        return handler
    make = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler)
    if not inspect.isasyncgenfunction(inner_stream):
        return make(unary_response, handler.request_deserializer, handler.response_serializer)

    async def stream_response(request_or_iterator, context):  # type: ignore[no-untyped-def]
        try:
            async for response in inner_stream(request_or_iterator, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _internal(context, exc, method)
    return make(stream_response, handler.request_deserializer, handler.response_serializer)


class ErrorMappingInterceptor(WrappingInterceptor):
    """Turns domain errors and Redis outages raised by servicers into precise statuses."""

    def __init__(self) -> None:
        super().__init__(_error_mapping)


def _error_mapping(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """`handler` with its domain errors and Redis outages turned into statuses."""
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(request, context):  # type: ignore[no-untyped-def]
            try:
                if isinstance(request, UndecodableRequest):
                    raise request.error()
                return await inner(request, context)
            except (errors.PairwiseError, *_REDIS_DOWN, grpc.aio.AioRpcError) as exc:
                await _abort(context, exc, method)
        return grpc.unary_unary_rpc_method_handler(
            unary_unary, _tolerant(handler.request_deserializer), handler.response_serializer)
    if handler.unary_stream and not inspect.isasyncgenfunction(handler.unary_stream):
        # A stream written with context.write (grpc's own health Watch): a coroutine.
        inner_writer = handler.unary_stream

        async def unary_stream_writer(request, context):  # type: ignore[no-untyped-def]
            try:
                if isinstance(request, UndecodableRequest):
                    raise request.error()
                await inner_writer(request, context)
            except (errors.PairwiseError, *_REDIS_DOWN, grpc.aio.AioRpcError) as exc:
                await _abort(context, exc, method)
        return grpc.unary_stream_rpc_method_handler(
            unary_stream_writer, _tolerant(handler.request_deserializer),
            handler.response_serializer)
    if handler.unary_stream:
        inner_us = handler.unary_stream

        async def unary_stream(request, context):  # type: ignore[no-untyped-def]
            try:
                if isinstance(request, UndecodableRequest):
                    raise request.error()
                async for response in inner_us(request, context):
                    yield response
            except (errors.PairwiseError, *_REDIS_DOWN, grpc.aio.AioRpcError) as exc:
                await _abort(context, exc, method)
        return grpc.unary_stream_rpc_method_handler(
            unary_stream, _tolerant(handler.request_deserializer), handler.response_serializer)
    if handler.stream_unary:
        inner_su = handler.stream_unary

        async def stream_unary(request_iterator, context):  # type: ignore[no-untyped-def]
            try:
                return await inner_su(_decoded(request_iterator), context)
            except (errors.PairwiseError, *_REDIS_DOWN, grpc.aio.AioRpcError) as exc:
                await _abort(context, exc, method)
        return grpc.stream_unary_rpc_method_handler(
            stream_unary, _tolerant(handler.request_deserializer), handler.response_serializer)
    return handler


@dataclass
class RunningServer:
    """A started server: its bound port, and how to stop it and the service behind it."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # The /metrics endpoint, when served (pairwise.metrics).
    metrics_endpoint: metrics.MetricsEndpoint | None = None
    # The port only this host reaches (start_server's `loopback_port`), 0 without it.
    loopback_port: int = 0

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for close in reversed(self.closers):
            await close()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()


# Calls in progress a server accepts before refusing new ones: far above what two cores
# serve at once (a few hundred voters' calls in flight), low enough that a flood cannot
# queue memory without bound.
DEFAULT_MAX_CONCURRENT_RPCS = 10_000


async def start_server(
    *,
    host: str,
    port: int,
    servicers: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any]],
    service_names: Sequence[str],
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    max_message_bytes: int = 16 * 1024 * 1024,
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS,
    tls: ServerIdentity | None = None,
    reuse_port: bool = False,
    metrics_settings: metrics.MetricsSettings = metrics.OFF,
    loopback_port: bool = False,
) -> RunningServer:
    """Start a grpc.aio server with health checking, reflection, error mapping and answers
    before the deadline.

    `servicers` are `(add_XServicer_to_server, servicer)` pairs; `service_names` their full
    names. Port 0 binds any free port; the bound one is in the result. Past
    `max_concurrent_rpcs` calls in progress (streams included), a new call is refused at
    once with RESOURCE_EXHAUSTED instead of queueing without bound. With `tls` the port speaks
    TLS only (SystemExit naming its settings when its key and certificate do not go together).

    `reuse_port` lets several processes listen on one port (SO_REUSEPORT: the kernel spreads
    new connections among them), for stateless services run as several processes on one
    host; without it a second process on a taken port fails to start, as an operator who
    started a cluster twice would want.

    With `metrics_settings` enabled, every call is counted and timed and /metrics is served
    (pairwise.metrics); otherwise calls pay nothing for it.

    `loopback_port` binds a second port, 127.0.0.1 on any free port, that takes only
    connections from this host (gRPC's local credentials) in plaintext, for the service's
    calls to itself whatever its address and TLS (a certificate rarely names 127.0.0.1).
    """
    timing = [metrics.RpcMetricsInterceptor()] if metrics_settings.enabled else []
    server = grpc.aio.server(
        interceptors=[*timing, LastResortInterceptor(), DeadlineInterceptor(), *interceptors,
                      ErrorMappingInterceptor()],
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # Accept client keepalive pings every 10 s or more without GOAWAY.
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ],
    )
    for add, servicer in servicers:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME], server)
    if tls is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        try:
            bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials())
        except RuntimeError:
            # grpc refuses the credentials at bind time, and says why only in its own log.
            raise SystemExit(f"settings {tls.settings}: the certificate chain and private key "
                             "were refused (not PEM of that kind, or the key is not the "
                             "certificate's)") from None
    if bound == 0:
        raise SystemExit(f"cannot bind {host}:{port}")
    local = server.add_secure_port("127.0.0.1:0", grpc.local_server_credentials(
        grpc.LocalConnectionType.LOCAL_TCP)) if loopback_port else 0
    await server.start()
    try:
        endpoint = metrics.serve(metrics_settings)
    except BaseException:
        await server.stop(0)
        raise
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in service_names:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, bound, health_servicer, metrics_endpoint=endpoint,
                         loopback_port=local)


def run(start: Callable[[Any], Awaitable[RunningServer]], settings: Any,
        grace: float = 5.0, *, lean_gc: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (for `__main__`).

    `lean_gc`: once started, spare the collector the start-up heap (grpc, protobuf and
    redis modules, which every full collection would walk again) and collect the young
    generation less often; for services allocating many short-lived objects per call
    (~1% of the gateway's CPU under interactive load).
    """

    async def main() -> None:
        running = await start(settings)
        if lean_gc:
            gc.freeze()
            gc.set_threshold(7_000, 20, 100)
        logger.info("serving", extra={"port": running.port})
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logger.info("draining", extra={"grace_s": grace})
        await running.stop(grace)
        logger.info("stopped")

    event_loop.run(main())
