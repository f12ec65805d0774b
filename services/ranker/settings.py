"""Ranker configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from pairwise import internal_auth
from pairwise.config import env_bool, env_float, env_int, env_str
from pairwise.grpc_server import DEFAULT_MAX_CONCURRENT_RPCS
from pairwise.metrics import MetricsSettings
from pairwise.tls import ServerIdentity
from ranker.coordinated_voting import CoordinationSettings
from ranker.voter_anomaly import DetectionSettings


@dataclass(frozen=True)
class Settings:
    redis_url: str
    # Every RankerService call must carry it, or one of internal_previous_secrets during a
    # rotation (pairwise.internal_auth).
    internal_secret: str
    host: str = "127.0.0.1"
    port: int = 50053
    # Names the process in logs; its id in the directory of rankers and its consumer name in
    # the vote logs' group are this name made unique (pairwise.ranker_directory.new_ranker_id).
    name: str = "ranker"
    # The address the other services reach this ranker at, published in the directory
    # ("" = host:port as bound; set it when host is 0.0.0.0 or behind a NAT).
    advertise_addr: str = ""
    # Where to write the bound port once serving (for RANKER_PORT=0: a health check reads
    # it), or "" for nowhere.
    port_file: str = ""
    # How long (seconds) this ranker stays in the directory, and holds its causes' leases,
    # after its last renewal (renewed every third of it): a killed ranker's causes move to
    # the others within about this long. Shorter moves them sooner, but a ranker whose
    # event loop stalls that long (a starved host) loses its causes and loads them again.
    lease_s: float = 3.0
    # Refit a cause at most this often, and only when new votes arrived.
    fit_interval_s: float = 0.5
    # Snapshot counts + last applied entry, and XACK, at most this often.
    checkpoint_interval_s: float = 2.0
    # How often to look at the awake causes (pairwise.awake_causes) for votes on causes not
    # loaded, for idle causes to unload, and for catalog changes of the loaded ones.
    discover_interval_s: float = 1.0
    # A loaded cause with no vote applied, no read and no follower for this long (seconds) is
    # unloaded (final checkpoint; memory freed); its next vote or read loads it again.
    idle_unload_s: float = 300.0
    # How often (seconds) every stored cause's log is looked at for votes nobody counted
    # (also once at start): catches a vote whose awake mark was lost, which takes an ingest
    # killed mid-call and a client that never retries, or a Redis losing its AOF's last
    # second. Each sweep costs ~0.1 ms of ranker CPU per stored cause (100,000: ~10 s).
    sweep_interval_s: float = 3600.0
    # Entries read per XREADGROUP (an entry holds 1 to vote_log.MAX_VOTES_PER_ENTRY votes).
    # Each page is decoded and applied on the event loop, so it bounds how long a read can be
    # delayed: 100 entries of 1,000 votes take ~4 ms to decode and ~10 ms to apply.
    read_batch: int = 100
    # How long the process's one XREADGROUP (ranker.vote_reader) waits for new entries (ms).
    # The Redis client's socket timeout is this much longer than redis_socket_timeout_s, so
    # a blocked read never times out.
    read_block_ms: int = 200
    # Worker processes running Bradley-Terry fits (ranker.fit_pool), shared by all causes.
    fit_workers: int = 1
    # Worker processes for the fits of segments of voters, beside the fit workers (started at
    # the first segment fit); 0: segments share the fit workers.
    segment_fit_workers: int = 1
    # Niceness of the fit workers while they fit (0 = the serving process's own).
    fit_nice: int = 5
    # A read waits this long (seconds) for a cause to load and fit for the first time before
    # answering UNAVAILABLE (retryable).
    read_wait_s: float = 5.0
    # A read after a catalog change (new proposal, moderation) waits this long (seconds) for
    # the refit that shows it, then answers with the previous ranking.
    catalog_wait_s: float = 1.0
    # A vote-log entry naming a proposal index >= this is malformed (ignored, still counted
    # as a reflected entry): it bounds the memory one bad entry can claim.
    max_proposals: int = 1_000_000
    # Redis client (pairwise.redis_client): connections at most, and how long (seconds) a
    # command waits for a free one, for a connection to open, and for its reply (beyond the
    # time it was asked to block) before failing. One connection is the vote reader's own,
    # which reads every cause, one the renewal's of the ranker's registration and leases;
    # the others carry checkpoints, acks, loads and catalog reads,
    # whose round trips are short: more causes queue for them instead of opening more. The
    # wait for a free connection is long because every holder gives its connection back
    # within its own socket timeout: a queue of a thousand causes on a CPU-starved host
    # waited past 5 s, and each such wait made a cause reload, which queued again.
    redis_max_connections: int = 8
    redis_pool_timeout_s: float = 30.0
    redis_connect_timeout_s: float = 1.0
    redis_socket_timeout_s: float = 5.0
    # The per-voter anomaly tests (ranker.voter_anomaly) and their thresholds; None: off
    # (RANKER_DETECT=0).
    detection: DetectionSettings | None = DetectionSettings()
    internal_previous_secrets: tuple[str, ...] = ()
    # The port speaks TLS with this identity (INTERNAL_TLS_CERT, INTERNAL_TLS_KEY); None:
    # plaintext.
    tls: ServerIdentity | None = None
    # Calls in progress (FollowRanking streams included) before new ones get
    # RESOURCE_EXHAUSTED (pairwise.grpc_server).
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS
    # Prometheus /metrics (pairwise.metrics): off unless <SERVICE>_METRICS_PORT is set.
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            redis_url=env_str("REDIS_URL"),
            internal_secret=internal_auth.secret_from_env(),
            internal_previous_secrets=internal_auth.previous_secrets_from_env(),
            tls=internal_auth.server_tls_from_env(),
            host=env_str("RANKER_HOST", "127.0.0.1"),
            port=env_int("RANKER_PORT", 50053),
            name=env_str("RANKER_NAME", "ranker"),
            advertise_addr=env_str("RANKER_ADVERTISE_ADDR", ""),
            port_file=env_str("RANKER_PORT_FILE", ""),
            lease_s=env_float("RANKER_LEASE_S", 3.0),
            fit_interval_s=env_float("RANKER_FIT_INTERVAL_S", 0.5),
            checkpoint_interval_s=env_float("RANKER_CHECKPOINT_INTERVAL_S", 2.0),
            discover_interval_s=env_float("RANKER_DISCOVER_INTERVAL_S", 1.0),
            idle_unload_s=env_float("RANKER_IDLE_UNLOAD_S", 300.0),
            sweep_interval_s=env_float("RANKER_SWEEP_INTERVAL_S", 3600.0),
            read_batch=env_int("RANKER_READ_BATCH", 100),
            read_block_ms=env_int("RANKER_READ_BLOCK_MS", 200),
            fit_workers=env_int("RANKER_FIT_WORKERS", 1),
            segment_fit_workers=env_int("RANKER_SEGMENT_FIT_WORKERS", 1),
            fit_nice=env_int("RANKER_FIT_NICE", 5),
            read_wait_s=env_float("RANKER_READ_WAIT_S", 5.0),
            catalog_wait_s=env_float("RANKER_CATALOG_WAIT_S", 1.0),
            max_proposals=env_int("RANKER_MAX_PROPOSALS", 1_000_000),
            redis_max_connections=env_int("RANKER_REDIS_CONNECTIONS", 8),
            redis_pool_timeout_s=env_float("RANKER_REDIS_POOL_TIMEOUT_S", 30.0),
            redis_connect_timeout_s=env_float("REDIS_CONNECT_TIMEOUT_S", 1.0),
            redis_socket_timeout_s=env_float("REDIS_SOCKET_TIMEOUT_S", 5.0),
            detection=_detection_from_env(),
            max_concurrent_rpcs=env_int("RANKER_MAX_CONCURRENT_RPCS",
                                        DEFAULT_MAX_CONCURRENT_RPCS),
            metrics=MetricsSettings.from_env("ranker"),
        )

    def __post_init__(self) -> None:
        if self.redis_max_connections < 3:
            raise SystemExit("RANKER_REDIS_CONNECTIONS must be >= 3 (one is the vote reader's, "
                             f"one the lease renewal's), got {self.redis_max_connections}")
        if self.lease_s <= 0:
            raise SystemExit(f"RANKER_LEASE_S must be > 0, got {self.lease_s}")


def _detection_from_env() -> DetectionSettings | None:
    """The detector's thresholds (RANKER_DETECT_*), or None when RANKER_DETECT is 0."""
    if not env_bool("RANKER_DETECT", True):
        return None
    defaults = DetectionSettings()
    try:
        return DetectionSettings(
            fit_alpha=env_float("RANKER_DETECT_FIT_ALPHA", defaults.fit_alpha),
            upset_below=env_float("RANKER_DETECT_UPSET_BELOW", defaults.upset_below),
            max_votes_per_min=env_int("RANKER_DETECT_MAX_VOTES_PER_MIN",
                                      defaults.max_votes_per_min),
            untrusted_share=env_float("RANKER_DETECT_UNTRUSTED_SHARE",
                                      defaults.untrusted_share),
            coordination=_coordination_from_env())
    except ValueError as exc:
        raise SystemExit(f"RANKER_DETECT_*: {exc}") from None


def _coordination_from_env() -> CoordinationSettings | None:
    """The test across accounts' thresholds (RANKER_DETECT_GROUP_*), or None when
    RANKER_DETECT_GROUPS is 0. Raises ValueError for an out-of-range one."""
    if not env_bool("RANKER_DETECT_GROUPS", True):
        return None
    defaults = CoordinationSettings()
    return CoordinationSettings(
        alpha=env_float("RANKER_DETECT_GROUP_ALPHA", defaults.alpha),
        posterior=env_float("RANKER_DETECT_GROUP_POSTERIOR", defaults.posterior),
        max_votes=env_int("RANKER_DETECT_GROUP_MAX_VOTES", defaults.max_votes))
