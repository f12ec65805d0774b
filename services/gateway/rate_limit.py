"""Per-voter rate limit on NextPair and SubmitVote: a token bucket per (cause, voter) in Redis.

The bucket refills at `rate_per_s` tokens per second up to `burst`; a call costs one token,
and a SubmitVote that also asks for the next pair (`want_next_pair`) costs two, because it
does the work of two calls (the vote and a NextPair): a voter then votes at the same rate
whichever way the platform calls, and a platform cannot double a voter's allowance by
switching to one call per vote. When only one of its two tokens is left, the vote is taken
and only the next pair is refused (`over_limit` tells the servicer): a vote is never lost for
the sake of the pair that would have followed it.

State and arithmetic live in one Lua script on Redis' clock, so every gateway replica
shares the same buckets. An empty bucket raises VoterRateLimited (RESOURCE_EXHAUSTED) with
the wait until the next token.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from redis.asyncio import Redis

from pairwise import keys
from pairwise.errors import ResourceExhausted
from pairwise.grpc_server import status_for
from pairwise.ids import VOTER_ID_PATTERN, check_id
from pairwise.redis_scripts import Script, ScriptRunner

# KEYS: bucket.  ARGV: rate per second, burst, tokens wanted.  Takes as many whole tokens as
# wanted and available; returns {taken, wait_ms}: wait_ms, when fewer than wanted were taken,
# is the wait until the bucket holds one again (0 otherwise).
_TAKE = Script("""
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate / 1000) end
local taken = math.min(wanted, math.floor(tokens))
tokens = tokens - taken
local wait_ms = 0
if taken < wanted then wait_ms = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {taken, wait_ms}
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

    async def take(self, cause_id: str, voter_id: str, tokens: int = 1) -> int:
        """Spend up to `tokens` tokens of this voter's bucket, at least one, or raise
        VoterRateLimited. Returns 0 when all were spent, else the wait (ms) until the bucket
        holds another (the caller decides what the missing ones cost it).

        Also raises InvalidArgument for a malformed cause_id or voter_id (the key is built
        from them).
        """
        check_id("cause_id", cause_id)
        check_id("voter_id", voter_id, pattern=VOTER_ID_PATTERN)
        if self._rate_per_s <= 0:
            return 0
        taken, wait_ms = await self._scripts.run(
            _TAKE, (keys.rate_limit(cause_id, voter_id),),
            (self._rate_arg, self._burst, tokens))
        if not taken:
            raise VoterRateLimited(voter_id, math.ceil(wait_ms))
        return 0 if taken >= tokens else max(math.ceil(wait_ms), 1)


# Set for the duration of a call that got fewer tokens than it costs: the limit it hit, for
# the servicer to refuse the part beyond the first token (SubmitVote's next pair).
over_limit: contextvars.ContextVar[VoterRateLimited | None] = contextvars.ContextVar(
    "over_limit", default=None)

# What a call costs in tokens, from its request.
Cost = Callable[[Any], int]


def one_token(request: Any) -> int:
    return 1


class RateLimitInterceptor(grpc.aio.ServerInterceptor):
    """Applies `limiter` to the unary methods in `methods` (full names, e.g.
    "/pairwise.v1.GatewayService/NextPair", each with its cost), whose requests carry
    cause_id and voter_id.

    A limited call ends with RESOURCE_EXHAUSTED and trailing metadata ``retry-after-ms``. A
    call that got at least one token but fewer than its cost runs, with `over_limit` set.
    """

    def __init__(self, limiter: VoterRateLimiter, methods: Mapping[str, Cost]) -> None:
        self._limiter = limiter
        self._methods = dict(methods)
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
        wrapped = self._limited(handler, self._methods[method])
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _limited(self, handler: grpc.RpcMethodHandler, cost: Cost) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        limiter = self._limiter

        async def limited(request, context):  # type: ignore[no-untyped-def]
            try:
                tokens = cost(request)
                short_ms = await limiter.take(request.cause_id, request.voter_id, tokens)
                if short_ms:
                    over_limit.set(VoterRateLimited(request.voter_id, short_ms))
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
