"""The one way a server interceptor here changes a method's handler: wrapped once per method,
not on every call."""

from __future__ import annotations

from collections.abc import Callable

import grpc


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Serves each method through `wrap(handler, method)`, built on the method's first call
    and kept while the server hands out the same handler: a call pays a dict lookup, not the
    building of a wrapper."""

    def __init__(self,
                 wrap: Callable[[grpc.RpcMethodHandler, str], grpc.RpcMethodHandler]) -> None:
        self._wrap = wrap
        # method -> (handler, its wrapped version)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped
