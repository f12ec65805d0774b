"""Publishing a result through the real cluster: a cause's votes and ranking exported to a
folder, the ranking recomputed from that folder alone, and what a tampered folder, another
role or an unknown cause get."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from conftest import ADMIN_TOKEN, Cluster, bearer, eventually

from pairwise import vote_log
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2
from publishing.exporter import CHANNEL_OPTIONS, export
from publishing.recompute import recompute

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")

ACCEPTED = [f"p{k}" for k in range(8)]
CHOICES = [types_pb2.CHOICE_LEFT, types_pb2.CHOICE_RIGHT, types_pb2.CHOICE_TIE,
           types_pb2.CHOICE_SKIP]


@pytest.fixture
def stub(cluster: Cluster):  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(cluster.gateway_addr, options=CHANNEL_OPTIONS) as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def consultation(stub, cluster: Cluster, cause_id: str, *, shared_voter: str = "",  # type: ignore[no-untyped-def]
                 seed: int = 0) -> None:
    """A cause with accepted, rejected and pending proposals; interactive votes of each
    choice (skips with and without a reason) and an imported batch with ties; returns when
    the ranking counts every vote."""
    admin, platform = cluster.admin, cluster.platform
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Export"),
                     metadata=admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=f"proposal {pid}", author_id="org")
        for pid in [*ACCEPTED, "off-topic"]]), metadata=admin, timeout=5)
    stub.ModerateProposal(gw.ModerateProposalRequest(
        cause_id=cause_id, proposal_id="off-topic", status=types_pb2.PROPOSAL_STATUS_REJECTED,
        reason="hors sujet"), metadata=admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id="waiting", text="pending", author_id="c-1")]),
        metadata=platform, timeout=5)
    rng = np.random.default_rng(seed)
    abilities = dict(zip(ACCEPTED, rng.normal(0, 1, len(ACCEPTED)), strict=True))
    batch = []
    for k in range(3000):
        a, b = rng.choice(ACCEPTED, 2, replace=False)
        if rng.random() > 1 / (1 + np.exp(abilities[b] - abilities[a])):
            a, b = b, a
        batch.append(types_pb2.ImportedVote(
            vote_id=f"imp-{k}", cause_id=cause_id, voter_id=f"imported-{k % 300}",
            winner_id=str(a), loser_id=str(b), tie=bool(rng.random() < 0.15)))
    reply = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=batch[:1700]),
                                   gw.ImportVotesRequest(votes=batch[1700:])]),
                             metadata=admin, timeout=30)
    assert reply.accepted == len(batch)
    voters = ["v1", "v2", "v3"] + ([shared_voter] if shared_voter else [])
    for voter in voters:
        for k, choice in enumerate(CHOICES * 2):
            pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                                 metadata=platform, timeout=5)
            stub.SubmitVote(gw.SubmitVoteRequest(
                cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token,
                choice=choice, skip_reason="je ne sais pas" if k == 3 else "",
                skip_reason_code=types_pb2.SKIP_REASON_CANNOT_DECIDE if k == 3 else 0),
                metadata=platform, timeout=5)
    stats = eventually(
        lambda: stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                   metadata=admin, timeout=5),
        "every vote counted", until=lambda s: s.votes_counted == s.votes_accepted
        == len(batch) + 8 * len(voters))
    assert stats.skips == 2 * len(voters)


def run_cli(*args: str | Path, cluster: Cluster) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PAIRWISE_ADMIN_TOKEN": ADMIN_TOKEN}
    return subprocess.run([sys.executable, "-m", "pairwise", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_export_then_recompute_matches_the_served_ranking(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str, tmp_path: Path) -> None:
    consultation(stub, cluster, cause_id)
    result = export(stub, ADMIN_TOKEN, cause_id, "parquet", tmp_path)

    served = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, limit=100),
                             metadata=cluster.admin, timeout=5)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["ranking"]["votes_counted"] == served.votes_counted == result.votes == 3024
    assert manifest["votes"]["rows"] == 3024
    assert manifest["votes"]["last_entry_id"] == manifest["ranking"]["last_vote_entry_id"]
    statuses = {p["proposal_id"]: (p["status"], p["moderation_reason"])
                for p in manifest["proposals"]}
    assert statuses["off-topic"] == ("REJECTED", "hors sujet")
    assert statuses["waiting"] == ("PENDING", "")
    assert manifest["fit"]["prior_strength"] == served.prior_strength
    assert manifest["fit"]["ties"] == "half_win" and manifest["fit"]["warm_start"] in (True, False)

    votes = pq.read_table(tmp_path / "votes.parquet").to_pydict()
    assert len(votes["vote_id"]) == 3024
    assert {"win", "tie", "skip"} == set(votes["kind"])
    assert "je ne sais pas" in votes["skip_reason"]
    # The reason code beside the free text (a skip without either: unspecified).
    assert {code for kind, code in zip(votes["kind"], votes["skip_reason_code"], strict=True)
            if kind == "skip"} == {"SKIP_REASON_CANNOT_DECIDE", "SKIP_REASON_UNSPECIFIED"}
    assert all(reason is None for kind, reason in zip(votes["kind"], votes["skip_reason"],
                                                      strict=True) if kind != "skip")
    assert votes["vote_id"][:2] == ["imp-0", "imp-1"]  # log order: the import came first
    # Imported batches share entries; each interactive vote has its own.
    assert len(set(votes["entry_id"])) < 3024
    ranking = pq.read_table(tmp_path / "ranking.parquet").to_pydict()
    assert ranking["proposal_id"] == [e.proposal_id for e in served.entries]
    assert ranking["ability"] == [e.ability for e in served.entries]

    report = recompute(tmp_path)
    assert report.matches, report.problems
    assert report.votes_in_file == served.votes_counted
    assert report.max_ability_difference <= 1e-9

    # The same through the command line, in CSV.
    done = run_cli("export", "--cause", cause_id, "--format", "csv", "--out",
                   tmp_path / "csv", "--gateway", cluster.gateway_addr, cluster=cluster)
    assert done.returncode == 0, done.stderr
    assert "3,024 votes" in done.stdout
    checked = run_cli("rank", tmp_path / "csv", cluster=cluster)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "MATCH" in checked.stdout and "MISMATCH" not in checked.stdout


def test_an_open_cause_exports_the_prefix_its_ranking_counted(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str, tmp_path: Path) -> None:
    consultation(stub, cluster, cause_id, seed=2)
    stop = threading.Event()

    def keep_voting() -> None:
        k = 0
        while not stop.is_set():
            stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[types_pb2.ImportedVote(
                vote_id=f"late-{k}-{j}", cause_id=cause_id, voter_id=f"late-{j}",
                winner_id=ACCEPTED[j % 8], loser_id=ACCEPTED[(j + 1) % 8])
                for j in range(100)])]), metadata=cluster.admin, timeout=10)
            k += 1

    voting = threading.Thread(target=keep_voting)
    voting.start()
    try:
        exports = [export(stub, ADMIN_TOKEN, cause_id, "parquet", tmp_path / str(n))
                   for n in range(3)]
    finally:
        stop.set()
        voting.join()
    for result in exports:
        report = recompute(result.folder)
        assert report.matches, report.problems
        assert result.manifest["votes"]["last_entry_id"] == \
            result.manifest["ranking"]["last_vote_entry_id"]
    assert exports[0].votes <= exports[1].votes <= exports[2].votes


def test_a_tampered_vote_is_caught(stub, cluster: Cluster, cause_id: str,  # type: ignore[no-untyped-def]
                                   tmp_path: Path) -> None:
    consultation(stub, cluster, cause_id, seed=1)
    for fmt in ("csv", "parquet"):
        folder = tmp_path / fmt
        export(stub, ADMIN_TOKEN, cause_id, fmt, folder)
        path = folder / f"votes.{fmt}"
        table = (pa_csv.read_csv(path) if fmt == "csv" else pq.read_table(path)).to_pydict()
        # One win turned around: the winner becomes the loser.
        row = table["kind"].index("win")
        table["proposal_a"][row], table["proposal_b"][row] = (
            table["proposal_b"][row], table["proposal_a"][row])
        import pyarrow as pa

        tampered = pa.table(table)
        if fmt == "csv":
            pa_csv.write_csv(tampered, path)
        else:
            pq.write_table(tampered, path)

        checked = run_cli("rank", folder, cluster=cluster)
        assert checked.returncode == 1, checked.stdout + checked.stderr
        assert f"sha256 votes.{fmt}: MISMATCH" in checked.stdout
        assert "sha256 ranking" in checked.stdout and "abilities differ" in checked.stdout
        assert checked.stdout.rstrip().endswith(
            "MISMATCH: the served ranking is not reproduced from this export")


def test_pseudonyms_are_stable_in_a_cause_and_differ_across_causes(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str, tmp_path: Path) -> None:
    other = cause_id + "-b"
    for cause in (cause_id, other):
        consultation(stub, cluster, cause, shared_voter="same-person")

    def voters(cause: str, folder: str, raw: bool = False) -> dict[str, set[str]]:
        export(stub, ADMIN_TOKEN, cause, "parquet", tmp_path / folder, raw_voter_ids=raw)
        table = pq.read_table(tmp_path / folder / "votes.parquet").to_pydict()
        by_vote: dict[str, set[str]] = {}
        for vote_id, voter in zip(table["vote_id"], table["voter_id"], strict=True):
            by_vote.setdefault(vote_id, set()).add(voter)
        return by_vote

    raw = voters(cause_id, "raw", raw=True)
    first, again, elsewhere = voters(cause_id, "a1"), voters(cause_id, "a2"), voters(other, "b")
    shared_votes = [v for v, who in raw.items() if who == {"same-person"}]
    assert len(shared_votes) == 8
    pseudonyms = set().union(*(first[v] for v in shared_votes))
    assert len(pseudonyms) == 1 and "same-person" not in pseudonyms  # one, and not the id
    assert first == again
    raw_other = voters(other, "raw-b", raw=True)
    shared_elsewhere = set().union(*(elsewhere[v] for v, who in raw_other.items()
                                     if who == {"same-person"}))
    assert len(shared_elsewhere) == 1 and shared_elsewhere != pseudonyms
    assert not any(voter.startswith(("v1", "imported-")) for who in first.values()
                   for voter in who)


def test_exports_are_for_admins_and_known_causes(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str) -> None:
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="t"),
                     metadata=cluster.admin, timeout=5)
    calls = {
        "ExportVotes": lambda metadata, cause: list(stub.ExportVotes(
            gw.ExportVotesRequest(cause_id=cause), metadata=metadata, timeout=5)),
        "ExportRanking": lambda metadata, cause: list(stub.ExportRanking(
            gw.ExportRankingRequest(cause_id=cause), metadata=metadata, timeout=5)),
    }
    for name, call in calls.items():
        for metadata, code in ((cluster.platform, grpc.StatusCode.PERMISSION_DENIED),
                               ((), grpc.StatusCode.UNAUTHENTICATED),
                               (bearer("wrong"), grpc.StatusCode.UNAUTHENTICATED),
                               (cluster.admin, grpc.StatusCode.NOT_FOUND)):
            cause = "no-such-cause" if code == grpc.StatusCode.NOT_FOUND else cause_id
            with pytest.raises(grpc.RpcError) as caught:
                call(metadata, cause)
            assert caught.value.code() == code, (name, caught.value.details())
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ExportVotes(gw.ExportVotesRequest(cause_id=cause_id,
                                                    through_entry_id="yesterday"),
                              metadata=cluster.admin, timeout=5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "through_entry_id" in caught.value.details()


class AnsweringAsBefore:
    """A gateway stub whose ExportVotes asks without `vote_columns`: the gateway answers with
    one VoteLogEntry per log entry, as a gateway that predates columns does."""

    def __init__(self, stub) -> None:  # type: ignore[no-untyped-def]
        self._stub = stub

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._stub, name)

    def ExportVotes(self, request: gw.ExportVotesRequest, **kwargs):  # type: ignore[no-untyped-def]
        request.vote_columns = False
        return self._stub.ExportVotes(request, **kwargs)


def test_an_interactive_log_exports_as_columns_with_every_field(  # type: ignore[no-untyped-def]
        stub, cluster: Cluster, cause_id: str, redis_url: str, tmp_path: Path) -> None:
    """A log of one vote an entry, as interactive voting writes it (skips with and without
    reasons, flagged votes, declared attributes on some), with imported batches among them,
    written straight into the log (3,000 votes through SubmitVote would take minutes)."""
    import redis

    from pairwise import keys

    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Interactive"),
                     metadata=cluster.admin, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=f"proposal {pid}") for pid in ACCEPTED]),
        metadata=cluster.admin, timeout=5)
    rng = np.random.default_rng(5)
    written: dict[str, dict[str, object]] = {}
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    for k in range(3000):
        a, b = (int(i) for i in rng.choice(len(ACCEPTED), 2, replace=False))
        kind = "wwwwtts"[k % 7]
        voter = f"citizen-{int(rng.integers(0, 250))}"
        fields = {"k": kind, "a": str(a), "b": str(b), "v": f"v-{k}", "u": voter,
                  "q": "0" if k % 11 == 0 else "1"}
        reason = ("SKIP_REASON_UNSPECIFIED", "")
        if kind == "s" and k % 3:
            fields["r"] = "cannot_decide je ne sais pas" if k % 3 == 1 else "like_both"
            reason = (("SKIP_REASON_CANNOT_DECIDE", "je ne sais pas") if k % 3 == 1
                      else ("SKIP_REASON_LIKE_BOTH", ""))
        if k % 4 == 0:
            fields["g"] = "1" + "-0"[k % 8 == 0]
        pipe.xadd(keys.votes(cause_id), fields)  # type: ignore[arg-type]
        written[f"v-{k}"] = {
            "kind": {"w": "win", "t": "tie", "s": "skip"}[kind],
            "proposal_a": ACCEPTED[a], "proposal_b": ACCEPTED[b], "voter": voter,
            "trusted": fields["q"] == "1", "attributes": fields.get("g", "-"),
            "skip_reason_code": reason[0] if kind == "s" else None,
            "skip_reason": reason[1] if kind == "s" else None}
        if k % 1000 == 999:  # an imported batch between interactive votes
            pipe.xadd(keys.votes(cause_id), vote_log.batch_fields(  # type: ignore[arg-type]
                "wt", [0, 1], [1, 2], [f"imp-{k}-0", f"imp-{k}-1"], ["importer", "importer"]))
            for j, (kind_name, a, b) in enumerate((("win", 0, 1), ("tie", 1, 2))):
                written[f"imp-{k}-{j}"] = {
                    "kind": kind_name, "proposal_a": ACCEPTED[a], "proposal_b": ACCEPTED[b],
                    "voter": "importer", "trusted": True, "attributes": "-",
                    "skip_reason_code": None, "skip_reason": None}
    entry_ids = [entry_id.decode() for entry_id in pipe.execute()]
    # What ingest does besides appending: count the votes accepted, wake the cause's ranker.
    client.hincrby(keys.vote_stats(cause_id), "accepted", len(written))
    client.sadd(keys.AWAKE_CAUSES, cause_id)
    client.close()
    eventually(lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, limit=1),
                                       metadata=cluster.admin, timeout=5),
               "every vote counted", until=lambda r: r.votes_counted == len(written))

    # The stream carries the 3,006 votes in a few messages of columns.
    messages = [m for m in stub.ExportVotes(gw.ExportVotesRequest(
        cause_id=cause_id, vote_columns=True), metadata=cluster.admin, timeout=30)
        if m.HasField("votes")]
    assert sum(len(m.votes.kinds) for m in messages) == len(written)
    assert len(messages) <= 5 and not any(m.entries for m in messages)

    exports = {(form, raw): export(stub if form == "columns" else AnsweringAsBefore(stub),
                                   ADMIN_TOKEN, cause_id, "parquet",
                                   tmp_path / f"{form}-{raw}", raw_voter_ids=raw)
               for form in ("columns", "entries") for raw in (False, True)}
    tables = {key: pq.read_table(result.folder / "votes.parquet").to_pydict()
              for key, result in exports.items()}
    for raw in (False, True):
        # A new client reading an older gateway's entries writes the same file.
        assert tables["columns", raw] == tables["entries", raw]
        assert exports["columns", raw].manifest["votes"] == \
            exports["entries", raw].manifest["votes"]
        report = recompute(exports["columns", raw].folder)
        assert report.matches, report.problems
    rows, raw_rows = tables["columns", False], tables["columns", True]
    assert rows["vote_id"] == list(written)  # log order
    assert len(set(rows["entry_id"])) == len(entry_ids)
    assert set(rows["entry_id"]) == set(entry_ids)
    pseudonym_of: dict[str, str] = {}
    for row, vote_id in enumerate(rows["vote_id"]):
        expected = written[vote_id]
        for field in ("kind", "proposal_a", "proposal_b", "trusted", "attributes",
                      "skip_reason_code", "skip_reason"):
            assert rows[field][row] == expected[field], (vote_id, field)
        assert raw_rows["voter_id"][row] == expected["voter"]
        # One pseudonym a voter, never the voter's id.
        pseudonym = pseudonym_of.setdefault(str(expected["voter"]), rows["voter_id"][row])
        assert rows["voter_id"][row] == pseudonym and len(pseudonym) == 32
    assert len(set(pseudonym_of.values())) == len(pseudonym_of)
    assert exports["columns", False].manifest["votes"]["last_entry_id"] == entry_ids[-1]
