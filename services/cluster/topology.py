"""What a local cluster runs: one process per service, its command, environment and address.

Start order is Redis (embedded unless REDIS_URL is set), ingest, the rankers, gateway, then
the operator's console; stop order is the reverse by group (console and gateway first, so no
request arrives at a stopped backend; Redis last, so the services can drain their writes).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from cluster.run_folder import RunFolder
from cluster.tokens import Tokens
from pairwise import embedded_redis

LOOPBACK = "127.0.0.1"
# Cluster-level settings (the services' own are in services/*/settings.py).
DEFAULT_PORTS = {"REDIS_PORT": 6399, "INGEST_PORT": 50052, "RANKER_PORT": 50053,
                 "GATEWAY_PORT": 50051, "CONSOLE_PORT": 8051}
GRPC = "grpc"
HTTP = "http"


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process."""

    name: str
    argv: tuple[str, ...]
    # Added on top of the supervisor's own environment.
    env: Mapping[str, str] = field(default_factory=dict)
    # Address answering health checks, or None (Redis): grpc.health.v1, or GET /healthz
    # when `health` is HTTP.
    addr: str | None = None
    health: str = GRPC
    # Stopped in increasing group order; members of one group stop together.
    stop_group: int = 0
    # When set, the supervisor waits for this Redis to answer PING before starting the next
    # process, so services never start against a server still loading its AOF.
    ready_redis_url: str | None = None


@dataclass(frozen=True)
class Topology:
    processes: tuple[ProcessSpec, ...]
    redis_url: str
    embedded_redis: bool
    gateway_addr: str
    console_url: str

    def by_name(self, name: str) -> ProcessSpec:
        return next(p for p in self.processes if p.name == name)

    def ports(self) -> dict[str, int]:
        """Loopback ports this topology binds, by setting name (for a free-port check)."""
        found = {}
        for spec in self.processes:
            if spec.addr:
                found[spec.name] = int(spec.addr.rsplit(":", 1)[1])
            elif spec.ready_redis_url:
                found[spec.name] = int(spec.ready_redis_url.rsplit(":", 1)[1].split("/")[0])
        return found


