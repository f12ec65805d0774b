"""Rate limits on NextPair and SubmitVote: token buckets in Redis per voter (of a cause), per
cause and for the whole platform.

Each bucket refills at its rate (tokens per second) up to its burst; a call costs one token,
and a SubmitVote that also asks for the next pair (`want_next_pair`) costs two, because it
does the work of two calls (the vote and a NextPair): a voter then votes at the same rate
whichever way the platform calls, and a platform cannot double a voter's allowance by
switching to one call per vote. A call takes its tokens from every bucket that applies, as
many as the emptiest allows; when only one of its two is left, the vote is taken and only the
next pair is refused (`over_limit` tells the servicer): a vote is never lost for the sake of
the pair that would have followed it.

The voter's bucket keeps one voter (a script, a stuck client) from flooding a cause; the
cause's keeps one cause gone viral, or under attack, from taking the cluster from the others;
the platform's bounds what every gateway together lets in, below what the cluster sustains.
State and arithmetic live in Lua on Redis' clock, so every gateway replica shares the same
buckets. The voter and cause buckets are one script (they share the cause's hash slot); the
platform's, a key of its own, is a second script in the same round trip, so a call refused by
one may still have spent a token of the other. An empty bucket raises RateLimited
(RESOURCE_EXHAUSTED) naming the limit and the wait until its next token.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from redis.asyncio import Redis

from pairwise import keys
from pairwise.errors import ResourceExhausted
from pairwise.grpc_server import status_for
from pairwise.ids import VOTER_ID_PATTERN, check_id
from pairwise.redis_scripts import Script, ScriptRunner

# KEYS: buckets.  ARGV: tokens wanted, then rate per second and burst of each bucket. Takes
# from every bucket as many whole tokens as wanted and the emptiest holds; returns {taken,
# wait_ms, limiting}: when fewer than wanted were taken, wait_ms is the wait until every
# bucket holds one again and `limiting` the (1-based) bucket that waits longest.
_TAKE = Script("""
local wanted = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tokens = {}
local taken = wanted
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local held = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  if now > ts then held = math.min(burst, held + (now - ts) * rate / 1000) end
  tokens[i] = held
  taken = math.min(taken, math.floor(held))
end
local wait_ms, limiting = 0, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local left = tokens[i] - taken
  if taken < wanted and left < 1 then
    local wait = math.ceil((1 - left) * 1000 / rate)
    if wait > wait_ms then wait_ms, limiting = wait, i end
  end
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst * 1000 / rate) + 1000)
end
return {taken, wait_ms, limiting}
""")


class RateLimited(ResourceExhausted):
    """A bucket the call needs is empty; `retry_after_ms` is the wait until its next token."""

    def __init__(self, who: str, retry_after_ms: int) -> None:
        super().__init__(f"{who} is over its rate limit; retry in "
                         f"{max(retry_after_ms, 1) / 1000:.2f} s")
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class Bucket:
    """Tokens per second and burst; a non-positive rate turns the bucket off."""

    rate_per_s: float
    burst: int

    @property
    def on(self) -> bool:
        return self.rate_per_s > 0

    def args(self) -> list[str | int]:
        return [repr(float(self.rate_per_s)), max(1, self.burst)]


class RateLimiter:
    """The voter, cause and platform buckets. Concurrent takes share round trips through
    `scripts` (one of its own when not given)."""

    def __init__(self, redis: Redis, *, voter: Bucket, cause: Bucket, platform: Bucket,
                 scripts: ScriptRunner | None = None) -> None:
        self._scripts = scripts or ScriptRunner(redis)
        self._voter, self._cause, self._platform = voter, cause, platform

    async def take(self, cause_id: str, voter_id: str, tokens: int = 1) -> RateLimited | None:
        """Spend up to `tokens` tokens of every bucket that applies, at least one, or raise
        RateLimited. Returns None when all were spent, else the limit that stopped the rest
        (the caller decides what the missing ones cost it).

        Also raises InvalidArgument for a malformed cause_id or voter_id (the keys are built
        from them).
        """
        check_id("cause_id", cause_id)
        check_id("voter_id", voter_id, pattern=VOTER_ID_PATTERN)
        takes = []
        scoped: list[tuple[str, Bucket, str]] = [
            (keys.rate_limit(cause_id, voter_id), self._voter, f"voter {voter_id!r}"),
            (keys.cause_rate_limit(cause_id), self._cause, f"cause {cause_id!r}")]
        scoped = [entry for entry in scoped if entry[1].on]
        if scoped:
            takes.append((scoped, self._run(scoped, tokens)))
        if self._platform.on:
            platform = [(keys.platform_rate_limit(), self._platform, "the platform")]
            takes.append((platform, self._run(platform, tokens)))
        if not takes:
            return None
        replies = await asyncio.gather(*(run for _, run in takes))
        taken = min(int(reply[0]) for reply in replies)
        if taken >= tokens:
            return None
        wait_ms, who = max((math.ceil(reply[1]), buckets[max(int(reply[2]), 1) - 1][2])
                           for (buckets, _), reply in zip(takes, replies, strict=True))
        limited = RateLimited(who, max(wait_ms, 1))
        if not taken:
            raise limited
        return limited

    def _run(self, buckets: list[tuple[str, Bucket, str]], tokens: int) -> Any:
        args: list[str | int] = [tokens]
        for _, bucket, _ in buckets:
            args += bucket.args()
        return self._scripts.run(_TAKE, tuple(key for key, _, _ in buckets), args)


# Set for the duration of a call that got fewer tokens than it costs: the limit it hit, for
# the servicer to refuse the part beyond the first token (SubmitVote's next pair).
over_limit: contextvars.ContextVar[RateLimited | None] = contextvars.ContextVar(
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

    def __init__(self, limiter: RateLimiter, methods: Mapping[str, Cost]) -> None:
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
                short = await limiter.take(request.cause_id, request.voter_id, tokens)
                if short is not None:
                    over_limit.set(short)
            except Exception as exc:
                mapped = status_for(exc)
                if mapped is None:
                    raise
                if isinstance(exc, RateLimited):
                    context.set_trailing_metadata(
                        (("retry-after-ms", str(exc.retry_after_ms)),))
                await context.abort(*mapped)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            limited, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
