"""Who voted, through a real gateway, ingest, ranker and Redis: a cause declares the
attributes its voters may give, votes carry them into the log and out in exports, and each
segment of voters (one attribute value) gets the ranking of its own votes, the same after a
ranker restart, with the votes that do not count (untrusted, excluded) left out of it too.

The cluster here is its own (a Redis database of its own); as in test_trust, its ingest flags
every interactive vote as untrusted, and trusted votes come through ImportVotes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pyarrow.parquet as pq
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

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import types_pb2
from publishing.exporter import export
from ranker.bradley_terry import PRIOR_STRENGTH, FitDidNotConverge
from ranker.fit_scheduler import FitScheduler

HOUR_MS = 3_600_000
ADMIN, PLATFORM = bearer(ADMIN_TOKEN), bearer(PLATFORM_TOKEN)
PROPOSALS = [f"p{k}" for k in range(6)]
ATTRIBUTES = {"region": ["north", "south", "east"], "age": ["young", "old"]}
# The north prefers the first proposals, the south the last ones.
TRUTH = {"north": np.array([1.5, 1.0, 0.5, 0.0, -0.5, -1.0]),
         "south": np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])}

Vote = tuple[str, str, str, str, bool, dict[str, str]]
"""(vote_id, voter_id, winner, loser, tie, attributes)"""


@pytest.fixture(scope="module")
def segments(redis_url: str) -> Iterator[RestartableCluster]:
    url = own_database(redis_url, "segments")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    cluster = RestartableCluster(url, min_view_ms=HOUR_MS)
    yield cluster
    cluster.close()


def create_cause(stub: Any, cause_id: str) -> None:
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Que faire ?"),
                     metadata=ADMIN, timeout=10)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=f"Proposition {pid}") for pid in PROPOSALS]),
        metadata=ADMIN, timeout=10)
    stub.SetVoterAttributes(gw.SetVoterAttributesRequest(cause_id=cause_id, attributes=[
        types_pb2.VoterAttribute(key=key, values=values) for key, values in ATTRIBUTES.items()
    ]), metadata=ADMIN, timeout=10)


def refused(call: Any, request: Any, metadata: Any = ADMIN) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, metadata=metadata, timeout=10)
    return info.value


def simulated_votes(rng: np.random.Generator, n: int) -> list[Vote]:
    """`n` votes: north and south voters acting on their region's abilities; a voter gives
    both attributes, the region only, or none (a few "unknown" votes); 10% ties."""
    votes: list[Vote] = []
    for k in range(n):
        region = "north" if rng.random() < 0.6 else "south"
        voter = f"{region}-{rng.integers(15)}"
        shape = rng.random()
        attributes = ({"region": region, "age": "young"} if shape < 0.5 else
                      {"region": region} if shape < 0.85 else {})
        a, b = rng.choice(len(PROPOSALS), size=2, replace=False).tolist()
        tie = bool(rng.random() < 0.1)
        truth = TRUTH[region]
        if not tie and rng.random() >= 1 / (1 + np.exp(truth[b] - truth[a])):
            a, b = b, a
        votes.append((f"v{k}", voter, PROPOSALS[a], PROPOSALS[b], tie, attributes))
    return votes


def import_votes(stub: Any, cause_id: str, votes: list[Vote]) -> Any:
    return stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[
        types_pb2.ImportedVote(vote_id=vote_id, cause_id=cause_id, voter_id=voter,
                               winner_id=winner, loser_id=loser, tie=tie, attributes=attributes)
        for vote_id, voter, winner, loser, tie, attributes in votes])]),
        metadata=ADMIN, timeout=30)


def reference_fit(votes: list[Vote]) -> dict[str, float]:
    """Penalised Bradley-Terry abilities of `votes` (ties half a win each, the documented
    prior, centred), fitted from scratch with scipy, independently of the ranker."""
    index = {pid: k for k, pid in enumerate(PROPOSALS)}
    wins = np.zeros((len(PROPOSALS), len(PROPOSALS)))
    for _, _, winner, loser, tie, _ in votes:
        w, lo = index[winner], index[loser]
        if tie:
            wins[w, lo] += 0.5
            wins[lo, w] += 0.5
        else:
            wins[w, lo] += 1

    def minus_log_posterior(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = 1 / (1 + np.exp(-(theta[:, None] - theta[None, :])))
        value = -(wins * np.log(p)).sum() + PRIOR_STRENGTH / 2 * (theta @ theta)
        grad = -((wins * (1 - p)).sum(axis=1) - (wins.T * p).sum(axis=1)) \
            + PRIOR_STRENGTH * theta
        return float(value), grad

    result = minimize(minus_log_posterior, np.zeros(len(PROPOSALS)), jac=True, method="BFGS",
                      options={"gtol": 1e-10})
    theta = result.x - result.x.mean()
    return dict(zip(PROPOSALS, theta.tolist(), strict=True))


def segment_ranking(stub: Any, cause_id: str, key: str, value: str, votes_counted: int) -> Any:
    """The segment's ranking once it reflects the first `votes_counted` votes of the log."""
    def read() -> Any:
        ranking = stub.GetRanking(gw.GetRankingRequest(
            cause_id=cause_id, segment=types_pb2.Segment(key=key, value=value)),
            metadata=PLATFORM, timeout=10)
        return ranking if ranking.votes_counted == votes_counted else None
    return eventually(read, f"segment {key}={value} counts {votes_counted} votes", timeout=60)


