"""Per-voter rate limit on NextPair and SubmitVote: a token bucket per (cause, voter) in Redis.

The bucket refills at `rate_per_s` tokens per second up to `burst`; each call takes one.
State and arithmetic live in one Lua script on Redis' clock, so every gateway replica
shares the same buckets. An empty bucket raises VoterRateLimited (RESOURCE_EXHAUSTED) with
the wait until the next token.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import grpc
from redis.asyncio import Redis

from pairwise import keys
from pairwise.errors import ResourceExhausted
from pairwise.grpc_server import status_for
from pairwise.ids import VOTER_ID_PATTERN, check_id
from pairwise.redis_scripts import Script, ScriptRunner

# KEYS: bucket.  ARGV: rate per second, burst.  Returns {1, 0} (allowed) or {0, wait_ms}.
_TAKE = Script("""
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local allowed, wait_ms = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait_ms}
""")


class VoterRateLimited(ResourceExhausted):
    """The voter's bucket is empty; `retry_after_ms` is the wait until the next token."""

    def __init__(self, voter_id: str, retry_after_ms: int) -> None:
        super().__init__(f"voter {voter_id!r} is over its rate limit; retry in "
                         f"{max(retry_after_ms, 1) / 1000:.2f} s")
        self.retry_after_ms = retry_after_ms


class VoterRateLimiter:
    """Token buckets in Redis. A non-positive `rate_per_s` disables limiting. Concurrent takes
    share round trips through `scripts` (one of its own when not given)."""

    def __init__(self, redis: Redis, rate_per_s: float, burst: int, *,
                 scripts: ScriptRunner | None = None) -> None:
        self._scripts = scripts or ScriptRunner(redis)
        self._rate_arg = repr(float(rate_per_s))
        self._rate_per_s = rate_per_s
        self._burst = burst

    async def take(self, cause_id: str, voter_id: str) -> None:
        """Spend one token of this voter's bucket, or raise VoterRateLimited.

        Also raises InvalidArgument for a malformed cause_id or voter_id (the key is built
        from them).
        """
        check_id("cause_id", cause_id)
        check_id("voter_id", voter_id, pattern=VOTER_ID_PATTERN)
        if self._rate_per_s <= 0:
            return
        allowed, wait_ms = await self._scripts.run(
            _TAKE, (keys.rate_limit(cause_id, voter_id),), (self._rate_arg, self._burst))
        if not allowed:
            raise VoterRateLimited(voter_id, math.ceil(wait_ms))


class RateLimitInterceptor(grpc.aio.ServerInterceptor):
    """Applies `limiter` to the unary methods in `methods` (full names, e.g.
    "/pairwise.v1.GatewayService/NextPair"), whose requests carry cause_id and voter_id.

    A limited call ends with RESOURCE_EXHAUSTED and trailing metadata ``retry-after-ms``.
    """

    def __init__(self, limiter: VoterRateLimiter, methods: Iterable[str]) -> None:
        self._limiter = limiter
        self._methods = frozenset(methods)
        # method -> (handler, its limited version): built once, not on every call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method not in self._methods or not handler.unary_unary:
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._limited(handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _limited(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        limiter = self._limiter

        async def limited(request, context):  # type: ignore[no-untyped-def]
            try:
                await limiter.take(request.cause_id, request.voter_id)
            except Exception as exc:
                mapped = status_for(exc)
                if mapped is None:
                    raise
                if isinstance(exc, VoterRateLimited):
                    context.set_trailing_metadata(
                        (("retry-after-ms", str(exc.retry_after_ms)),))
                await context.abort(*mapped)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            limited, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
