"""Several gateway and ingest processes behind one address each, as `make up GATEWAYS=2
INGESTS=2` starts them, with every service's Prometheus metrics on: clients see one gateway
address, every process takes a share of the calls, a killed gateway costs the clients
nothing, and the counters scraped over HTTP move with the votes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from conftest import eventually
from prometheus_client.parser import text_string_to_metric_families

from cluster.run_folder import RunFolder
from cluster.tokens import ADMIN, PLATFORM, read_file
from pairwise.embedded_redis import free_port
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FROM_OUTSIDE = ("REDIS_URL", "PAIRWISE_ADMIN_TOKEN", "PAIRWISE_PLATFORM_TOKEN",
                         "PAIRWISE_TOKEN_SECRET", "PAIRWISE_REDIS_PASSWORD", "RANKERS",
                         "GATEWAYS", "INGESTS")
# Connections the test's client and each gateway open: the kernel spreads connections, not
# calls, over the processes sharing a port, at random; with 16 the chance that all land on
# one of two processes is 2**-15.
CONNECTIONS = 16


@dataclass
class Cluster:
    run: RunFolder
    env: dict[str, str]
    gateway_addr: str
    metrics_ports: dict[str, list[int]]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cluster", *args, "--run-dir",
                               str(self.run.root)], env=self.env, capture_output=True,
                              text=True, timeout=120)

    def pid(self, name: str) -> int:
        return int(self.run.read_state()["children"][name]["pid"])


def scrape(port: int) -> dict[str, float]:
    """Every sample at 127.0.0.1:`port`/metrics, keyed "name{label=value,...}"."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def scrape_or_none(port: int) -> dict[str, float] | None:
    """`scrape(port)`, or None while nothing serves there yet."""
    try:
        return scrape(port)
    except OSError:
        return None


def scrape_each(ports: list[int]) -> list[dict[str, float]]:
    """The samples of every port, once each serves (`up` is healthy as soon as one process of
    a shared port answers; the other may still be starting)."""
    found = eventually(lambda: [scrape_or_none(p) for p in ports],
                       f"metrics on every port of {ports}",
                       until=lambda samples: all(s is not None for s in samples))
    return [s for s in found if s is not None]


def scrape_first(ports: list[int]) -> dict[str, float]:
    """The samples of the first of `ports` that answers (a lone process took one of them)."""
    for port in ports[:-1]:
        try:
            return scrape(port)
        except OSError:
            continue
    return scrape(ports[-1])


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of `name`'s samples whose labels include `labels`."""
    wanted = [f"{k}={v}" for k, v in labels.items()]
    return sum(value for key, value in samples.items()
               if key.startswith(name + "{") and all(w in key for w in wanted))


@pytest.fixture
def front_doors(tmp_path: Path) -> Iterator[Cluster]:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_FROM_OUTSIDE}
    base.update({"RANKER_FIT_INTERVAL_S": "0.1", "RANKER_CHECKPOINT_INTERVAL_S": "0.3",
                 "RANKER_DISCOVER_INTERVAL_S": "0.1", "INGEST_MIN_VIEW_MS": "0",
                 "GATEWAYS": "2", "INGESTS": "2", "GATEWAY_INGEST_CHANNELS": str(CONNECTIONS),
                 "METRICS_PORT_RANGE": "2"})
    run = RunFolder(tmp_path / "run")
    for _ in range(3):
        ports = {name: free_port() for name in
                 ("REDIS_PORT", "INGEST_PORT", "RANKER_PORT", "GATEWAY_PORT")}
        # Two metrics ports per kind (the two processes take one each), all free just now.
        metrics = {kind: [free_port(), 0] for kind in ("gateway", "ingest", "ranker")}
        env = {**base, **{k: str(v) for k, v in ports.items()},
               **{f"{kind.upper()}_METRICS_PORT": str(p[0]) for kind, p in metrics.items()}}
        cluster = Cluster(run, env, f"127.0.0.1:{ports['GATEWAY_PORT']}",
                          {kind: [p[0], p[0] + 1] for kind, p in metrics.items()})
        up = cluster.cli("up")
        if "port in use" not in up.stdout and "cannot serve metrics" not in up.stdout:
            break
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield cluster
    finally:
        cluster.cli("down")


