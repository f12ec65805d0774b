"""gRPC method handlers rebuilt by server interceptors: one of the same shape with another
behaviour (a refusal, or the original run in a context of its own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


def refusal(code: grpc.StatusCode, details: str) -> Callable[[Any, Any], Any]:
    """A behaviour that ends the call with `code` and `details` before any servicer code."""
    async def refuse(request_or_iterator, context):  # type: ignore[no-untyped-def]
        await context.abort(code, details)
    return refuse


def replaced(handler: grpc.RpcMethodHandler,
             behaviour: Callable[[Any, Any], Any]) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` whose behaviour is `behaviour`."""
    if handler.unary_unary:
        make = grpc.unary_unary_rpc_method_handler
    elif handler.unary_stream:
        make = grpc.unary_stream_rpc_method_handler
    elif handler.stream_unary:
        make = grpc.stream_unary_rpc_method_handler
    else:
        make = grpc.stream_stream_rpc_method_handler
    return make(behaviour, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
