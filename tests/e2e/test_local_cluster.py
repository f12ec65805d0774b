"""The cluster as a user starts it: `python -m cluster up` in the background with its own
embedded Redis, a vote through the gateway reaching the ranking, a `kill -9` the supervisor
repairs, and `down` leaving no process behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
import redis
from conftest import eventually

from cluster.process_table import is_same_process, members
from cluster.run_folder import RunFolder
from cluster.tokens import read_file
from pairwise import health_probe
from pairwise.embedded_redis import free_port
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

T = TypeVar("T")
SETTINGS_FROM_OUTSIDE = ("REDIS_URL", "PAIRWISE_ADMIN_TOKEN", "PAIRWISE_PLATFORM_TOKEN",
                         "PAIRWISE_TOKEN_SECRET", "PAIRWISE_INTERNAL_SECRET",
                         "PAIRWISE_REDIS_PASSWORD", "RANKERS")


@dataclass
class LocalCluster:
    run: RunFolder
    env: dict[str, str]
    up_output: str
    gateway_addr: str

    def cli(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cluster", command, "--run-dir",
                               str(self.run.root)], env=self.env, capture_output=True,
                              text=True, timeout=90)

    def child(self, name: str) -> dict[str, object]:
        child: dict[str, object] = self.run.read_state()["children"][name]
        return child


@pytest.fixture
def local_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """`up` on ports unused a moment before. The cluster binds fixed ports on purpose (a
    restarted service must come back where its clients look) and refuses to start when one
    is taken; if another process took one meanwhile, `up` is tried again on others."""
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_FROM_OUTSIDE}
    # Fast fits, so a vote shows in the ranking well within the test's bounds.
    base.update({"RANKER_FIT_INTERVAL_S": "0.1", "RANKER_CHECKPOINT_INTERVAL_S": "0.3",
                 "RANKER_DISCOVER_INTERVAL_S": "0.1"})
    run = RunFolder(tmp_path / "run")
    for _ in range(3):
        env = {**base, **{name: str(free_port()) for name in
                          ("REDIS_PORT", "INGEST_PORT", "RANKER_PORT", "GATEWAY_PORT",
                           "CONSOLE_PORT")}}
        cluster = LocalCluster(run, env, "", f"127.0.0.1:{env['GATEWAY_PORT']}")
        up = cluster.cli("up")
        if "port in use" not in up.stdout:
            break
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        cluster.up_output = up.stdout
        yield cluster
    finally:
        cluster.cli("down")


def test_up_serves_votes_survives_kill_9_and_down_stops_everything(
        local_cluster: LocalCluster) -> None:
    cluster, run = local_cluster, local_cluster.run

    # up: healthy gateway, printed dev tokens kept private in the run folder.
    assert health_probe.check(cluster.gateway_addr) == health_probe.SERVING
    tokens = read_file(run.tokens_file)
    assert stat.S_IMODE(run.tokens_file.stat().st_mode) == 0o600
    assert tokens["PAIRWISE_ADMIN_TOKEN"] in cluster.up_output
    assert cluster.gateway_addr in cluster.up_output
    # The operator's console came up with it, on loopback, and says where.
    console_addr = f"127.0.0.1:{cluster.env['CONSOLE_PORT']}"
    assert health_probe.check_http(console_addr) == health_probe.SERVING
    assert f"http://{console_addr}/" in cluster.up_output
    again = cluster.cli("up")
    assert again.returncode == 0 and "already running" in again.stdout

    # A platform's first vote, through the gateway, reaches the ranking.
    admin = (("authorization", f"Bearer {tokens['PAIRWISE_ADMIN_TOKEN']}"),)
    platform = (("authorization", f"Bearer {tokens['PAIRWISE_PLATFORM_TOKEN']}"),)
    with grpc.insecure_channel(cluster.gateway_addr) as channel:
        gateway = gateway_pb2_grpc.GatewayServiceStub(channel)
        gateway.CreateCause(gateway_pb2.CreateCauseRequest(
            cause_id="e2e", title="Comment lutter contre les violences faites aux femmes ?"),
            metadata=admin, timeout=10)
        gateway.AddProposals(gateway_pb2.AddProposalsRequest(cause_id="e2e", proposals=[
            types_pb2.NewProposal(proposal_id=f"p{i}", text=f"proposition {i}")
            for i in range(3)]), metadata=admin, timeout=10)
        pair = gateway.NextPair(gateway_pb2.NextPairRequest(cause_id="e2e", voter_id="v1"),
                                metadata=platform, timeout=10)
        # A person reads the pair first: a vote sooner than INGEST_MIN_VIEW_MS (300 ms) after
        # its prompt is kept untrusted and left out of the ranking.
        time.sleep(0.5)
        receipt = gateway.SubmitVote(gateway_pb2.SubmitVoteRequest(
            cause_id="e2e", voter_id="v1", prompt_token=pair.prompt_token,
            choice=types_pb2.CHOICE_LEFT), metadata=platform, timeout=10)
        assert receipt.vote_id and not receipt.duplicate

        def ranking_with_the_vote() -> gateway_pb2.GetRankingResponse | None:
            """The ranking once it counts the vote; None while it does not, or while the
            cause is UNAVAILABLE (retryable: a killed ranker's lease has not run out)."""
            try:
                ranking = gateway.GetRanking(gateway_pb2.GetRankingRequest(cause_id="e2e"),
                                             metadata=platform, timeout=10)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                    raise
                return None
            return ranking if ranking.votes_counted == 1 else None

        ranking = eventually(ranking_with_the_vote, "the vote in the ranking")
        # Each service is connected to Redis as its own user, none as the default one.
        operator = redis.Redis(port=int(cluster.env["REDIS_PORT"]),
                               password=tokens["PAIRWISE_REDIS_PASSWORD"], socket_timeout=5)
        users = {entry["user"] for entry in operator.client_list()
                 if entry["id"] != str(operator.client_id())}
        operator.close()
        assert users == {"ingest", "ranker", "gateway"}
        wins = {entry.proposal_id: entry.wins for entry in ranking.entries}
        assert wins[pair.left.proposal_id] == 1
        assert ranking.entries[0].proposal_id == pair.left.proposal_id

        # kill -9 the ranker: the supervisor starts a new one, which serves the same ranking,
        # and nothing the dead one had spawned (fit workers) lingers.
        killed = run.read_pid(run.pid_file("ranker"))
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        eventually(lambda: not members(group=killed), "the killed ranker's fit workers gone")
        eventually(lambda: cluster.child("ranker")["restarts"] == 1
                   and cluster.child("ranker")["running"]
                   and cluster.child("ranker")["pid"] != killed, "the ranker restarted")
        restarted = run.read_pid(run.pid_file("ranker"))
        assert restarted not in (None, killed)
        ranker_addr = str(cluster.child("ranker")["addr"])
        eventually(lambda: health_probe.check(ranker_addr) == health_probe.SERVING,
                   "the restarted ranker serving")
        ranking = eventually(ranking_with_the_vote, "the vote in the restarted ranker's ranking")
        assert {e.proposal_id: e.wins for e in ranking.entries}[pair.left.proposal_id] == 1

    status = cluster.cli("status")
    assert status.returncode == 0, status.stdout
    assert "ranker" in status.stdout and "SERVING" in status.stdout
    assert "console" in status.stdout

    # The embedded Redis answers only with the run folder's password, which neither the
    # status nor the state file nor any process's command line shows to other local users.
    password = tokens["PAIRWISE_REDIS_PASSWORD"]
    port = int(cluster.env["REDIS_PORT"])
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port, socket_timeout=5).ping()
    assert redis.Redis(port=port, password=password, socket_timeout=5).ping()
    assert password not in status.stdout and password not in cluster.up_output
    assert stat.S_IMODE(run.state_file.stat().st_mode) == 0o600
    redis_pid = cluster.child("redis")["pid"]
    assert password.encode() not in Path(f"/proc/{redis_pid}/cmdline").read_bytes()

    # down: every process up started (and the restarted ranker) is gone.
    state = run.read_state()
    started = [(int(run.read_pid(run.supervisor_pid_file) or 0), state["supervisor_start_ticks"])]
    started += [(child["pid"], child["start_ticks"]) for child in state["children"].values()]
    assert len(started) == 6 and all(pid for pid, _ in started)
    down = cluster.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    for pid, ticks in started:
        assert not is_same_process(pid, ticks), f"pid {pid} still running after down"
    supervisor_pid, supervisor_ticks = started[0]
    assert members(session=supervisor_pid, started_since=supervisor_ticks) == []
    assert list(run.pids.glob("*.pid")) == [] and not run.supervisor_pid_file.exists()
    assert cluster.cli("status").returncode == 3
    assert "not running" in cluster.cli("down").stdout
