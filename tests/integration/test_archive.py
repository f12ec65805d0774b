"""Archiving a closed cause through the real cluster: the archive folder reproduces the final
ranking, the cause's Redis memory is released, and the cause still answers GetCause,
GetRanking, WatchRanking, ExportRanking and GetCauseStats; archiving an open cause, archiving
twice and voting on an archived cause are refused by name. An archived cause's votes are
exported from its archive, as they were before it."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import redis
from conftest import ADMIN_TOKEN, Cluster, eventually
from test_cause_life import final_ranking, open_cause, refused, vote

from pairwise import keys
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2
from publishing import vote_table
from publishing.exporter import CHANNEL_OPTIONS, export
from publishing.recompute import recompute

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")


@pytest.fixture
def stub(cluster: Cluster):  # type: ignore[no-untyped-def]
    with cluster.channel() as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def released_families(client: redis.Redis, cause_id: str) -> set[str]:
    """The families of the cause's keys that an archive releases and that are still there."""
    present = {key.decode().split(":{", 1)[0]
               for key in client.scan_iter(match=f"*{{{cause_id}}}*", count=1000)}
    return present & {"receipts", "seen", "rate", "token", "ckpt", "newcomers", "selection",
                      "lease"}


def test_an_archived_cause_keeps_its_final_ranking_and_releases_its_memory(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str, redis_url: str) -> None:
    open_cause(stub, cluster, cause_id)
    imported = [types_pb2.ImportedVote(vote_id=f"imp-{k}", cause_id=cause_id,
                                       voter_id=f"u{k % 40}", winner_id=f"p{k % 12}",
                                       loser_id=f"p{(k * 7 + 1) % 12}")
                for k in range(600) if k % 12 != (k * 7 + 1) % 12]
    stub.ImportVotes(iter([gw.ImportVotesRequest(votes=imported)]), metadata=cluster.admin,
                     timeout=10)
    for k in range(8):
        vote(stub, cluster, cause_id, f"v{k % 4}")
    error = refused(lambda: stub.ArchiveCause(gw.ArchiveCauseRequest(cause_id=cause_id),
                                              metadata=cluster.admin, timeout=10))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "OPEN" in error.details()

    stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id), metadata=cluster.admin, timeout=5)
    closed = final_ranking(stub, cluster, cause_id)
    client = redis.Redis.from_url(redis_url)
    assert {"receipts", "seen", "rate"} <= released_families(client, cause_id)
    # A default view other than raw: an archive keeps only the raw final ranking, served then.
    stub.SetDefaultRankingView(gw.SetDefaultRankingViewRequest(
        cause_id=cause_id, view=types_pb2.RANKING_VIEW_REPRESENTATIVE), metadata=cluster.admin,
        timeout=5)

    reply = eventually(lambda: stub.ArchiveCause(
        gw.ArchiveCauseRequest(cause_id=cause_id, reason="consultation over"),
        metadata=cluster.admin, timeout=30), "archived")
    assert reply.votes_archived == len(imported) + 8 and reply.keys_released > 0
    cause = reply.cause
    assert cause.state == types_pb2.CAUSE_STATE_ARCHIVED
    assert cause.votes_final == len(imported) + 8 and cause.archived_at_ms > 0

    # The archive folder reproduces the final ranking, from its files alone.
    report = recompute(Path(cause.archive))
    assert report.matches, report
    # Released: receipts, seen pairs, rate limits, tokens, checkpoint, selection, lease; the
    # log is empty (the stream and its group stay).
    assert released_families(client, cause_id) == set()
    assert client.xlen(keys.votes(cause_id)) == 0
    client.close()

    archived = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, offset=2, limit=3),
                               metadata=cluster.platform, timeout=5)
    assert archived.final and archived.cause_state == types_pb2.CAUSE_STATE_ARCHIVED
    assert archived.votes_counted == closed.votes_counted
    assert [(e.proposal_id, e.ability) for e in archived.entries] == [
        (e.proposal_id, e.ability) for e in closed.entries[2:5]]
    pages = list(stub.ExportRanking(gw.ExportRankingRequest(cause_id=cause_id),
                                    metadata=cluster.admin, timeout=5))
    assert sum(len(p.page.ranking.entries) for p in pages) == closed.total_proposals
    watched = list(stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id, limit=4),
                                     metadata=cluster.platform, timeout=10))
    assert len(watched) == 1 and watched[0].final and len(watched[0].entries) == 4
    stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                               metadata=cluster.admin, timeout=5)
    assert stats.votes_counted == stats.votes_accepted == len(imported) + 8

    error = refused(lambda: vote(stub, cluster, cause_id, "late"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "ARCHIVED" in error.details()
    error = refused(lambda: stub.ImportVotes(iter([gw.ImportVotesRequest(votes=imported[:1])]),
                                             metadata=cluster.admin, timeout=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "ARCHIVED" in error.details()
    for call in (lambda: stub.ArchiveCause(gw.ArchiveCauseRequest(cause_id=cause_id),
                                           metadata=cluster.admin, timeout=10),
                 lambda: stub.ReopenCause(gw.ReopenCauseRequest(cause_id=cause_id, reason="x"),
                                          metadata=cluster.admin, timeout=5),
                 lambda: stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id),
                                         metadata=cluster.admin, timeout=5),
                 lambda: stub.SetDefaultRankingView(gw.SetDefaultRankingViewRequest(
                     cause_id=cause_id), metadata=cluster.admin, timeout=5)):
        error = refused(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "ARCHIVED" in error.details()
    audit = stub.ListCauseAudit(gw.ListCauseAuditRequest(cause_id=cause_id),
                                metadata=cluster.admin, timeout=5).entries
    assert [e.action for e in audit] == ["close", "default_view", "archive"]
    assert audit[-1].reason == "consultation over"


def test_an_archived_cause_exports_its_votes_from_the_archive(  # type: ignore[no-untyped-def]
        cluster: Cluster, cause_id: str, tmp_path: Path) -> None:
    with grpc.insecure_channel(cluster.gateway_addr, options=CHANNEL_OPTIONS) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        open_cause(stub, cluster, cause_id)
        imported = [types_pb2.ImportedVote(vote_id=f"imp-{k}", cause_id=cause_id,
                                           voter_id=f"u{k % 40}", winner_id=f"p{k % 12}",
                                           loser_id=f"p{(k * 5 + 1) % 12}", tie=k % 9 == 0)
                    for k in range(2500) if k % 12 != (k * 5 + 1) % 12]
        stub.ImportVotes(iter([gw.ImportVotesRequest(votes=imported)]), metadata=cluster.admin,
                         timeout=30)
        for k in range(6):
            pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=f"v{k % 3}"),
                                 metadata=cluster.platform, timeout=5)
            stub.SubmitVote(gw.SubmitVoteRequest(
                cause_id=cause_id, voter_id=f"v{k % 3}", prompt_token=pair.prompt_token,
                choice=types_pb2.CHOICE_SKIP if k == 4 else types_pb2.CHOICE_LEFT,
                skip_reason="je ne sais pas" if k == 4 else "",
                skip_reason_code=types_pb2.SKIP_REASON_CANNOT_DECIDE if k == 4 else 0),
                metadata=cluster.platform, timeout=5)
        stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id), metadata=cluster.admin,
                        timeout=5)
        final_ranking(stub, cluster, cause_id)
        before = {raw: export(stub, ADMIN_TOKEN, cause_id, "parquet", tmp_path / f"before-{raw}",
                              raw_voter_ids=raw) for raw in (False, True)}
        reply = eventually(lambda: stub.ArchiveCause(gw.ArchiveCauseRequest(cause_id=cause_id),
                                                     metadata=cluster.admin, timeout=30),
                           "archived")
        assert reply.cause.state == types_pb2.CAUSE_STATE_ARCHIVED

        for raw in (False, True):
            after = export(stub, ADMIN_TOKEN, cause_id, "parquet", tmp_path / f"after-{raw}",
                           raw_voter_ids=raw)
            assert after.votes == before[raw].votes == len(imported) + 6
            # The same rows, pseudonyms included, as exported while the log was in Redis.
            rows_after, rows_before = (
                pa_rows(folder.folder / "votes.parquet") for folder in (after, before[raw]))
            assert rows_after == rows_before
            report = recompute(after.folder)
            assert report.matches, report

        # An archive changed since it was written is not streamed.
        votes_file = Path(reply.cause.archive) / "votes.parquet"
        votes_file.write_bytes(votes_file.read_bytes() + b"\0")
        error = refused(lambda: export(stub, ADMIN_TOKEN, cause_id, "parquet",
                                       tmp_path / "tampered"))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "SHA-256" in error.details()


def pa_rows(path: Path) -> dict[str, list[object]]:
    import pyarrow as pa

    table = pa.Table.from_batches(list(vote_table.read_batches(path, "parquet")))
    return {name: [str(v) for v in column.to_pylist()]
            for name, column in zip(table.column_names, table.columns, strict=True)}
