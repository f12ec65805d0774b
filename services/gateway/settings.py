"""Gateway configuration, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.catalog import DEFAULT_NEWCOMER_VOTES, PairSelection
from gateway.catalog_store import DEFAULT_MAX_PROPOSALS
from gateway.pair_selection import DEFAULT_MAX_SEEN_PAIRS, DEFAULT_SEEN_PAIRS_TTL_S
from pairwise import internal_auth, prompt_token
from pairwise.config import env_bool, env_float, env_int, env_str
from pairwise.grpc_server import DEFAULT_MAX_CONCURRENT_RPCS
from pairwise.metrics import MetricsSettings
from pairwise.tls import ServerIdentity


@dataclass(frozen=True)
class Settings:
    redis_url: str
    admin_token: str
    platform_token: str
    token_keys: prompt_token.TokenKeys
    # Sent with every call to ingest and the rankers (pairwise.internal_auth).
    internal_secret: str
    ingest_addr: str = "127.0.0.1:50052"
    # Connections to ingest, each call on the next: several ingest processes sharing one
    # port (SO_REUSEPORT) each get some, where one connection would feed one process.
    ingest_channels: int = 4
    # How often (seconds) the gateway reads the directory of live rankers to route reads
    # (it also reads it when a ranker answers that a cause moved).
    rankers_refresh_s: float = 1.0
    host: str = "127.0.0.1"
    port: int = 50051
    # Share the port with other gateway processes on this host (SO_REUSEPORT).
    reuse_port: bool = False
    prompt_ttl_s: float = 900.0
    # Per-voter token bucket over NextPair + SubmitVote: sustained rate and burst.
    # Token buckets over NextPair and SubmitVote (gateway.rate_limit): per voter of a cause,
    # per cause and for the platform (every cause, every gateway); a rate <= 0 turns one off.
    voter_rate_per_s: float = 2.0
    voter_burst: int = 60
    cause_rate_per_s: float = 0.0
    cause_burst: int = 0
    platform_rate_per_s: float = 0.0
    platform_burst: int = 0
    # Deadline for internal calls when the client sent none.
    internal_timeout_s: float = 10.0
    # ImportVotes forwards at most this many votes per internal RecordVotes call
    # (below ingest's max_batch).
    import_chunk: int = 5000
    # SubmitVotes made at the same time reach ingest together: at most this many votes per
    # internal call, and at most this many such calls at once (more votes wait for one).
    # One call at a time measured best under load (bigger groups, less CPU per vote).
    vote_group_max: int = 256
    vote_groups_in_flight: int = 1
    # Likewise for the Redis scripts (rate limit, pair choice) of concurrent calls: pipelined
    # round trips in flight at once (1 measured best too: ~590-610 vs ~690 gateway CPU us
    # per vote with 4).
    script_groups_in_flight: int = 1
    # Redis client (pairwise.redis_client): connections at most, and how long (seconds) a
    # command waits for a free one, for a connection to open, and for its reply before
    # failing UNAVAILABLE.
    redis_max_connections: int = 64
    redis_pool_timeout_s: float = 5.0
    redis_connect_timeout_s: float = 1.0
    redis_socket_timeout_s: float = 5.0
    # The strategy of causes created without one (GATEWAY_PAIR_SELECTION: uniform|adaptive).
    pair_selection: PairSelection = PairSelection.ADAPTIVE
    # Adaptive selection: proposals with fewer counted votes than `newcomer_votes` are
    # newcomers (written into each cause at its creation), and `newcomer_share` of the
    # prompts go to them first.
    newcomer_votes: int = DEFAULT_NEWCOMER_VOTES
    newcomer_share: float = 0.3
    # Bounds: calls in progress (streams included) before new ones get RESOURCE_EXHAUSTED,
    # and WatchRanking followers per gateway and per cause (gateway.ranking_watches).
    max_concurrent_rpcs: int = DEFAULT_MAX_CONCURRENT_RPCS
    max_watches: int = 2_000
    max_watches_per_cause: int = 500
    # Proposals a cause may hold (gateway.catalog_store); keep it at most RANKER_MAX_PROPOSALS.
    max_proposals: int = DEFAULT_MAX_PROPOSALS
    # Pairs one voter is shown per cause (0: no cap), and how long their seen pairs are kept
    # after their last one (0: for ever; gateway.pair_selection).
    max_seen_pairs: int = DEFAULT_MAX_SEEN_PAIRS
    seen_pairs_ttl_s: int = DEFAULT_SEEN_PAIRS_TTL_S
    # Where ArchiveCause writes archives (one export folder per cause), on this host.
    archive_dir: str = "archive"
    # The port speaks TLS with this identity (GATEWAY_TLS_CERT, GATEWAY_TLS_KEY); None:
    # plaintext, for loopback or behind a TLS-terminating proxy.
    tls: ServerIdentity | None = None
    # How the gateway checks ingest and the rankers when they serve TLS (INTERNAL_TLS_CA,
    # INTERNAL_TLS_NAME); None: plaintext.
    internal_tls: internal_auth.ClientTls | None = None
    # Prometheus /metrics (pairwise.metrics): off unless <SERVICE>_METRICS_PORT is set.
    metrics: MetricsSettings = MetricsSettings()

    def __post_init__(self) -> None:
        # One token for both roles would let every platform call act as the admin.
        if self.admin_token == self.platform_token:
            raise SystemExit("settings PAIRWISE_ADMIN_TOKEN and PAIRWISE_PLATFORM_TOKEN must "
                             "differ: the admin token moderates and configures causes")
        # The internal secret records votes under any voter id: no client token may be it.
        if self.internal_secret in (self.admin_token, self.platform_token):
            raise SystemExit("setting PAIRWISE_INTERNAL_SECRET must differ from "
                             "PAIRWISE_ADMIN_TOKEN and PAIRWISE_PLATFORM_TOKEN: it opens ingest "
                             "and the rankers, which trust every vote they are sent")
        if self.ingest_channels < 1:
            raise SystemExit(f"setting GATEWAY_INGEST_CHANNELS must be >= 1, "
                             f"got {self.ingest_channels}")
        if self.newcomer_votes < 1:
            raise SystemExit(f"setting GATEWAY_NEWCOMER_VOTES must be >= 1, "
                             f"got {self.newcomer_votes}")
        for name, value in (("GATEWAY_MAX_SEEN_PAIRS", self.max_seen_pairs),
                            ("GATEWAY_SEEN_PAIRS_TTL_S", self.seen_pairs_ttl_s)):
            if value < 0:
                raise SystemExit(f"setting {name} must be >= 0 (0: no limit), got {value}")
        if not 0 <= self.newcomer_share <= 1:
            raise SystemExit(f"setting GATEWAY_NEWCOMER_SHARE must be between 0 and 1, "
                             f"got {self.newcomer_share}")

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            redis_url=env_str("REDIS_URL"),
            admin_token=env_str("PAIRWISE_ADMIN_TOKEN"),
            platform_token=env_str("PAIRWISE_PLATFORM_TOKEN"),
            token_keys=prompt_token.keys_from_env(),
            internal_secret=internal_auth.secret_from_env(),
            ingest_addr=env_str("INGEST_ADDR", "127.0.0.1:50052"),
            ingest_channels=env_int("GATEWAY_INGEST_CHANNELS", 4),
            rankers_refresh_s=env_float("GATEWAY_RANKERS_REFRESH_S", 1.0),
            host=env_str("GATEWAY_HOST", "127.0.0.1"),
            port=env_int("GATEWAY_PORT", 50051),
            reuse_port=env_bool("GATEWAY_REUSE_PORT", False),
            prompt_ttl_s=env_float("PROMPT_TTL_S", 900.0),
            voter_rate_per_s=env_float("VOTER_RATE_PER_S", 2.0),
            voter_burst=env_int("VOTER_BURST", 60),
            cause_rate_per_s=env_float("CAUSE_RATE_PER_S", 0.0),
            cause_burst=env_int("CAUSE_BURST", 0),
            platform_rate_per_s=env_float("PLATFORM_RATE_PER_S", 0.0),
            platform_burst=env_int("PLATFORM_BURST", 0),
            internal_timeout_s=env_float("INTERNAL_TIMEOUT_S", 10.0),
            import_chunk=env_int("IMPORT_CHUNK", 5000),
            vote_group_max=env_int("GATEWAY_VOTE_GROUP_MAX", 256),
            vote_groups_in_flight=env_int("GATEWAY_VOTE_GROUPS_IN_FLIGHT", 1),
            script_groups_in_flight=env_int("GATEWAY_SCRIPT_GROUPS_IN_FLIGHT", 1),
            redis_max_connections=env_int("GATEWAY_REDIS_CONNECTIONS", 64),
            redis_pool_timeout_s=env_float("GATEWAY_REDIS_POOL_TIMEOUT_S", 5.0),
            redis_connect_timeout_s=env_float("REDIS_CONNECT_TIMEOUT_S", 1.0),
            redis_socket_timeout_s=env_float("REDIS_SOCKET_TIMEOUT_S", 5.0),
            pair_selection=_pair_selection(env_str("GATEWAY_PAIR_SELECTION", "adaptive")),
            newcomer_votes=env_int("GATEWAY_NEWCOMER_VOTES", DEFAULT_NEWCOMER_VOTES),
            newcomer_share=env_float("GATEWAY_NEWCOMER_SHARE", 0.3),
            max_concurrent_rpcs=env_int("GATEWAY_MAX_CONCURRENT_RPCS",
                                        DEFAULT_MAX_CONCURRENT_RPCS),
            max_watches=env_int("GATEWAY_MAX_WATCHES", 2_000),
            max_watches_per_cause=env_int("GATEWAY_MAX_WATCHES_PER_CAUSE", 500),
            max_proposals=env_int("GATEWAY_MAX_PROPOSALS", DEFAULT_MAX_PROPOSALS),
            max_seen_pairs=env_int("GATEWAY_MAX_SEEN_PAIRS", DEFAULT_MAX_SEEN_PAIRS),
            seen_pairs_ttl_s=env_int("GATEWAY_SEEN_PAIRS_TTL_S", DEFAULT_SEEN_PAIRS_TTL_S),
            archive_dir=env_str("GATEWAY_ARCHIVE_DIR", "archive"),
            tls=ServerIdentity.from_files("GATEWAY_TLS_CERT", env_str("GATEWAY_TLS_CERT", ""),
                                          "GATEWAY_TLS_KEY", env_str("GATEWAY_TLS_KEY", "")),
            internal_tls=internal_auth.client_tls_from_env(),
            metrics=MetricsSettings.from_env("gateway"),
        )


def _pair_selection(value: str) -> PairSelection:
    """GATEWAY_PAIR_SELECTION's strategy; any other value than uniform or adaptive (in any
    case) stops start-up naming the setting."""
    try:
        return PairSelection(value.strip().upper())
    except ValueError:
        choices = " or ".join(s.lower() for s in PairSelection)
        raise SystemExit(f"setting GATEWAY_PAIR_SELECTION must be {choices}, "
                         f"got {value!r}") from None