def plan(run: RunFolder, environ: Mapping[str, str], tokens: Tokens,
         python: str = sys.executable) -> Topology:
    """The processes to start for `environ` (ports, REDIS_URL, RANKERS, INGESTS, GATEWAYS)
    and `tokens`.

    Raises SystemExit naming the setting when a port or a process count is not an integer,
    or when the gateway's TLS settings are set.
    """
    ports = {name: _int(environ, name, default) for name, default in DEFAULT_PORTS.items()}
    counts = {name: _int(environ, name, 1) for name in ("RANKERS", "INGESTS", "GATEWAYS")}
    for name, count in counts.items():
        if count < 1:
            raise SystemExit(f"setting {name} must be >= 1")
    rankers = counts["RANKERS"]
    processes: list[ProcessSpec] = []

    redis_url = environ.get("REDIS_URL", "")
    embedded = not redis_url
    # Each service's own Redis URL: the embedded server's user of that service, or REDIS_URL.
    service_url = dict.fromkeys(embedded_redis.SERVICE_USERS, redis_url)
    if embedded:
        # Password-protected even on loopback: any local process could otherwise rewrite
        # the vote log. `redis_url`, the default user's, is the tools' (status, load tests).
        redis_url = embedded_redis.url(ports["REDIS_PORT"], password=tokens.redis_password)
        service_url = {user: embedded_redis.url(ports["REDIS_PORT"], password=password,
                                                user=user)
                       for user, password in tokens.redis_service_passwords.items()}
        processes.append(ProcessSpec(
            name="redis",
            argv=(python, "-m", "pairwise.embedded_redis", "--port", str(ports["REDIS_PORT"]),
                  "--dir", str(run.redis_data)),
            env={embedded_redis.PASSWORD_VARIABLE: tokens.redis_password,
                 **{embedded_redis.password_variable(user): password
                    for user, password in tokens.redis_service_passwords.items()}},
            stop_group=2, ready_redis_url=redis_url))

    common = {"PYTHONUNBUFFERED": "1", **tokens.as_env()}
    # Ingest and gateway processes keep no state of their own: several of a kind share one
    # port (SO_REUSEPORT), and the kernel spreads the connections among them.
    ingest_addr = f"{LOOPBACK}:{ports['INGEST_PORT']}"
    for name in _names("ingest", counts["INGESTS"]):
        processes.append(ProcessSpec(
            name=name, argv=(python, "-m", "ingest"), addr=ingest_addr, stop_group=1,
            env={**common, "REDIS_URL": service_url["ingest"], "INGEST_HOST": LOOPBACK,
                 "INGEST_PORT": str(ports["INGEST_PORT"]), "INGEST_REUSE_PORT": "1"}))

    # Each ranker registers in the directory of rankers in Redis, where the gateway finds
    # it: none is named to the others, and more can join later on other ports.
    for k, name in enumerate(_names("ranker", rankers)):
        port = ports["RANKER_PORT"] + k
        processes.append(ProcessSpec(
            name=name, argv=(python, "-m", "ranker"), addr=f"{LOOPBACK}:{port}", stop_group=1,
            env={**common, "REDIS_URL": service_url["ranker"], "RANKER_HOST": LOOPBACK,
                 "RANKER_PORT": str(port), "RANKER_NAME": name}))

    tls_settings = ("GATEWAY_TLS_CERT", "GATEWAY_TLS_KEY", "INTERNAL_TLS_CERT",
                    "INTERNAL_TLS_KEY", "INTERNAL_TLS_CA")
    if any(environ.get(name) for name in tls_settings):
        # Its probes, demo and printed commands speak plaintext to loopback services.
        raise SystemExit(f"make up serves every service on loopback without TLS: unset "
                         f"{', '.join(tls_settings)} (TLS is for services other hosts reach: "
                         "deploy/docker-compose.tls.yml)")
    gateway_addr = f"{LOOPBACK}:{ports['GATEWAY_PORT']}"
    for name in _names("gateway", counts["GATEWAYS"]):
        processes.append(ProcessSpec(
            name=name, argv=(python, "-m", "gateway"), addr=gateway_addr, stop_group=0,
            env={**common, "REDIS_URL": service_url["gateway"], "GATEWAY_HOST": LOOPBACK,
                 "GATEWAY_PORT": str(ports["GATEWAY_PORT"]), "GATEWAY_REUSE_PORT": "1",
                 "INGEST_ADDR": ingest_addr,
                 # Archives beside the cluster's data, unless the operator chose a place.
                 "GATEWAY_ARCHIVE_DIR": environ.get("GATEWAY_ARCHIVE_DIR")
                 or str(run.root / "archive")}))

    # The console holds no token: each operator signs in with the admin token, which it
    # passes on to the gateway with every call.
    console_addr = f"{LOOPBACK}:{ports['CONSOLE_PORT']}"
    processes.append(ProcessSpec(
        name="console", argv=(python, "-m", "console"), addr=console_addr, health=HTTP,
        stop_group=0, env={"PYTHONUNBUFFERED": "1", "CONSOLE_HOST": LOOPBACK,
                           "CONSOLE_PORT": str(ports["CONSOLE_PORT"]),
                           "GATEWAY_ADDR": gateway_addr}))
    return Topology(tuple(processes), redis_url, embedded, gateway_addr,
                    f"http://{console_addr}/")


def _names(kind: str, count: int) -> list[str]:
    """`kind` alone, or `kind-0`, `kind-1`, ... when there are several."""
    return [kind] if count == 1 else [f"{kind}-{k}" for k in range(count)]


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise SystemExit(f"setting {name} must be an integer, got {value!r}") from exc