def assert_ranking_is(ranking: Any, votes: list[Vote]) -> None:
    reference = reference_fit(votes)
    got = {entry.proposal_id: entry.ability for entry in ranking.entries}
    assert got.keys() == reference.keys()
    for pid, ability in reference.items():
        assert got[pid] == pytest.approx(ability, abs=1e-4), (pid, got, reference)
    assert ranking.segment_votes == len(votes)
    assert not ranking.segment_without_votes
    assert all(entry.ci_low < entry.ability < entry.ci_high for entry in ranking.entries)


def in_segment(votes: list[Vote], key: str, value: str) -> list[Vote]:
    return [vote for vote in votes if vote[5].get(key) == value]


# -- declaring attributes and margins -----------------------------------------------------


def test_attributes_and_margins_are_declared_and_bad_ones_refused(segments, cause_id):
    stub = segments.stub
    create_cause(stub, cause_id)
    cause = stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=PLATFORM,
                          timeout=10).cause
    assert {a.key: list(a.values) for a in cause.voter_attributes} == ATTRIBUTES

    def declare(attributes: dict[str, list[str]]) -> Any:
        return gw.SetVoterAttributesRequest(cause_id=cause_id, attributes=[
            types_pb2.VoterAttribute(key=key, values=values)
            for key, values in attributes.items()])

    for bad, code, words in [
        ({f"k{k}": ["a"] for k in range(9)}, grpc.StatusCode.INVALID_ARGUMENT, "at most 8"),
        ({**ATTRIBUTES, "gender": [f"v{k}" for k in range(33)]},
         grpc.StatusCode.INVALID_ARGUMENT, "at most 32 values"),
        ({**ATTRIBUTES, "bad key": ["a"]}, grpc.StatusCode.INVALID_ARGUMENT, "must match"),
        ({**ATTRIBUTES, "gender": ["f", "f"]}, grpc.StatusCode.INVALID_ARGUMENT, "twice"),
        ({"region": ["north", "south"]}, grpc.StatusCode.FAILED_PRECONDITION, "never removed"),
        ({"age": ["young", "old"], "region": ATTRIBUTES["region"]},
         grpc.StatusCode.FAILED_PRECONDITION, "reordered"),
    ]:
        error = refused(stub.SetVoterAttributes, declare(bad))
        assert error.code() == code and words in error.details(), (bad, error.details())
    assert refused(stub.SetVoterAttributes, declare(ATTRIBUTES), PLATFORM).code() \
        == grpc.StatusCode.PERMISSION_DENIED
    # Appending values and keys is allowed.
    grown = {"region": [*ATTRIBUTES["region"], "west"], "age": ATTRIBUTES["age"],
             "gender": ["f", "m"]}
    cause = stub.SetVoterAttributes(declare(grown), metadata=ADMIN, timeout=10).cause
    assert {a.key: list(a.values) for a in cause.voter_attributes} == grown

    def margins(shares: dict[str, dict[str, float]]) -> Any:
        return gw.SetPopulationMarginsRequest(cause_id=cause_id, margins=[
            gw.AttributeMargins(key=key, shares=values) for key, values in shares.items()])

    for bad, words in [
        ({"region": {"north": 0.5, "south": 0.4}}, "must sum to 1"),
        ({"region": {"north": 1.5, "south": -0.5}}, "must be in [0, 1]"),
        ({"region": {"north": 0.5, "mars": 0.5}}, "has no value 'mars'"),
        ({"income": {"low": 1.0}}, "unknown attribute 'income'"),
    ]:
        error = refused(stub.SetPopulationMargins, margins(bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert words in error.details(), (bad, error.details())
    set_reply = stub.SetPopulationMargins(margins({
        "region": {"north": 0.3, "south": 0.3, "east": 0.2, "west": 0.2},
        "age": {"young": 0.4, "old": 0.6}}), metadata=ADMIN, timeout=10)
    got = stub.GetPopulationMargins(gw.GetPopulationMarginsRequest(cause_id=cause_id),
                                    metadata=PLATFORM, timeout=10)
    assert list(got.margins) == list(set_reply.margins)
    assert {m.key: dict(m.shares) for m in got.margins} == {
        "region": {"north": 0.3, "south": 0.3, "east": 0.2, "west": 0.2},
        "age": {"young": 0.4, "old": 0.6}}
    # Changeable during the consultation.
    stub.SetPopulationMargins(margins({"age": {"young": 0.5, "old": 0.5}}), metadata=ADMIN,
                              timeout=10)
    got = stub.GetPopulationMargins(gw.GetPopulationMarginsRequest(cause_id=cause_id),
                                    metadata=ADMIN, timeout=10)
    assert {m.key: dict(m.shares) for m in got.margins} == {"age": {"young": 0.5, "old": 0.5}}


def test_votes_with_undeclared_attributes_are_refused_and_nothing_is_recorded(segments,
                                                                             cause_id):
    stub = segments.stub
    create_cause(stub, cause_id)
    for attributes, words in [
        ({"planet": "mars"}, "unknown attribute 'planet': this cause declares region, age"),
        ({"region": "mars"}, "attribute 'region' has no value 'mars': allowed are north, "
                             "south, east"),
        ({f"k{k}": "x" for k in range(9)}, "at most 8 attributes, got 9"),
    ]:
        error = refused(stub.NextPair, gw.NextPairRequest(
            cause_id=cause_id, voter_id="u1", attributes=attributes), PLATFORM)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == f"attributes: {words}"
        pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="u1",
                                                attributes={"region": "north"}),
                             metadata=PLATFORM, timeout=10)
        error = refused(stub.SubmitVote, gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id="u1", prompt_token=pair.prompt_token,
            choice=types_pb2.CHOICE_LEFT, attributes=attributes), PLATFORM)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == f"attributes: {words}"
    reply = import_votes(stub, cause_id, [
        ("i0", "u1", "p0", "p1", False, {"region": "mars"}),
        ("i1", "u1", "p0", "p1", False, {"region": "north"}),
        ("i2", "u1", "p0", "p1", False, {})])
    assert (reply.accepted, reply.rejected) == (2, 1)
    assert reply.errors[0].index == 0
    assert reply.errors[0].reason.startswith("invalid_attributes: attributes: attribute "
                                             "'region' has no value 'mars'")
    stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id), metadata=ADMIN,
                               timeout=10)
    assert stats.votes_accepted == 2
    assert stats.rejected_by_reason["invalid_attributes"] == 1
    # A segment that is not declared is refused by name.
    error = refused(stub.GetRanking, gw.GetRankingRequest(
        cause_id=cause_id, segment=types_pb2.Segment(key="region", value="mars")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("segment.value: attribute 'region' has no value 'mars'")


# -- segment rankings -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [3, 4])
def test_each_segment_is_ranked_by_its_own_votes_and_survives_a_restart(segments, cause_id,
                                                                       seed, tmp_path):
    rng = np.random.default_rng(seed)
    create_cause(segments.stub, cause_id)
    votes = simulated_votes(rng, 600)
    reply = import_votes(segments.stub, cause_id, votes)
    assert (reply.accepted, reply.rejected) == (len(votes), 0)
    # Interactive votes here are untrusted: in the log with their attributes, in no ranking.
    for k in range(5):
        pair = segments.stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="fast"),
                                      metadata=PLATFORM, timeout=10)
        segments.stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id="fast", prompt_token=pair.prompt_token,
            choice=types_pb2.CHOICE_LEFT, attributes={"region": "north", "age": "old"},
            idempotency_key=f"fast-{k}"), metadata=PLATFORM, timeout=10)
    total = len(votes) + 5

    def check(stub: Any) -> None:
        for key, value in [("region", "north"), ("region", "south"), ("age", "young")]:
            ranking = segment_ranking(stub, cause_id, key, value, total)
            assert (ranking.segment.key, ranking.segment.value) == (key, value)
            assert_ranking_is(ranking, in_segment(votes, key, value))
        # The north's ranking follows the north, the south's the south.
        north = segment_ranking(stub, cause_id, "region", "north", total)
        south = segment_ranking(stub, cause_id, "region", "south", total)
        assert north.entries[0].proposal_id in {"p0", "p1"}
        assert south.entries[0].proposal_id in {"p4", "p5"}
        # Declared segments without a counted vote: listed, flagged, no fit (the old voters'
        # votes are all untrusted).
        for key, value in [("region", "east"), ("age", "old")]:
            empty = segment_ranking(stub, cause_id, key, value, total)
            assert empty.segment_without_votes and not empty.entries
            assert empty.segment_votes == 0
        stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                   metadata=PLATFORM, timeout=10)
        assert {(s.segment.key, s.segment.value): s.votes_counted for s in stats.segments} == {
            (key, value): len(in_segment(votes, key, value))
            for key, values in ATTRIBUTES.items() for value in values}
        assert stats.votes_untrusted == 5
        # No vote lost: every accepted vote counted, none rejected.
        assert stats.votes_accepted == stats.votes_counted == total
        assert stats.votes_rejected == 0
        overall = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id), metadata=PLATFORM,
                                  timeout=10)
        assert not overall.HasField("segment") and overall.segment_votes == 0

    check(segments.stub)
    segments.restart_ranker()
    check(segments.stub)

    # An excluded voter leaves their segments' rankings too.
    _, excluded, _, _, _, attributes = next(vote for vote in votes if vote[5])
    region = attributes["region"]
    change = segments.stub.ExcludeVotes(gw.ExcludeVotesRequest(
        cause_id=cause_id, voter_ids=[excluded], reason="a bot"), metadata=ADMIN, timeout=10)
    kept = [vote for vote in votes if vote[1] != excluded]

    def without_excluded() -> Any:
        ranking = segment_ranking(segments.stub, cause_id, "region", region, total)
        return ranking if ranking.exclusions_version == change.exclusions_version else None
    assert_ranking_is(eventually(without_excluded, "the exclusion reaches the segment"),
                      in_segment(kept, "region", region))

    # The export carries each vote's attributes, from which a segment can be counted again.
    result = export(segments.stub, ADMIN_TOKEN, cause_id, "parquet", tmp_path / "export",
                    raw_voter_ids=True)
    table = pq.read_table(result.folder / "votes.parquet").to_pydict()
    codes = dict(zip(table["vote_id"], table["attributes"], strict=True))
    for vote_id, _, _, _, _, attributes in votes:
        expected = "".join(str(ATTRIBUTES[key].index(attributes[key])) if key in attributes
                           else "-" for key in ATTRIBUTES).rstrip("-") or "-"
        assert codes[vote_id] == expected, (vote_id, attributes)
    fast = [code for voter, code in zip(table["voter_id"], table["attributes"], strict=True)
            if voter == "fast"]
    assert fast == ["01"] * 5


