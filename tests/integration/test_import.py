"""Importing a past consultation through the real cluster: an export folder brought in as a new
cause through ImportVotes ranks as the export did (the round trip), a second run records
nothing twice, and a tampered folder is not imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from conftest import ADMIN_TOKEN, PLATFORM_TOKEN, Cluster, eventually
from test_cause_life import final_ranking
from test_export import consultation

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2
from publishing.exporter import CHANNEL_OPTIONS, export

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")


@pytest.fixture
def stub(cluster: Cluster):  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(cluster.gateway_addr, options=CHANNEL_OPTIONS) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def import_cli(folder: Path, cause_id: str, *options: str,
               cluster: Cluster) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PAIRWISE_ADMIN_TOKEN": ADMIN_TOKEN,
           "PAIRWISE_PLATFORM_TOKEN": PLATFORM_TOKEN}
    return subprocess.run([sys.executable, "-m", "pairwise", "import", str(folder), "--cause",
                           cause_id, "--gateway", cluster.gateway_addr, *options],
                          env=env, capture_output=True, text=True, timeout=120)


def test_export_then_import_into_a_new_cause_ranks_the_same(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str, tmp_path: Path) -> None:
    consultation(stub, cluster, cause_id)
    # Voters' declared attributes come along, and with them the segments' rankings.
    stub.SetVoterAttributes(gw.SetVoterAttributesRequest(cause_id=cause_id, attributes=[
        types_pb2.VoterAttribute(key="region", values=["north", "south"])]),
        metadata=cluster.admin, timeout=5)
    stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[types_pb2.ImportedVote(
        vote_id=f"attr-{k}", cause_id=cause_id, voter_id=f"r{k}", winner_id=f"p{k % 8}",
        loser_id=f"p{(k + 3) % 8}", attributes={"region": ("north", "south")[k % 2]})
        for k in range(10)])]), metadata=cluster.admin, timeout=10)
    # An excluded vote stays out of the imported ranking too.
    stub.ExcludeVotes(gw.ExcludeVotesRequest(cause_id=cause_id, vote_ids=["imp-7"],
                                             reason="doublon"),
                      metadata=cluster.admin, timeout=5)
    stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id), metadata=cluster.admin, timeout=5)
    eventually(lambda: final_ranking(stub, cluster, cause_id), "the exclusion counted",
               until=lambda r: r.exclusions_version == 1)
    folder = tmp_path / "past"
    export(stub, ADMIN_TOKEN, cause_id, "parquet", folder)

    copy = f"{cause_id}-copy"
    done = import_cli(folder, copy, "--close", "--check", cluster=cluster)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3,034 votes (3,034 recorded, 0 already there, 0 rejected)" in done.stdout
    assert "IDENTICAL" in done.stdout
    original = stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=cluster.admin,
                             timeout=5).cause
    imported = stub.GetCause(gw.GetCauseRequest(cause_id=copy), metadata=cluster.admin,
                             timeout=5).cause
    assert (imported.title, imported.proposals_accepted, imported.proposals_pending,
            imported.proposals_rejected) == (original.title, original.proposals_accepted,
                                             original.proposals_pending,
                                             original.proposals_rejected)
    assert imported.votes_final == original.votes_final == 3034
    stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=copy), metadata=cluster.admin,
                               timeout=5)
    assert (stats.skips, stats.votes_excluded) == (6, 1)
    before = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                metadata=cluster.admin, timeout=5)
    assert [(s.segment.value, s.votes_counted) for s in stats.segments] == [
        (s.segment.value, s.votes_counted) for s in before.segments] == [
        ("north", 5), ("south", 5)]

    # Running it again records nothing twice: every vote is a duplicate (the cause being
    # closed, only replays are taken).
    again = import_cli(folder, copy, "--check", cluster=cluster)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(0 recorded, 3,034 already there, 0 rejected)" in again.stdout
    assert "IDENTICAL" in again.stdout


def test_a_tampered_export_is_not_imported(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str, tmp_path: Path) -> None:
    consultation(stub, cluster, cause_id)
    export(stub, ADMIN_TOKEN, cause_id, "csv", tmp_path)
    votes = tmp_path / "votes.csv"
    votes.write_text(votes.read_text().replace("imp-1", "imp-9", 1))
    done = import_cli(tmp_path, f"{cause_id}-copy", cluster=cluster)
    assert done.returncode == 2 and "votes.csv differ" in done.stderr
    error = pytest.raises(grpc.RpcError, stub.GetCause,
                          gw.GetCauseRequest(cause_id=f"{cause_id}-copy"),
                          metadata=cluster.admin, timeout=5)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
