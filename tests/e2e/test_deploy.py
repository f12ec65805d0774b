"""deploy/docker-compose.yml is a valid compose file for Debian's docker-compose 1.29 and
describes the cluster operators expect: Redis with AOF on a named volume, health checks,
restart policies, rankers, gateways and ingests that scale, secrets required from the
environment. Those checks need no Docker engine: `docker-compose config` only parses and
normalises the file.

Then the cluster for real (slow): the image built, `docker-compose up`, votes through the
gateway, a killed container repaired, the gateway scaled out behind its one address. It
runs where a Docker engine answers, and is skipped, saying why, elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import eventually

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose.yml"
TLS_FILE = COMPOSE_FILE.with_name("docker-compose.tls.yml")
SECRETS = {"PAIRWISE_ADMIN_TOKEN": "compose-admin", "PAIRWISE_PLATFORM_TOKEN": "compose-platform",
           "PAIRWISE_TOKEN_SECRET": "compose-secret-" + "c" * 32,
           "PAIRWISE_INTERNAL_SECRET": "compose-internal-" + "i" * 32,
           "PAIRWISE_REDIS_PASSWORD": "compose-redis-password",
           **{f"PAIRWISE_REDIS_{user.upper()}_PASSWORD": f"compose-redis-{user}"
              for user in ("ingest", "ranker", "gateway")}}
SERVICES = {"redis", "ingest", "ranker", "gateway", "console"}


def docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is not installed: `make tools` installs Debian's "
                    "docker-compose package (needs root and apt-get); tests/e2e/test_deploy.py "
                    "validates deploy/docker-compose.yml with it", pytrace=False)
    return found


def compose(*args: str, env: dict[str, str],
            files: tuple[Path, ...] = (COMPOSE_FILE,)) -> subprocess.CompletedProcess[str]:
    # Only what compose needs: no stray variables from the caller change the interpolation.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    chosen = [arg for path in files for arg in ("-f", str(path))]
    return subprocess.run([docker_compose(), *chosen, *args], env=clean,
                          capture_output=True, text=True, timeout=60)


def normalised_config(files: tuple[Path, ...] = (COMPOSE_FILE,),
                      env: dict[str, str] = SECRETS) -> dict[str, Any]:
    result = compose("config", env=env, files=files)
    assert result.returncode == 0, result.stderr
    # docker-compose prints YAML; its own interpreter has PyYAML (a dependency of the
    # Debian package), so it converts to JSON without adding PyYAML to the project.
    interpreter = Path(docker_compose()).read_text(errors="replace").splitlines()[0][2:].strip()
    converted = subprocess.run(
        [*interpreter.split(), "-c",
         "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=result.stdout, capture_output=True, text=True, timeout=60)
    assert converted.returncode == 0, converted.stderr
    config: dict[str, Any] = json.loads(converted.stdout)
    return config


def test_compose_file_is_valid() -> None:
    result = compose("config", "-q", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_compose_describes_the_cluster() -> None:
    config = normalised_config()
    services = config["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
        assert service["network_mode"] == "host", name
        assert service["healthcheck"]["test"][0] == "CMD", name
        # Longer than the servers' 5 s drain, so in-flight votes finish before SIGKILL.
        assert service["stop_grace_period"] == "15s", name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
    for name in SERVICES - {"redis"}:
        assert services[name]["healthcheck"]["test"][1:4] == [
            "python", "-m", "pairwise.health_probe"], name

    redis = services["redis"]
    # Started as `make up` starts it (AOF on: pairwise.embedded_redis), with a password that
    # every service's REDIS_URL carries and the command line does not.
    assert redis["command"][:3] == ["python", "-m", "pairwise.embedded_redis"]
    assert redis["environment"]["PAIRWISE_REDIS_PASSWORD"] == "compose-redis-password"
    assert "compose-redis-password" not in " ".join(redis["command"])
    # Each service as its own Redis user, with its own password.
    for name in SERVICES - {"redis", "console"}:
        user = name.split("-")[0]
        assert services[name]["environment"]["REDIS_URL"].startswith(
            f"redis://{user}:compose-redis-{user}@127.0.0.1:"), name
        assert redis["environment"][f"PAIRWISE_REDIS_{user.upper()}_PASSWORD"] == (
            f"compose-redis-{user}")
    # Ingest and the rankers check the internal secret; the gateway sends it.
    for name in SERVICES - {"redis", "console"}:
        assert services[name]["environment"]["PAIRWISE_INTERNAL_SECRET"] == SECRETS[
            "PAIRWISE_INTERNAL_SECRET"], name
    assert "PAIRWISE_INTERNAL_SECRET" not in redis["environment"]
    assert redis["volumes"] == ["redis-data:/data:rw"]
    assert "redis-data" in config["volumes"]

    # Replicas of a service are alike: the stateless ones share their port, the rankers each
    # take a free one and publish it in the directory (the health check reads it from a file).
    ranker = services["ranker"]
    assert ranker["scale"] == 2
    assert ranker["environment"]["RANKER_PORT"] == "0"
    assert ranker["healthcheck"]["test"][4:6] == [
        "--port-file", ranker["environment"]["RANKER_PORT_FILE"]]
    assert services["gateway"]["environment"]["GATEWAY_REUSE_PORT"] == "1"
    assert services["ingest"]["environment"]["INGEST_REUSE_PORT"] == "1"
    for name in SERVICES - {"redis", "console"}:
        assert "container_name" not in services[name], name
        assert int(services[name]["environment"]["METRICS_PORT_RANGE"]) > 1, name
    gateway = services["gateway"]
    assert "RANKER_ADDRS" not in gateway["environment"]  # found in the directory of rankers
    assert gateway["environment"]["PAIRWISE_ADMIN_TOKEN"] == "compose-admin"
    assert {name: dep["condition"] for name, dep in gateway["depends_on"].items()} == {
        "ingest": "service_healthy", "ranker": "service_healthy"}
    assert services["ingest"]["depends_on"]["redis"]["condition"] == "service_healthy"
    # The console reaches the cluster only through the gateway, with each operator's token.
    console = services["console"]
    assert set(console["environment"]) == {"CONSOLE_HOST", "CONSOLE_PORT", "GATEWAY_ADDR"}
    assert console["environment"]["CONSOLE_HOST"] == "127.0.0.1"
    assert console["healthcheck"]["test"][4] == "--http"
    assert console["depends_on"]["gateway"]["condition"] == "service_healthy"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_run_without_a_secret(missing: str) -> None:
    env = {name: value for name, value in SECRETS.items() if name != missing}
    result = compose("config", "-q", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


TLS_ENV = {**SECRETS, "GATEWAY_TLS_DIR": "/etc/pairwise/tls", "GATEWAY_TLS_NAME": "vote.example",
           "INTERNAL_TLS_NAME": "pairwise.internal"}


def test_the_tls_file_serves_every_grpc_port_over_tls_and_probes_it_so() -> None:
    services = normalised_config((COMPOSE_FILE, TLS_FILE), TLS_ENV)["services"]
    gateway = services["gateway"]
    assert gateway["environment"]["GATEWAY_TLS_CERT"] == "/tls/gateway.crt"
    assert gateway["environment"]["GATEWAY_TLS_KEY"] == "/tls/gateway.key"
    # The gateway trusts the internal certificate and checks the name it carries.
    assert gateway["environment"]["INTERNAL_TLS_CA"] == "/tls/internal.crt"
    assert gateway["environment"]["INTERNAL_TLS_NAME"] == "pairwise.internal"
    probe = gateway["healthcheck"]["test"]
    assert probe[1:4] == ["python", "-m", "pairwise.health_probe"]
    assert probe[5:] == ["--tls-cert", "/tls/gateway.crt", "--tls-name", "vote.example"]
    for name in SERVICES - {"redis"}:
        assert "/etc/pairwise/tls:/tls:ro" in services[name]["volumes"], name
    # The console dials the gateway over TLS, trusting its certificate.
    console = services["console"]["environment"]
    assert (console["GATEWAY_TLS_CA"], console["GATEWAY_TLS_NAME"]) == (
        "/tls/gateway.crt", "vote.example")
    assert console["GATEWAY_ADDR"].startswith("127.0.0.1:")
    for name in SERVICES - {"redis", "gateway", "console"}:
        environment = services[name]["environment"]
        assert (environment["INTERNAL_TLS_CERT"], environment["INTERNAL_TLS_KEY"]) == (
            "/tls/internal.crt", "/tls/internal.key"), name
        # The base file's settings stay: the override adds to them.
        assert "PAIRWISE_INTERNAL_SECRET" in environment and "REDIS_URL" in environment, name
        assert services[name]["healthcheck"]["test"][-4:] == [
            "--tls-cert", "/tls/internal.crt", "--tls-name", "pairwise.internal"], name
    # The rankers' probe still finds the port each replica took in its port file.
    assert services["ranker"]["healthcheck"]["test"][4:7] == [
        "--port-file", services["ranker"]["environment"]["RANKER_PORT_FILE"], "127.0.0.1"]


@pytest.mark.parametrize("missing", ["GATEWAY_TLS_DIR", "GATEWAY_TLS_NAME", "INTERNAL_TLS_NAME"])
def test_the_tls_file_refuses_to_run_without_its_settings(missing: str) -> None:
    env = {name: value for name, value in TLS_ENV.items() if name != missing}
    result = compose("config", "-q", env=env, files=(COMPOSE_FILE, TLS_FILE))
    assert result.returncode != 0
    assert missing in result.stderr


# -- the compose cluster for real: image built, containers up, votes, a kill, a scale-out ----

ROOT = COMPOSE_FILE.parents[1]
# Where this test starts its own Docker engine when asked to (PAIRWISE_DOCKERD=1, as root):
# kept between runs, so the base image and the build's layers are there the next time.
DOCKER_ROOT = Path(os.environ.get("PAIRWISE_DOCKER_ROOT", "/var/tmp/pairwise-docker"))
# A Debian 12 root filesystem with python3 + python3-venv (README, Deploy: debootstrap).
BASE_IMAGE = "local/debian-py:bookworm"
BASE_ROOTFS = Path(os.environ.get("PAIRWISE_BASE_ROOTFS", "/var/tmp/debian-py"))


def _docker_answers(env: dict[str, str]) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "version", "--format", "{{.Server.Version}}"],
                              env=env, capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def docker_env() -> Iterator[dict[str, str]]:
    """The environment of docker and docker-compose commands for an engine that answers:
    the caller's (DOCKER_HOST or the default socket), or one this test starts when
    PAIRWISE_DOCKERD=1 (as the README's Deploy section runs it: no bridge, no iptables,
    host networking only). Skips, saying why, when there is none."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("DOCKER_", "PATH", "HOME"))}
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        pytest.skip("docker or docker-compose is not installed (apt-get install docker.io "
                    "docker-compose)")
    if _docker_answers(env):
        yield env
        return
    if os.environ.get("PAIRWISE_DOCKERD") != "1":
        pytest.skip("no Docker engine answers: start dockerd as the README's Deploy section "
                    "says (DOCKER_HOST), or set PAIRWISE_DOCKERD=1 for this test to start "
                    "one as root")
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        pytest.skip("PAIRWISE_DOCKERD=1 needs dockerd (docker.io) and root")
    DOCKER_ROOT.mkdir(parents=True, exist_ok=True)
    socket_path = DOCKER_ROOT / "docker.sock"
    env["DOCKER_HOST"] = f"unix://{socket_path}"
    log = open(DOCKER_ROOT / "dockerd.log", "ab")  # noqa: SIM115 (closed below)
    engine = subprocess.Popen(
        [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false",
         f"--data-root={DOCKER_ROOT / 'data'}", f"--exec-root={DOCKER_ROOT / 'exec'}",
         f"--pidfile={DOCKER_ROOT / 'dockerd.pid'}", f"--host={env['DOCKER_HOST']}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        eventually(lambda: _docker_answers(env), "the Docker engine this test started",
                   timeout=60, interval=0.5)
        yield env
    finally:
        engine.terminate()
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait()
        log.close()


def _run(argv: list[str], env: dict[str, str], timeout: float,
         input_bytes: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(argv, env=env, capture_output=True, timeout=timeout,
                            input=input_bytes)
    assert result.returncode == 0, (argv, result.stdout[-2000:], result.stderr[-2000:])
    return result


@pytest.fixture(scope="module")
def base_image(docker_env: dict[str, str]) -> str:
    """The offline base image in the engine, imported from BASE_ROOTFS when missing."""
    docker = shutil.which("docker") or "docker"
    present = subprocess.run([docker, "image", "inspect", BASE_IMAGE], env=docker_env,
                             capture_output=True, timeout=30).returncode == 0
    if not present:
        if not (BASE_ROOTFS / "usr" / "bin" / "python3").exists():
            pytest.skip(f"no base image {BASE_IMAGE} and no Debian root filesystem at "
                        f"{BASE_ROOTFS} to import (README, Deploy: debootstrap)")
        tar = subprocess.Popen(["tar", "-C", str(BASE_ROOTFS), "-c", "."],
                               stdout=subprocess.PIPE)
        imported = subprocess.run([docker, "import", "-", BASE_IMAGE], stdin=tar.stdout,
                                  env=docker_env, capture_output=True, timeout=300)
        tar.wait()
        assert imported.returncode == 0, imported.stderr
    return BASE_IMAGE


@dataclass
class ComposeCluster:
    env: dict[str, str]
    project: str
    gateway_addr: str
    metrics_base: dict[str, int]

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return _run([docker_compose(), "-f", str(COMPOSE_FILE), "-p", self.project, *args],
                    self.env, timeout)

    def containers(self, service: str) -> list[str]:
        out = self.compose("ps", "-q", service).stdout.decode().split()
        return sorted(out)

    def inspect(self, container: str, template: str) -> str:
        return _run([shutil.which("docker") or "docker", "inspect", "-f", template, container],
                    self.env, 30).stdout.decode().strip()

    def all_healthy(self, expected: dict[str, int]) -> bool:
        for service, count in expected.items():
            ids = self.containers(service)
            if len(ids) != count:
                return False
            if any(self.inspect(c, "{{.State.Health.Status}}") != "healthy" for c in ids):
                return False
        return True


@pytest.fixture(scope="module")
def compose_cluster(docker_env: dict[str, str], base_image: str) -> Iterator[ComposeCluster]:
    # Every time, not only into an empty folder: wheels left there by an earlier lock lack
    # what the lock gained since, and pip skips the ones already downloaded.
    _run(["make", "-C", str(ROOT), "image-wheels"], {**os.environ}, 600)
    from pairwise.embedded_redis import free_port

    ports = {name: str(free_port()) for name in ("REDIS_PORT", "INGEST_PORT", "GATEWAY_PORT")}
    # Each replica takes the first free port of its range of 8 from these.
    metrics = {"gateway": 19101 + (os.getpid() % 50) * 40}
    metrics.update(ingest=metrics["gateway"] + 10, ranker=metrics["gateway"] + 20)
    env = {**docker_env, **SECRETS, **ports, "BASE_IMAGE": base_image,
           "PAIRWISE_IMAGE": "pairwise:e2e",
           **{f"{k.upper()}_METRICS_PORT": str(v) for k, v in metrics.items()}}
    cluster = ComposeCluster(env, f"pairwise-e2e-{os.getpid()}",
                             f"127.0.0.1:{ports['GATEWAY_PORT']}", metrics)
    try:
        cluster.compose("build", timeout=600)
        cluster.compose("up", "-d", timeout=300)
        yield cluster
    finally:
        subprocess.run([docker_compose(), "-f", str(COMPOSE_FILE), "-p", cluster.project,
                        "down", "-v", "-t", "20"], env=env, capture_output=True, timeout=180)


def _vote(cluster: ComposeCluster, cause_id: str, votes: int) -> None:
    """`votes` votes through the gateway address over several connections, then wait until
    the ranking counts every vote ingest accepted."""
    import grpc

    from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

    admin = (("authorization", f"Bearer {SECRETS['PAIRWISE_ADMIN_TOKEN']}"),)
    platform = (("authorization", f"Bearer {SECRETS['PAIRWISE_PLATFORM_TOKEN']}"),)
    channels = [grpc.insecure_channel(cluster.gateway_addr,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(16)]
    try:
        stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in channels]
        stubs[0].CreateCause(gateway_pb2.CreateCauseRequest(
            cause_id=cause_id, title=cause_id, auto_accept_proposals=True),
            metadata=admin, timeout=30)
        stubs[0].AddProposals(gateway_pb2.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"p{i}", text=f"proposal {i}")
            for i in range(10)]), metadata=admin, timeout=30)
        for n in range(votes):
            stub = stubs[n % len(stubs)]
            pair = stub.NextPair(gateway_pb2.NextPairRequest(
                cause_id=cause_id, voter_id=f"v{n}"), metadata=platform, timeout=30)
            stub.SubmitVote(gateway_pb2.SubmitVoteRequest(
                cause_id=cause_id, voter_id=f"v{n}", prompt_token=pair.prompt_token,
                choice=types_pb2.CHOICE_RIGHT, idempotency_key=f"{cause_id}-{n}"),
                metadata=platform, timeout=30)
        stats = eventually(
            lambda: stubs[0].GetCauseStats(gateway_pb2.GetCauseStatsRequest(
                cause_id=cause_id), metadata=admin, timeout=30),
            f"{cause_id}: every vote counted", timeout=120, interval=0.5,
            until=lambda s: s.votes_counted == s.votes_accepted)
        # Votes sooner than INGEST_MIN_VIEW_MS after their prompt are kept, flagged: counted.
        assert stats.votes_accepted == votes
    finally:
        for channel in channels:
            channel.close()