def test_watching_a_segment_follows_its_ranking(segments, cause_id):
    stub = segments.stub
    create_cause(stub, cause_id)
    votes = simulated_votes(np.random.default_rng(7), 200)
    import_votes(stub, cause_id, votes)
    watch = stub.WatchRanking(gw.WatchRankingRequest(
        cause_id=cause_id, segment=types_pb2.Segment(key="region", value="south")),
        metadata=PLATFORM, timeout=60)
    try:
        for update in watch:
            if update.votes_counted == len(votes):
                assert (update.segment.key, update.segment.value) == ("region", "south")
                assert_ranking_is(update, in_segment(votes, "region", "south"))
                break
    finally:
        watch.cancel()


def test_old_log_entries_without_attributes_still_count(segments, cause_id):
    """Entries written before attributes existed (no g field) are votes of unknown
    attributes: in the overall ranking, in no segment."""
    stub = segments.stub
    create_cause(stub, cause_id)
    client = redis.Redis.from_url(segments.url)
    try:
        from pairwise import keys, vote_log
        client.xadd(keys.votes(cause_id), vote_log.batch_fields("wt", [0, 1], [1, 2],
                                                                ["o1", "o2"], ["u", "u"]))
        client.hincrby(keys.vote_stats(cause_id), "accepted", 2)
    finally:
        client.close()
    ranking = eventually(lambda: (r := stub.GetRanking(gw.GetRankingRequest(
        cause_id=cause_id), metadata=PLATFORM, timeout=10)).votes_counted == 2 and r,
        "the old entry is counted")
    assert ranking.entries[0].proposal_id == "p0"
    assert segment_ranking(stub, cause_id, "region", "north", 2).segment_without_votes



