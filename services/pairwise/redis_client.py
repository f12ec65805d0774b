"""The one way a service connects to Redis: a bounded pool and explicit timeouts.

A dead or frozen Redis fails a call within the socket timeout (the gRPC edge answers
UNAVAILABLE) instead of hanging it. The pool is bounded and blocking: past `max_connections`
commands in flight a command waits up to `pool_timeout_s` for a free connection, where
redis-py's default pool fails with "Too many connections" at 100, which a busy gateway
reaches.
"""

from __future__ import annotations

import urllib.parse

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


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
    return Redis.from_pool(BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        socket_timeout=socket_timeout_s + blocking_s,
        socket_connect_timeout=connect_timeout_s,
        retry=retry,
        client_name=client_name,
    ))


def shown(redis_url: str) -> str:
    """`redis_url` with its password replaced by ***, for logs and status lines."""
    parts = urllib.parse.urlsplit(redis_url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    query = "&".join("password=***" if item.startswith("password=") else item
                     for item in parts.query.split("&")) if parts.query else ""
    return urllib.parse.urlunsplit(parts._replace(query=query))