def vote(cluster: Cluster, cause_id: str, votes: int) -> None:
    """`votes` NextPair + SubmitVote through the gateway address, spread over connections."""
    tokens = read_file(cluster.run.tokens_file)
    admin = (("authorization", f"Bearer {tokens[ADMIN]}"),)
    platform = (("authorization", f"Bearer {tokens[PLATFORM]}"),)
    channels = [grpc.insecure_channel(cluster.gateway_addr,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(CONNECTIONS)]
    try:
        stubs = [gateway_pb2_grpc.GatewayServiceStub(c) for c in channels]
        stubs[0].CreateCause(gateway_pb2.CreateCauseRequest(
            cause_id=cause_id, title="front doors", auto_accept_proposals=True),
            metadata=admin, timeout=10)
        stubs[0].AddProposals(gateway_pb2.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=f"p{i}", text=f"proposal {i}")
            for i in range(20)]), metadata=admin, timeout=10)
        for n in range(votes):
            stub = stubs[n % len(stubs)]
            pair = stub.NextPair(gateway_pb2.NextPairRequest(
                cause_id=cause_id, voter_id=f"v{n}"), metadata=platform, timeout=10)
            stub.SubmitVote(gateway_pb2.SubmitVoteRequest(
                cause_id=cause_id, voter_id=f"v{n}", prompt_token=pair.prompt_token,
                choice=types_pb2.CHOICE_LEFT, idempotency_key=f"k{n}"),
                metadata=platform, timeout=10)
    finally:
        for channel in channels:
            channel.close()


def test_two_gateways_and_two_ingests_share_their_ports_and_count_in_metrics(
        front_doors: Cluster) -> None:
    cluster = front_doors
    state = cluster.run.read_state()["children"]
    assert {"gateway-0", "gateway-1", "ingest-0", "ingest-1", "ranker"} <= set(state)
    assert state["gateway-0"]["addr"] == state["gateway-1"]["addr"] == cluster.gateway_addr

    front = ("gateway", "ingest")
    before = {kind: scrape_each(cluster.metrics_ports[kind]) for kind in front}
    vote(cluster, "front-doors", 64)

    # Each process of a kind answered some of the calls.
    after = {kind: scrape_each(cluster.metrics_ports[kind]) for kind in front}
    for gateway in after["gateway"]:
        assert total(gateway, "grpc_server_handled_total", grpc_method="SubmitVote",
                     grpc_code="OK") > 0
    accepted = [total(now, "pairwise_ingest_votes_total", outcome="accepted")
                - total(then, "pairwise_ingest_votes_total", outcome="accepted")
                for now, then in zip(after["ingest"], before["ingest"], strict=True)]
    assert all(n > 0 for n in accepted) and sum(accepted) == 64
    # The latency histogram counts every call it timed.
    assert sum(total(g, "grpc_server_handling_seconds_count", grpc_method="SubmitVote")
               for g in after["gateway"]) == 64

    # The ranker counts them: fits, checkpoints, the cause loaded, the lag back to 0.
    def ranker() -> dict[str, float]:
        return scrape_first(cluster.metrics_ports["ranker"])

    counted = eventually(
        ranker, "the ranker's metrics: a fit, a checkpoint and no lag",
        until=lambda m: total(m, "pairwise_ranker_fit_seconds_count") > 0
        and total(m, "pairwise_ranker_checkpoint_bytes_count") > 0
        and m.get("pairwise_ranker_lag_votes{cause=front-doors}") == 0.0)
    assert total(counted, "pairwise_ranker_cause_events_total", event="loaded") >= 1
    assert counted["pairwise_ranker_causes_loaded{}"] >= 1

    # A refused call is counted with the code the client saw.
    refused = grpc.insecure_channel(cluster.gateway_addr)
    with pytest.raises(grpc.RpcError) as caught:
        gateway_pb2_grpc.GatewayServiceStub(refused).GetCause(
            gateway_pb2.GetCauseRequest(cause_id="front-doors"),
            metadata=(("authorization", "Bearer wrong"),), timeout=10)
    refused.close()
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert sum(total(g, "grpc_server_handled_total", grpc_method="GetCause",
                     grpc_code="UNAUTHENTICATED")
               for g in scrape_each(cluster.metrics_ports["gateway"])) == 1

    # Every family the dashboard plots is one the services serve.
    served = {key.split("{")[0] for samples in (*after["gateway"], *after["ingest"], counted)
              for key in samples}
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    plotted = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\b(?:grpc_server|pairwise)_[a-z_]+", target["expr"])}
    assert plotted and plotted <= served, plotted - served

    # One gateway killed: the supervisor brings it back on the same port, and the address
    # serves every vote. (Connections the kernel had queued for the killed process are
    # reset with it: a client retries those, as any UNAVAILABLE.)
    killed = cluster.pid("gateway-0")
    os.kill(killed, signal.SIGKILL)
    eventually(lambda: cluster.run.read_state()["children"]["gateway-0"],
               "gateway-0 restarted", until=lambda c: c["pid"] not in (None, killed)
               and c["restarts"] >= 1)
    vote(cluster, "front-doors-2", 16)