def test_a_segment_cut_for_a_fit_that_failed_is_fitted_by_the_next_one(segments, cause_id,
                                                                         monkeypatch):
    """A fit that fails after cutting the segments' inputs leaves them to the next fit: the
    north's first ranking appears when later votes (of the south only) are counted, fitted
    from the north's votes, not a ranking the north never had."""
    stub = segments.stub
    create_cause(stub, cause_id)
    rng = np.random.default_rng(7)
    votes = simulated_votes(rng, 300)
    north = [vote for vote in votes if vote[5].get("region") == "north"][:80]
    south = [vote for vote in votes if vote[5].get("region") == "south"][:40]
    failed = threading.Event()
    original = FitScheduler._fit_once

    async def fit_once_failing_on_the_north(self: FitScheduler, *args: Any,
                                            **kwargs: Any) -> Any:
        done = await original(self, *args, **kwargs)
        if self.cause_id == cause_id and done is not None \
                and done[0].votes_counted <= len(north):
            if done[0].votes_counted == len(north):
                failed.set()
            raise FitDidNotConverge("made to fail")
        return done
    monkeypatch.setattr(FitScheduler, "_fit_once", fit_once_failing_on_the_north)

    assert import_votes(stub, cause_id, north).accepted == len(north)
    eventually(failed.is_set, "a fit of the north's votes fails")
    assert import_votes(stub, cause_id, south).accepted == len(south)
    total = len(north) + len(south)
    assert_ranking_is(segment_ranking(stub, cause_id, "region", "north", total), north)
    assert_ranking_is(segment_ranking(stub, cause_id, "region", "south", total), south)
