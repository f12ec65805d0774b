"""The one way a service connects to Redis: a bounded pool and explicit timeouts.

A dead or frozen Redis fails a call within the socket timeout (the gRPC edge answers
UNAVAILABLE) instead of hanging it. The pool is bounded and blocking: past `max_connections`
commands in flight a command waits up to `pool_timeout_s` for a free connection, where
redis-py's default pool fails with "Too many connections" at 100, which a busy gateway
reaches.

A URL `redis+cluster://host:port[,host:port...]` (`rediss+cluster://` with TLS; user,
password and query options as in redis://) names a Redis Cluster through some of its nodes:
the client is then a redis.asyncio RedisCluster, which finds the others, follows the slots
as they move and reconnects after a failover. Every key of a cause carries the cause's hash
tag and every script touches one slot (pairwise.keys), so the services run unchanged on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

# How long a service starting waits for an unreachable Redis before it stops: enough for a
# server that is restarting or loading its AOF, short enough that a wrong REDIS_URL is
# reported while the operator still watches.
STARTUP_WAIT_S = 30.0

# The URL schemes naming a Redis Cluster (a cluster client is not an ordinary one: the same
# URL with redis:// would reach one node and fail on every key of another's slots).
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster(url: str) -> bool:
    """Whether `url` names a Redis Cluster."""
    return urllib.parse.urlsplit(url).scheme in CLUSTER_SCHEMES


def cluster_url(addresses: list[str], scheme: str = "redis+cluster") -> str:
    """The URL of the cluster whose nodes include `addresses` ("host:port" each)."""
    return f"{scheme}://{','.join(addresses)}"


def is_cluster_client(client: object) -> bool:
    """Whether `client` (from `connect`) talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def connect(url: str, *, connect_timeout_s: float, socket_timeout_s: float,
            max_connections: int, pool_timeout_s: float, blocking_s: float = 0.0,
            retry_on_connection_error: bool = False, client_name: str | None = None) -> Redis:
    """A redis.asyncio client for `url` (bytes replies). Opens no connection yet.

    `client_name` names every connection (CLIENT SETNAME), so CLIENT LIST tells whose each is.

    `socket_timeout_s` bounds each command's wait for its reply. `blocking_s` is the longest
    a command of this client is asked to block on the server (XREADGROUP BLOCK); the socket
    timeout is that much longer, so a read blocked as asked never times out as if Redis had
    died. With `retry_on_connection_error` a command that failed on a broken connection (a
    pooled connection left stale by a Redis restart) is sent once more at once, on a new
    one: only for callers whose writes are idempotent, since the first attempt may have run.
    Timeouts are never retried.
    """
    retry = Retry(NoBackoff(), 1 if retry_on_connection_error else 0,
                  supported_errors=(RedisConnectionError,))
    if is_cluster(url):
        return _connect_cluster(url, connect_timeout_s=connect_timeout_s,
                                socket_timeout_s=socket_timeout_s + blocking_s,
                                max_connections=max_connections,
                                pool_timeout_s=pool_timeout_s, retry=retry,
                                client_name=client_name)
    return Redis.from_pool(BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_timeout=socket_timeout_s + blocking_s,
        socket_connect_timeout=connect_timeout_s,
        retry=retry,
        client_name=client_name,
    ))


# Set while a task holds a turn of its `_WaitingCluster` (a pipeline that resends a
# redirected command through the client takes no second turn).
_holding_turn: contextvars.ContextVar[bool] = contextvars.ContextVar("holding_turn",
                                                                     default=False)


class _WaitingCluster(RedisCluster):
    """A RedisCluster whose commands and pipelines wait up to `pool_timeout_s` for one of
    `max_connections` turns, as a blocking pool's wait for a free connection: RedisCluster's
    own pools fail a command at once (MaxConnectionsError) past `max_connections` on a
    node, which a ranker loading dozens of causes at once reached on every node. A command
    or pipeline holds at most one connection per node, so no node exceeds the bound."""

    def __init__(self, *, max_connections: int, pool_timeout_s: float, **options: Any) -> None:
        super().__init__(max_connections=max_connections, **options)
        self._turns = asyncio.Semaphore(max_connections)
        self._turn_timeout_s = pool_timeout_s

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if _holding_turn.get():
            yield
            return
        try:
            await asyncio.wait_for(self._turns.acquire(), self._turn_timeout_s)
        except TimeoutError:
            raise RedisConnectionError(
                f"no Redis connection free within {self._turn_timeout_s} s") from None
        held = _holding_turn.set(True)
        try:
            yield
        finally:
            _holding_turn.reset(held)
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None,
                 shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise ValueError("no shard_hint on a Redis Cluster")
        # Not abstract: RedisCluster.pipeline makes its ClusterPipeline the same way.
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    """A pipeline of a `_WaitingCluster`, sent in one turn."""

    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        client: _WaitingCluster = self.cluster_client  # type: ignore[assignment]
        async with client.turn():
            return await super().execute(raise_on_error, allow_redirections)


def _connect_cluster(url: str, *, connect_timeout_s: float, socket_timeout_s: float,
                     max_connections: int, pool_timeout_s: float, retry: Retry,
                     client_name: str | None) -> Redis:
    """A RedisCluster for a cluster URL, with `connect`'s timeouts, retries and bounded,
    waiting pool (`_WaitingCluster`).

    Typed as Redis: RedisCluster offers the same commands and pipelines to the services
    (which use one slot per command or script), without being its subclass."""
    parts = urllib.parse.urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2].split(",")
    seed = parts._replace(scheme=CLUSTER_SCHEMES[parts.scheme], netloc=parts.netloc.rpartition(
        "@")[0] + ("@" if "@" in parts.netloc else "") + hosts[0])
    options: dict[str, Any] = dict(parse_url(urllib.parse.urlunsplit(seed)))
    options.pop("db", None)
    host, port = options.pop("host"), options.pop("port")
    ssl = options.pop("connection_class", None) is SSLConnection
    others = [ClusterNode(*address.rsplit(":", 1)) for address in hosts[1:]]
    cluster = _WaitingCluster(
        startup_nodes=[ClusterNode(host, port), *others], ssl=ssl,
        max_connections=max_connections, pool_timeout_s=pool_timeout_s,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s, retry=retry, client_name=client_name,
        **options)
    return cast(Redis, cluster)


def shown(redis_url: str) -> str:
    """`redis_url` with its password replaced by ***, for logs and status lines."""
    parts = urllib.parse.urlsplit(redis_url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    query = "&".join("password=***" if item.startswith("password=") else item
                     for item in parts.query.split("&")) if parts.query else ""
    return urllib.parse.urlunsplit(parts._replace(query=query))


async def when_reachable(call: Callable[[], Awaitable[T]], redis_shown: str,
                         wait_s: float = STARTUP_WAIT_S) -> T:
    """`call()`'s result, `call` made again every half second while Redis is unreachable (a
    server restarting, or loading its AOF), for up to `wait_s` seconds; then SystemExit
    naming the server (`redis_shown`, its password hidden). A refused password is raised at
    once: waiting does not change it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await call()
        except AuthenticationError:
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise SystemExit(f"Redis at {redis_shown} unreachable for {wait_s:.0f} s: "
                                 f"{exc}") from exc
            await asyncio.sleep(0.5)
