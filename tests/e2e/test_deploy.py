"""deploy/docker-compose.yml is a valid compose file for Debian's docker-compose 1.29 and
describes the cluster operators expect: Redis with AOF on a named volume, health checks,
restart policies, two rankers, secrets required from the environment.

Needs no Docker engine: `docker-compose config` only parses and normalises the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "docker-compose.yml"
TLS_FILE = COMPOSE_FILE.with_name("docker-compose.tls.yml")
SECRETS = {"PAIRWISE_ADMIN_TOKEN": "compose-admin", "PAIRWISE_PLATFORM_TOKEN": "compose-platform",
           "PAIRWISE_TOKEN_SECRET": "compose-secret-" + "c" * 32,
           "PAIRWISE_INTERNAL_SECRET": "compose-internal-" + "i" * 32,
           "PAIRWISE_REDIS_PASSWORD": "compose-redis-password",
           **{f"PAIRWISE_REDIS_{user.upper()}_PASSWORD": f"compose-redis-{user}"
              for user in ("ingest", "ranker", "gateway")}}
SERVICES = {"redis", "ingest", "ranker-0", "ranker-1", "gateway", "console"}


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

    names = {services[f"ranker-{i}"]["environment"]["RANKER_NAME"] for i in (0, 1)}
    assert names == {"ranker-0", "ranker-1"}
    gateway = services["gateway"]
    assert "RANKER_ADDRS" not in gateway["environment"]  # found in the directory of rankers
    assert gateway["environment"]["PAIRWISE_ADMIN_TOKEN"] == "compose-admin"
    assert {name: dep["condition"] for name, dep in gateway["depends_on"].items()} == {
        "ingest": "service_healthy", "ranker-0": "service_healthy",
        "ranker-1": "service_healthy"}
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
    for name in SERVICES - {"redis", "console"}:
        assert "/etc/pairwise/tls:/tls:ro" in services[name]["volumes"], name
    for name in SERVICES - {"redis", "gateway", "console"}:
        environment = services[name]["environment"]
        assert (environment["INTERNAL_TLS_CERT"], environment["INTERNAL_TLS_KEY"]) == (
            "/tls/internal.crt", "/tls/internal.key"), name
        # The base file's settings stay: the override adds to them.
        assert "PAIRWISE_INTERNAL_SECRET" in environment and "REDIS_URL" in environment, name
        assert services[name]["healthcheck"]["test"][5:] == [
            "--tls-cert", "/tls/internal.crt", "--tls-name", "pairwise.internal"], name


@pytest.mark.parametrize("missing", ["GATEWAY_TLS_DIR", "GATEWAY_TLS_NAME", "INTERNAL_TLS_NAME"])
def test_the_tls_file_refuses_to_run_without_its_settings(missing: str) -> None:
    env = {name: value for name, value in TLS_ENV.items() if name != missing}
    result = compose("config", "-q", env=env, files=(COMPOSE_FILE, TLS_FILE))
    assert result.returncode != 0
    assert missing in result.stderr
