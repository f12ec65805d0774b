"""The load generator against the session's cluster: a tiny bounded run of both modes, its
voters declaring attributes, whose report audits every vote (accepted == counted == OK, and
counted in each of its voters' segments) and carries every promised figure, and repeated
runs summarised by their median. Marked `loadtest` (select or skip with -m)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import ADMIN_TOKEN, PLATFORM_TOKEN, Cluster, eventually

from loadtest import runner
from loadtest.__main__ import main
from loadtest.gateway_client import Credentials
from loadtest.plan import LoadPlan
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc

PLAN = LoadPlan(mode="both", voters=300, proposals=30, new_proposals=6, duration_s=3.0,
                max_votes=2_000, concurrency=16, arrival_rate=200.0, batch_size=250,
                bulk_streams=2, catch_up_s=30.0, baseline_votes=3_000, accuracy_every_s=1.0,
                segment_attributes=2)

pytestmark = pytest.mark.loadtest


def test_a_bounded_run_reports_every_figure_and_loses_no_vote(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    report = asyncio.run(runner.run(PLAN, cluster.gateway_addr,
                                    Credentials(ADMIN_TOKEN, PLATFORM_TOKEN), tmp_path))

    assert report["audit_passed"]
    for mode in ("interactive", "bulk"):
        m = report["modes"][mode]
        audit = m["audit"]
        # Nothing lost, nothing counted twice: the cluster's own counters agree with the
        # votes the load generator was told were recorded.
        assert audit["passed"], audit["detail"]
        assert audit["votes_accepted"] == audit["votes_counted"] == m["votes"]["ok"] > 0
        # The session cluster trusts scripted voters (INGEST_MIN_VIEW_MS=0): all in the ranking.
        assert audit["votes_untrusted"] == audit["votes_excluded"] == 0
        assert m["votes"]["unknown_outcome"] == 0 and m["votes"]["unexpected_duplicates"] == 0
        assert m["caught_up"] and m["end_to_end_votes_per_s"] > 0
        # A mode that reached its vote bound early is rated over its own sending time.
        assert 0 < m["load_s"] <= report["load_s"]
        assert m["ok_votes_per_s"] == pytest.approx(m["votes"]["ok"] / m["load_s"], rel=0.02)
        assert m["freshness_s"]["count"] > 0 and m["freshness_s"]["p50"] >= 0
        final = m["final_accuracy"]
        # Every accepted proposal is ranked, the mid-run ones included, none left pending.
        assert final["n_ranked"] == PLAN.proposals + m["proposals"]["accepted_mid_run"]
        assert audit["proposals_pending"] == 0
        assert -1 <= final["kendall_tau"] <= 1 and 0 <= final["coverage"] <= 1
        assert final["votes_counted"] == audit["votes_counted"]
        # Every voter declared both attributes: each attribute's five segments together
        # count every vote once (segment counts follow the segments' fits, so they may
        # come a refit after the overall count).
        def per_attribute(cause_id: str = m["cause_id"]) -> dict[str, int]:
            with cluster.channel() as channel:
                stats = gateway_pb2_grpc.GatewayServiceStub(channel).GetCauseStats(
                    gateway_pb2.GetCauseStatsRequest(cause_id=cause_id),
                    metadata=cluster.admin, timeout=5)
            totals = {"a0": 0, "a1": 0}
            for segment in stats.segments:
                totals[segment.segment.key] += segment.votes_counted
            return totals

        counted = audit["votes_counted"]
        eventually(per_attribute, f"{mode}: every vote in one segment of each attribute",
                   until=lambda totals, counted=counted: set(totals.values()) == {counted})

    interactive = report["modes"]["interactive"]
    for rpc in ("NextPair", "SubmitVote"):
        latency = interactive["latency_ms"][rpc]
        assert latency["count"] > 0
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert interactive["audit"]["ties"] + interactive["audit"]["skips"] <= interactive[
        "votes"]["ok"]

    bulk = report["modes"]["bulk"]
    assert bulk["votes"]["ok"] == bulk["votes"]["sent"] >= PLAN.max_votes
    assert bulk["latency_ms"]["ImportVotes"]["count"] >= PLAN.max_votes // PLAN.batch_size
    assert bulk["baseline"]["votes"] == PLAN.baseline_votes
    assert bulk["baseline_ratio"] == pytest.approx(
        bulk["end_to_end_votes_per_s"] / bulk["baseline"]["votes_per_s"])

    assert [g["goal"] for g in report["goals"]] == [
        "bulk votes/s end to end (accepted -> counted)", "bulk / naive XADD baseline",
        "interactive votes/s (SubmitVote OK)", "SubmitVote p99 (ms)", "NextPair p99 (ms)",
        "freshness p95 (s)"]
    saved = json.loads(Path(report["files"]["json"]).read_text())
    assert saved["audit_passed"] and saved["modes"].keys() == report["modes"].keys()
    assert Path(report["files"]["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_repeated_runs_report_each_goal_per_run_and_its_median(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PAIRWISE_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("PAIRWISE_PLATFORM_TOKEN", PLATFORM_TOKEN)
    code = main(["--target", cluster.gateway_addr, "--run-dir", str(tmp_path), "--mode", "bulk",
                 "--proposals", "20", "--new-proposals", "0", "--duration", "2",
                 "--max-votes", "1500", "--batch-size", "500", "--no-baseline",
                 "--runs", "3", "--out", str(tmp_path / "out")])

    assert code == 0
    [path] = (tmp_path / "out").glob("median-*.json")
    summary = json.loads(path.read_text())
    assert len(summary["runs"]) == 3 and summary["audit_passed"]
    runs = [json.loads((tmp_path / "out" / f"{run_id}.json").read_text())
            for run_id in summary["runs"]]
    throughput = summary["goals"][0]
    measured = [run["modes"]["bulk"]["end_to_end_votes_per_s"] for run in runs]
    assert throughput["per_run"] == pytest.approx(measured)
    assert throughput["measured"] == pytest.approx(sorted(measured)[1])
    assert len({run["modes"]["bulk"]["cause_id"] for run in runs}) == 3
    assert "Median of 3 runs" in capsys.readouterr().out
