"""Trust in the official ranking, through a real gateway, ingest, ranker and Redis: votes
flagged untrusted and votes an admin excluded stay in the log, are reported, and change
nothing in the ranking, which is exactly the fit of the votes that count.

The cluster here is its own (a Redis database of its own): its ingest flags every interactive
vote as untrusted (a minimum viewing time of an hour), so which votes are trusted never
depends on timing. Trusted votes come through ImportVotes, as a platform's imports do.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pytest
import redis
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    RestartableCluster,
    bearer,
    eventually,
    own_database,
)
from scipy.optimize import minimize

from pairwise import checkpoint_fields, exclusions, keys, vote_log
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import types_pb2
from publishing.exporter import ExportFailed, export
from publishing.recompute import recompute
from ranker.bradley_terry import PRIOR_STRENGTH
from ranker.pair_counts import PairCounts

HOUR_MS = 3_600_000
ADMIN, PLATFORM = bearer(ADMIN_TOKEN), bearer(PLATFORM_TOKEN)
N_PROPOSALS = 6
PROPOSALS = [f"p{k}" for k in range(N_PROPOSALS)]
# Abilities the simulated honest voters act on; p5, the weakest, is the one pushed.
TRUTH = np.array([1.5, 1.0, 0.5, 0.0, -0.5, -1.0])
PUSHED = "p5"


@pytest.fixture(scope="module")
def trust(redis_url: str) -> Iterator[RestartableCluster]:
    url = own_database(redis_url, "trust")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    cluster = RestartableCluster(url, min_view_ms=HOUR_MS)
    yield cluster
    cluster.close()


@dataclass
class Votes:
    """The decided votes sent to a cause, kept to fit them here: (vote_id, voter, winner,
    loser, tie)."""

    sent: list[tuple[str, str, str, str, bool]] = field(default_factory=list)

    def fit(self, *, without_voters: Collection[str] = (),
            without_votes: Collection[str] = ()) -> dict[str, float]:
        """Penalised Bradley-Terry abilities (docs/semantics.md: ties half a win each, the
        documented Gaussian prior, centred) of the votes not left out, fitted from scratch
        with scipy: a reference computed independently of the ranker."""
        index = {pid: k for k, pid in enumerate(PROPOSALS)}
        wins = np.zeros((N_PROPOSALS, N_PROPOSALS))
        for vote_id, voter, winner, loser, tie in self.sent:
            if voter in without_voters or vote_id in without_votes:
                continue
            w, lo = index[winner], index[loser]
            if tie:
                wins[w, lo] += 0.5
                wins[lo, w] += 0.5
            else:
                wins[w, lo] += 1

        def minus_log_posterior(theta: np.ndarray) -> tuple[float, np.ndarray]:
            diff = theta[:, None] - theta[None, :]
            p = 1 / (1 + np.exp(-diff))
            value = -(wins * np.log(p)).sum() + PRIOR_STRENGTH / 2 * (theta @ theta)
            grad = -((wins * (1 - p)).sum(axis=1) - (wins.T * p).sum(axis=1)) \
                + PRIOR_STRENGTH * theta
            return float(value), grad

        result = minimize(minus_log_posterior, np.zeros(N_PROPOSALS), jac=True,
                          method="BFGS", options={"gtol": 1e-10})
        theta = result.x - result.x.mean()
        return dict(zip(PROPOSALS, theta.tolist(), strict=True))


def create_cause(stub: Any, cause_id: str) -> None:
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Que faire pour la ville ?"),
                     metadata=ADMIN, timeout=10)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=f"Proposition {pid}") for pid in PROPOSALS]),
        metadata=ADMIN, timeout=10)


def import_honest_votes(stub: Any, cause_id: str, votes: Votes, rng: np.random.Generator,
                        n: int, voters: int = 20) -> None:
    """`n` votes by honest voters, winners drawn from TRUTH, 10% ties."""
    batch = []
    for _ in range(n):
        a, b = rng.choice(N_PROPOSALS, size=2, replace=False).tolist()
        tie = bool(rng.random() < 0.1)
        if not tie and rng.random() >= 1 / (1 + np.exp(TRUTH[b] - TRUTH[a])):
            a, b = b, a
        vote = (f"h{len(votes.sent)}", f"honest-{rng.integers(voters)}", PROPOSALS[a],
                PROPOSALS[b], tie)
        votes.sent.append(vote)
        batch.append(vote)
    send(stub, cause_id, batch)


def send(stub: Any, cause_id: str, batch: list[tuple[str, str, str, str, bool]]) -> None:
    reply = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[
        types_pb2.ImportedVote(vote_id=vote_id, cause_id=cause_id, voter_id=voter,
                               winner_id=winner, loser_id=loser, tie=tie)
        for vote_id, voter, winner, loser, tie in batch])]), metadata=ADMIN, timeout=30)
    assert (reply.accepted, reply.rejected) == (len(batch), 0), reply


def push_votes(stub: Any, cause_id: str, votes: Votes, voter: str, n: int) -> None:
    """`n` votes of `voter` for PUSHED against every proposal (imported: trusted)."""
    others = [pid for pid in PROPOSALS if pid != PUSHED]
    batch = [(f"{voter}-{k}", voter, PUSHED, others[k % len(others)], False) for k in range(n)]
    votes.sent += batch
    send(stub, cause_id, batch)


def vote_fast(stub: Any, cause_id: str, voter: str, n: int) -> list[str]:
    """`n` interactive votes of `voter`, each for the weaker-looking side, sent as soon as
    the pair is shown (untrusted here); their vote ids."""
    ids = []
    for k in range(n):
        pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                             metadata=PLATFORM, timeout=10)
        left = PROPOSALS.index(pair.left.proposal_id) > PROPOSALS.index(pair.right.proposal_id)
        receipt = stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token,
            choice=types_pb2.CHOICE_LEFT if left else types_pb2.CHOICE_RIGHT,
            idempotency_key=f"{voter}-{k}"), metadata=PLATFORM, timeout=10)
        ids.append(receipt.vote_id)
    return ids


def ranking_when(stub: Any, cause_id: str, what: str, done: Any) -> Any:
    def read() -> Any:
        ranking = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id), metadata=PLATFORM,
                                  timeout=10)
        return ranking if done(ranking) else None
    return eventually(read, what, timeout=60)


def stats(stub: Any, cause_id: str) -> Any:
    return stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id), metadata=PLATFORM,
                              timeout=10)


def abilities(ranking: Any) -> dict[str, float]:
    return {entry.proposal_id: entry.ability for entry in ranking.entries}


def assert_fit_matches(ranking: Any, reference: dict[str, float]) -> None:
    got = abilities(ranking)
    assert got.keys() == reference.keys()
    for pid, ability in reference.items():
        assert got[pid] == pytest.approx(ability, abs=1e-4), (pid, got, reference)
    order = sorted(reference, key=lambda pid: -reference[pid])
    assert [entry.proposal_id for entry in ranking.entries] == order


# -- untrusted votes --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [21, 31])
def test_untrusted_votes_are_reported_and_do_not_move_the_official_ranking(trust, cause_id,
                                                                            seed):
    stub, rng, votes = trust.stub, np.random.default_rng(seed), Votes()
    create_cause(stub, cause_id)
    import_honest_votes(stub, cause_id, votes, rng, 400)
    before = ranking_when(stub, cause_id, "the imported votes ranked",
                          lambda r: r.votes_counted == 400)
    assert (before.votes_untrusted, before.votes_excluded) == (0, 0)
    assert_fit_matches(before, votes.fit())

    # Fast clicks for the weaker side of every pair: kept in the log, flagged, left out.
    for clicker in ("quick-1", "quick-2", "quick-3"):
        vote_fast(stub, cause_id, clicker, 10)  # of the 15 pairs each can be shown
    after = ranking_when(stub, cause_id, "the fast votes reflected",
                         lambda r: r.votes_counted == 430)
    assert (after.votes_untrusted, after.votes_excluded) == (30, 0)
    assert_fit_matches(after, votes.fit())
    assert [(e.proposal_id, e.wins, e.losses, e.ties) for e in after.entries] == \
        [(e.proposal_id, e.wins, e.losses, e.ties) for e in before.entries]

    counted = stats(stub, cause_id)
    assert (counted.votes_accepted, counted.votes_counted, counted.lag) == (430, 430, 0)
    assert (counted.votes_untrusted, counted.votes_excluded) == (30, 0)
    assert votes_in_log(trust, cause_id) == 430  # nothing dropped


def votes_in_log(trust: RestartableCluster, cause_id: str) -> int:
    client = redis.Redis.from_url(trust.url)
    try:
        return sum(len(vote_log.votes_of(fields))
                   for _, fields in client.xrange(keys.votes(cause_id)))
    finally:
        client.close()


# -- exclusions -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [22, 32, 42])
def test_excluding_a_voter_gives_the_fit_without_them_survives_a_restart_and_reinstating_restores(
        trust, cause_id, seed):
    stub, rng, votes = trust.stub, np.random.default_rng(seed), Votes()
    create_cause(stub, cause_id)
    import_honest_votes(stub, cause_id, votes, rng, 300)
    push_votes(stub, cause_id, votes, "sybil", 120)
    n_sent = len(votes.sent)
    with_sybil = ranking_when(stub, cause_id, "every vote ranked",
                              lambda r: r.votes_counted == n_sent)
    assert_fit_matches(with_sybil, votes.fit())
    assert with_sybil.entries[0].proposal_id == PUSHED  # the push worked
    honest_vote = votes.sent[0][0]

    change = stub.ExcludeVotes(gw.ExcludeVotesRequest(
        cause_id=cause_id, voter_ids=["sybil", "sybil"], vote_ids=[honest_vote],
        reason="same device, 120 votes in a minute", requested_by="modération"),
        metadata=ADMIN, timeout=10)
    assert (change.voters_changed, change.votes_changed) == (1, 1)
    excluded_version = change.exclusions_version
    reference = votes.fit(without_voters={"sybil"}, without_votes={honest_vote})

    def without_sybil(stub: Any) -> Any:
        return ranking_when(stub, cause_id, "the ranking without the excluded votes",
                            lambda r: r.exclusions_version == excluded_version
                            and r.votes_counted == n_sent)

    ranking = without_sybil(stub)
    assert (ranking.votes_excluded, ranking.votes_untrusted) == (121, 0)
    assert_fit_matches(ranking, reference)
    counted = stats(stub, cause_id)
    assert (counted.votes_excluded, counted.exclusions_version) == (121, excluded_version)

    # Excluding again changes nothing, and writes nothing to the audit trail.
    again = stub.ExcludeVotes(gw.ExcludeVotesRequest(
        cause_id=cause_id, voter_ids=["sybil"], reason="again"), metadata=ADMIN, timeout=10)
    assert (again.voters_changed, again.votes_changed, again.exclusions_version) == \
        (0, 0, excluded_version)

    # The excluded voter's new votes are left out as they come, counted as excluded only
    # (they are untrusted too: exclusion is what is reported).
    vote_fast(stub, cause_id, "sybil", 5)
    ranking = ranking_when(stub, cause_id, "sybil's new votes reflected",
                           lambda r: r.votes_counted == n_sent + 5)
    assert (ranking.votes_excluded, ranking.votes_untrusted) == (126, 0)
    assert_fit_matches(ranking, reference)

    # A new ranker counts from its checkpoint the same way.
    trust.restart_ranker()
    ranking = ranking_when(trust.stub, cause_id, "the restarted ranker's ranking",
                           lambda r: r.votes_counted == n_sent + 5)
    assert (ranking.exclusions_version, ranking.votes_excluded) == (excluded_version, 126)
    assert_fit_matches(ranking, reference)
    stored = checkpoint(trust, cause_id)
    assert (stored[checkpoint_fields.EXCLUSIONS_VERSION],
            stored[checkpoint_fields.VOTES_EXCLUDED]) == (str(excluded_version), "126")

    listed = trust.stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id),
                                       metadata=ADMIN, timeout=10)
    assert listed.total == 2 and listed.exclusions_version == excluded_version
    assert [(e.voter_id, e.vote_id) for e in listed.exclusions] == [("", honest_vote),
                                                                   ("sybil", "")]
    assert all(e.reason == "same device, 120 votes in a minute"
               and e.excluded_by.startswith("admin:") and e.excluded_by.endswith(" / modération")
               and e.excluded_at_ms > 0 for e in listed.exclusions)

    reinstated = trust.stub.ReinstateVotes(gw.ReinstateVotesRequest(
        cause_id=cause_id, voter_ids=["sybil"], vote_ids=[honest_vote],
        reason="a school's shared computer room, checked with the teacher"),
        metadata=ADMIN, timeout=10)
    assert (reinstated.voters_changed, reinstated.votes_changed) == (1, 1)
    assert reinstated.exclusions_version > excluded_version
    ranking = ranking_when(trust.stub, cause_id, "the ranking with every vote again",
                           lambda r: r.exclusions_version == reinstated.exclusions_version)
    # Sybil's 5 fast votes are untrusted now that they are not excluded.
    assert (ranking.votes_excluded, ranking.votes_untrusted) == (0, 5)
    assert_fit_matches(ranking, votes.fit())
    assert trust.stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id),
                                     metadata=ADMIN, timeout=10).total == 0

    audit = trust.stub.ListExclusionAudit(gw.ListExclusionAuditRequest(cause_id=cause_id),
                                          metadata=ADMIN, timeout=10)
    assert [(e.action, list(e.voter_ids), list(e.vote_ids), e.exclusions_version)
            for e in audit.entries] == [
        ("exclude", ["sybil"], [honest_vote], excluded_version),
        ("reinstate", ["sybil"], [honest_vote], reinstated.exclusions_version)]
    assert audit.entries[0].reason == "same device, 120 votes in a minute"
    assert audit.entries[1].reason.startswith("a school's shared computer room")
    assert audit.entries[0].by.startswith("admin:") and audit.entries[1].by.startswith("admin:")
    assert ADMIN_TOKEN not in audit.entries[0].by
    assert 0 < audit.entries[0].at_ms <= audit.entries[1].at_ms
    page = trust.stub.ListExclusionAudit(gw.ListExclusionAuditRequest(
        cause_id=cause_id, after=audit.entries[0].entry_id, limit=5), metadata=ADMIN,
        timeout=10)
    assert [e.action for e in page.entries] == ["reinstate"]
    assert page.next_after == audit.entries[1].entry_id
    assert votes_in_log(trust, cause_id) == n_sent + 5  # nothing was ever deleted


def checkpoint(trust: RestartableCluster, cause_id: str) -> dict[str, str]:
    client = redis.Redis.from_url(trust.url, decode_responses=True)
    try:
        return client.hgetall(keys.checkpoint(cause_id))  # type: ignore[return-value]
    finally:
        client.close()


def test_a_checkpoint_stored_before_votes_were_left_out_is_counted_again(trust, cause_id):
    """A ranker that counted every vote left a checkpoint without the left-out tallies: the
    next ranker counts the log again, so the untrusted votes leave the ranking, and no vote
    is lost or counted twice."""
    stub, rng, votes = trust.stub, np.random.default_rng(23), Votes()
    create_cause(stub, cause_id)
    import_honest_votes(stub, cause_id, votes, rng, 200)
    vote_fast(stub, cause_id, "quick-4", 12)
    ranking_when(stub, cause_id, "every vote reflected", lambda r: r.votes_counted == 212)
    trust.stop_ranker_and_gateway()  # with a final checkpoint of all 212

    client = redis.Redis.from_url(trust.url)
    try:
        counts = PairCounts()
        codes = {"w": 0, "t": 1, "s": 2}
        logged = [vote for _, fields in client.xrange(keys.votes(cause_id))
                  for vote in vote_log.votes_of(fields)]
        counts.apply(np.array([codes[v.kind] for v in logged], dtype=np.uint8),
                     np.array([v.a for v in logged]), np.array([v.b for v in logged]))
        with client.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.checkpoint(cause_id), checkpoint_fields.VOTES_UNTRUSTED,
                      checkpoint_fields.VOTES_EXCLUDED, checkpoint_fields.EXCLUSIONS_VERSION)
            pipe.delete(keys.checkpoint_base(cause_id), keys.checkpoint_deltas(cause_id))
            pipe.rpush(keys.checkpoint_base(cause_id), counts.to_bytes())
            pipe.hset(keys.checkpoint(cause_id), mapping={checkpoint_fields.BASE_PARTS: 1,
                                                          checkpoint_fields.DELTAS: 0})
            pipe.execute()
    finally:
        client.close()
    assert checkpoint(trust, cause_id)[checkpoint_fields.VOTES_COUNTED] == "212"

    trust.start_ranker_and_gateway()
    ranking = ranking_when(trust.stub, cause_id, "the ranking of the recounted log",
                           lambda r: r.votes_counted == 212)
    assert (ranking.votes_untrusted, ranking.votes_excluded) == (12, 0)
    assert_fit_matches(ranking, votes.fit())
    assert sum(e.wins + e.ties for e in ranking.entries) == \
        sum(1 if not tie else 2 for *_, tie in votes.sent)
    stored = eventually(lambda: checkpoint(trust, cause_id), "the recount checkpointed",
                        until=lambda c: checkpoint_fields.EXCLUSIONS_VERSION in c)
    assert (stored[checkpoint_fields.VOTES_COUNTED], stored[checkpoint_fields.VOTES_UNTRUSTED],
            stored[checkpoint_fields.VOTES_EXCLUDED]) == ("212", "12", "0")


def test_an_export_leaves_out_what_the_ranking_left_out_and_its_recompute_matches(
        trust, cause_id, tmp_path):
    stub, rng, votes = trust.stub, np.random.default_rng(24), Votes()
    create_cause(stub, cause_id)
    import_honest_votes(stub, cause_id, votes, rng, 200)
    push_votes(stub, cause_id, votes, "sybil", 40)
    vote_fast(stub, cause_id, "quick-5", 8)
    version = stub.ExcludeVotes(gw.ExcludeVotesRequest(
        cause_id=cause_id, voter_ids=["sybil"], vote_ids=["h3"], reason="farm"),
        metadata=ADMIN, timeout=10).exclusions_version
    ranking_when(stub, cause_id, "the exclusions reflected",
                 lambda r: r.exclusions_version == version and r.votes_counted == 248)

    result = export(stub, ADMIN_TOKEN, cause_id, "parquet", tmp_path / "raw",
                    raw_voter_ids=True)
    assert result.manifest["exclusions"] == {"voter_ids": ["sybil"], "vote_ids": ["h3"]}
    assert result.manifest["fit"]["counted_votes"] == "trusted"
    report = recompute(tmp_path / "raw")
    assert report.matches, report.problems
    assert (report.votes_in_file, report.votes_in_fit) == (248, 248 - 8 - 41)

    # Pseudonymised voter ids cannot be matched with the excluded voters: refused.
    with pytest.raises(ExportFailed, match="raw voter ids"):
        export(stub, ADMIN_TOKEN, cause_id, "parquet", tmp_path / "pseudonymised")


# -- refusals ---------------------------------------------------------------------------------


def test_exclusion_requests_are_checked_and_admin_only(trust, cause_id):
    stub = trust.stub
    create_cause(stub, cause_id)

    def refused(call: Any, request: Any, metadata: Any = ADMIN) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            call(request, metadata=metadata, timeout=10)
        return info.value

    cases = [
        (stub.ExcludeVotes, gw.ExcludeVotesRequest(cause_id="nope", voter_ids=["v"],
                                                   reason="r"),
         grpc.StatusCode.NOT_FOUND, "nope"),
        (stub.ReinstateVotes, gw.ReinstateVotesRequest(cause_id="nope", vote_ids=["v"],
                                                       reason="r"),
         grpc.StatusCode.NOT_FOUND, "nope"),
        (stub.ListExclusions, gw.ListExclusionsRequest(cause_id="nope"),
         grpc.StatusCode.NOT_FOUND, "nope"),
        (stub.ListExclusionAudit, gw.ListExclusionAuditRequest(cause_id="nope"),
         grpc.StatusCode.NOT_FOUND, "nope"),
        (stub.ExcludeVotes, gw.ExcludeVotesRequest(cause_id=cause_id, reason="r"),
         grpc.StatusCode.INVALID_ARGUMENT, "voter_ids"),
        (stub.ExcludeVotes, gw.ExcludeVotesRequest(cause_id=cause_id, voter_ids=["v"]),
         grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (stub.ExcludeVotes, gw.ExcludeVotesRequest(
            cause_id=cause_id, voter_ids=["v"], reason="x" * (exclusions.MAX_REASON_CHARS + 1)),
         grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (stub.ExcludeVotes, gw.ExcludeVotesRequest(
            cause_id=cause_id, voter_ids=[f"v{k}" for k in range(600)],
            vote_ids=[f"x{k}" for k in range(401)], reason="r"),
         grpc.StatusCode.INVALID_ARGUMENT, "at most 1000"),
        (stub.ExcludeVotes, gw.ExcludeVotesRequest(cause_id=cause_id, vote_ids=["a b"],
                                                   reason="r"),
         grpc.StatusCode.INVALID_ARGUMENT, "vote_ids"),
        (stub.ReinstateVotes, gw.ReinstateVotesRequest(cause_id=cause_id, voter_ids=["v"],
                                                       reason=" "),
         grpc.StatusCode.INVALID_ARGUMENT, "reason"),
        (stub.ExcludeVotes, gw.ExcludeVotesRequest(cause_id=cause_id, voter_ids=["v"],
                                                   reason="r", requested_by="x" * 129),
         grpc.StatusCode.INVALID_ARGUMENT, "requested_by"),
        (stub.ListExclusions, gw.ListExclusionsRequest(cause_id=cause_id, limit=1001),
         grpc.StatusCode.INVALID_ARGUMENT, "limit"),
        (stub.ListExclusionAudit, gw.ListExclusionAuditRequest(cause_id=cause_id,
                                                               after="not-an-id"),
         grpc.StatusCode.INVALID_ARGUMENT, "after"),
    ]
    for call, request, code, named in cases:
        error = refused(call, request)
        assert (error.code(), named in error.details()) == (code, True), (request, error)

    denied = refused(stub.ExcludeVotes, gw.ExcludeVotesRequest(
        cause_id=cause_id, voter_ids=["v"], reason="r"), metadata=PLATFORM)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nothing refused was written; an offset past the end is an empty page.
    listed = stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id, offset=2**62),
                                 metadata=ADMIN, timeout=10)
    assert (list(listed.exclusions), listed.total, listed.exclusions_version) == ([], 0, 0)
    assert not stub.ListExclusionAudit(gw.ListExclusionAuditRequest(cause_id=cause_id),
                                       metadata=ADMIN, timeout=10).entries
