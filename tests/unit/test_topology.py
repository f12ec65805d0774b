"""What `make up` starts for GATEWAYS / INGESTS / RANKERS: stateless front doors share one
port each (and say so to the kernel), rankers each get a port of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.run_folder import RunFolder
from cluster.tokens import Tokens
from cluster.topology import plan
from pairwise.metrics import MetricsSettings

TOKENS = Tokens("admin", "platform", "s" * 32, "i" * 32, "redis-password", {},
                {user: f"redis-{user}" for user in ("ingest", "ranker", "gateway")})


def processes(environ: dict[str, str], tmp_path: Path) -> dict[str, dict[str, object]]:
    topology = plan(RunFolder(tmp_path), environ, TOKENS)
    return {p.name: {"addr": p.addr, "env": dict(p.env)} for p in topology.processes}


def test_one_of_each_by_default(tmp_path: Path) -> None:
    found = processes({}, tmp_path)
    assert set(found) == {"redis", "ingest", "ranker", "gateway", "console"}


def test_front_doors_share_their_port_and_rankers_do_not(tmp_path: Path) -> None:
    found = processes({"GATEWAYS": "3", "INGESTS": "2", "RANKERS": "2",
                       "GATEWAY_PORT": "51051", "INGEST_PORT": "51052",
                       "RANKER_PORT": "51053"}, tmp_path)
    gateways = [found[f"gateway-{k}"] for k in range(3)]
    ingests = [found[f"ingest-{k}"] for k in range(2)]
    assert {g["addr"] for g in gateways} == {"127.0.0.1:51051"}
    assert {i["addr"] for i in ingests} == {"127.0.0.1:51052"}
    assert all(g["env"]["GATEWAY_REUSE_PORT"] == "1" for g in gateways)  # type: ignore[index]
    assert all(i["env"]["INGEST_REUSE_PORT"] == "1" for i in ingests)  # type: ignore[index]
    assert all(g["env"]["INGEST_ADDR"] == "127.0.0.1:51052" for g in gateways)  # type: ignore[index]
    assert {found["ranker-0"]["addr"], found["ranker-1"]["addr"]} == {
        "127.0.0.1:51053", "127.0.0.1:51054"}
    # Every replica connects to Redis as its service's user and bears the internal secret.
    for name, process in found.items():
        if name not in ("redis", "console"):  # the console holds no secret, only its users'
            user = name.split("-")[0]
            env: dict[str, str] = process["env"]  # type: ignore[assignment]
            assert env["REDIS_URL"].startswith(f"redis://{user}:redis-{user}@"), name
            assert env["PAIRWISE_INTERNAL_SECRET"] == "i" * 32, name


@pytest.mark.parametrize("name", ["GATEWAYS", "INGESTS", "RANKERS"])
def test_a_count_below_one_stops_start_up_naming_it(name: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=name):
        plan(RunFolder(tmp_path), {name: "0"}, TOKENS)


def test_metrics_are_off_unless_a_port_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_METRICS_PORT", "RANKER_METRICS_PORT", "METRICS_HOST",
                 "METRICS_PORT_RANGE"):
        monkeypatch.delenv(name, raising=False)
    assert not MetricsSettings.from_env("gateway").enabled
    monkeypatch.setenv("GATEWAY_METRICS_PORT", "9101")
    monkeypatch.setenv("METRICS_PORT_RANGE", "8")
    settings = MetricsSettings.from_env("gateway")
    assert (settings.enabled, settings.host, settings.port, settings.port_range) == (
        True, "127.0.0.1", 9101, 8)
    assert not MetricsSettings.from_env("ranker").enabled
