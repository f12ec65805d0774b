"""Ingest configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from pairwise import internal_auth, prompt_token
from pairwise.config import env_bool, env_float, env_int, env_str
from pairwise.grpc_server import DEFAULT_MAX_CONCURRENT_RPCS
from pairwise.metrics import MetricsSettings
from pairwise.tls import ServerIdentity


@dataclass(frozen=True)
class Settings:
    redis_url: str
    token_keys: prompt_token.TokenKeys
    # Every IngestService call must carry it, or one of internal_previous_secrets during a
    # rotation (pairwise.internal_auth).
    internal_secret: str
    host: str = "127.0.0.1"
    port: int = 50052
    # Share the port with other ingest processes on this host (SO_REUSEPORT).
    reuse_port: bool = False
    # Largest RecordVotes batch accepted (votes); larger ones get INVALID_ARGUMENT.
    max_batch: int = 10_000
    # A cause with more than this many accepted votes not yet in a ranker checkpoint refuses
    # new votes with UNAVAILABLE "vote buffer full" (retryable).
    max_backlog: int = 5_000_000
    # How long a cause's backlog reading is reused before Redis is asked again (seconds).
    backlog_check_interval_s: float = 1.0
    # Acknowledge only after Redis fsynced the write to its AOF (WAITAOF 1 0), so an OK
    # survives a host crash. Needs Redis >= 7.2 or Valkey with appendonly on: start-up fails
    # when the server cannot honour it. False is the operator's opt-out, logged at start.
    wait_aof: bool = True
    wait_aof_timeout_ms: int = 1_000
    # And after that many replicas of the master received it (WAIT N, within the same
    # timeout): an OK then survives the master's loss, a replica promoted in its place
    # (Redis replicates asynchronously: without it, the master's last votes may be lost).
    wait_replicas: int = 0
    # A vote arriving sooner than this after its prompt was issued (ms) is kept but flagged
    # untrusted (q="0" in the vote log).
    min_view_ms: int = 300
    # Redis client (pairwise.redis_client): connections at most, and how long (seconds) a
    # command waits for a free one, for a connection to open, and for its reply before
    # failing UNAVAILABLE.
    redis_max_connections: int = 64
    redis_pool_timeout_s: float = 5.0
    redis_connect_timeout_s: float = 1.0
    redis_socket_timeout_s: float = 5.0
    internal_previous_secrets: tuple[str, ...] = ()
    # The port speaks TLS with this identity (INTERNAL_TLS_CERT, INTERNAL_TLS_KEY); None:
    # plaintext.
    tls: ServerIdentity | None = None
    # Calls in progress before new ones get RESOURCE_EXHAUSTED (pairwise.grpc_server).
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS
    # Prometheus /metrics (pairwise.metrics): off unless <SERVICE>_METRICS_PORT is set.
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            redis_url=env_str("REDIS_URL"),
            token_keys=prompt_token.keys_from_env(),
            internal_secret=internal_auth.secret_from_env(),
            internal_previous_secrets=internal_auth.previous_secrets_from_env(),
            tls=internal_auth.server_tls_from_env(),
            host=env_str("INGEST_HOST", "127.0.0.1"),
            port=env_int("INGEST_PORT", 50052),
            reuse_port=env_bool("INGEST_REUSE_PORT", False),
            max_batch=env_int("INGEST_MAX_BATCH", 10_000),
            max_backlog=env_int("INGEST_MAX_BACKLOG", 5_000_000),
            backlog_check_interval_s=env_float("INGEST_BACKLOG_CHECK_S", 1.0),
            wait_aof=env_bool("INGEST_WAITAOF", True),
            wait_aof_timeout_ms=env_int("INGEST_WAITAOF_TIMEOUT_MS", 1_000),
            wait_replicas=env_int("INGEST_WAIT_REPLICAS", 0),
            min_view_ms=env_int("INGEST_MIN_VIEW_MS", 300),
            redis_max_connections=env_int("INGEST_REDIS_CONNECTIONS", 64),
            redis_pool_timeout_s=env_float("INGEST_REDIS_POOL_TIMEOUT_S", 5.0),
            redis_connect_timeout_s=env_float("REDIS_CONNECT_TIMEOUT_S", 1.0),
            redis_socket_timeout_s=env_float("REDIS_SOCKET_TIMEOUT_S", 5.0),
            max_concurrent_rpcs=env_int("INGEST_MAX_CONCURRENT_RPCS",
                                        DEFAULT_MAX_CONCURRENT_RPCS),
            metrics=MetricsSettings.from_env("ingest"),
        )