@pytest.mark.slow
def test_compose_cluster_serves_repairs_a_kill_and_scales_the_gateway(
        compose_cluster: ComposeCluster) -> None:
    cluster = compose_cluster
    expected = {"redis": 1, "ingest": 1, "ranker": 2, "gateway": 1}
    eventually(lambda: cluster.all_healthy(expected), "every container healthy",
               timeout=180, interval=1)
    _vote(cluster, "compose-e2e", 30)

    # A ranker's main process killed: compose's restart policy brings the container back,
    # and every vote is still counted exactly once.
    victim = cluster.containers("ranker")[0]
    pid = int(cluster.inspect(victim, "{{.State.Pid}}"))
    os.kill(pid, 9)
    eventually(lambda: int(cluster.inspect(victim, "{{.RestartCount}}")) >= 1,
               "the killed ranker's container restarted", timeout=60, interval=0.5)
    eventually(lambda: cluster.all_healthy(expected), "every container healthy again",
               timeout=120, interval=1)
    _vote(cluster, "compose-e2e-after-kill", 30)

    # Scale-out: a second gateway shares the first's port; clients keep one address.
    cluster.compose("up", "-d", "--no-recreate", "--scale", "gateway=2", "--scale",
                    "ranker=2", timeout=180)
    expected["gateway"] = 2
    eventually(lambda: cluster.all_healthy(expected), "two healthy gateways",
               timeout=120, interval=1)
    _vote(cluster, "compose-e2e-scaled", 48)
    from prometheus_client.parser import text_string_to_metric_families

    def submits(port: int) -> float:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "grpc_server_handled_total"
                   and s.labels.get("grpc_method") == "SubmitVote")

    base = cluster.metrics_base["gateway"]
    assert submits(base) > 0 and submits(base + 1) > 0
