"""The gRPC edge every service shares (pairwise.grpc_server), on a real server: an exception
nothing mapped to a status is answered INTERNAL with a message that shows nothing of the
server and is logged with its traceback, whatever the method's shape; grpc's own health
Watch works on every server."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from conftest import serve_in_thread
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pairwise.grpc_server import RunningServer, start_server

SERVICE = "edge.test.Broken"
SECRET = "/var/lib/secret.py at 10.1.2.3:6379"


async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise KeyError(SECRET)


async def server_stream(request: bytes, context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[bytes]:
    yield b"first"
    raise RuntimeError(SECRET)


async def client_stream(requests: AsyncIterator[bytes],
                        context: grpc.aio.ServicerContext) -> bytes:
    async for _ in requests:
        raise ZeroDivisionError(SECRET)
    return b""


async def aborting(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    raise AssertionError("abort returned")


def add_broken(servicer: Any, server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Aborting": grpc.unary_unary_rpc_method_handler(aborting),
    }),))


async def start(settings: None) -> RunningServer:
    return await start_server(host="127.0.0.1", port=0, servicers=[(add_broken, None)],
                              service_names=[SERVICE])


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    with serve_in_thread(start, None) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield channel


def failure(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


@pytest.mark.parametrize("method", ["Unary", "ServerStream", "ClientStream"])
def test_an_unexpected_exception_is_internal_and_shows_nothing_of_the_server(
        channel: grpc.Channel, method: str, caplog: pytest.LogCaptureFixture) -> None:
    path = f"/{SERVICE}/{method}"
    calls = {
        "Unary": lambda: channel.unary_unary(path)(b"", timeout=5),
        "ServerStream": lambda: list(channel.unary_stream(path)(b"", timeout=5)),
        "ClientStream": lambda: channel.stream_unary(path)(iter([b""]), timeout=5),
    }
    with caplog.at_level(logging.ERROR, logger="pairwise.grpc_server"):
        error = failure(calls[method])
    assert error.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    assert "secret" not in details and "Error" not in details and "10.1" not in details
    logged = [r for r in caplog.records if r.getMessage() == "unexpected error"]
    assert logged and logged[-1].exc_info is not None
    assert SECRET in str(logged[-1].exc_info[1])


def test_a_server_stream_keeps_what_it_sent_before_the_exception(
        channel: grpc.Channel) -> None:
    call = channel.unary_stream(f"/{SERVICE}/ServerStream")(b"", timeout=5)
    assert next(call) == b"first"
    assert failure(lambda: next(call)).code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]


def test_a_status_the_handler_chose_is_kept(channel: grpc.Channel) -> None:
    error = failure(lambda: channel.unary_unary(f"/{SERVICE}/Aborting")(b"", timeout=5))
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "no such thing")  # type: ignore[attr-defined]


def test_health_watch_streams_the_serving_status(channel: grpc.Channel) -> None:
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
    try:
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    finally:
        watch.cancel()
