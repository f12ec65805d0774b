"""A cause's default ranking view through a real gateway, ingest, ranker and Redis: a ranking
read that leaves the view unset gets the raw view until the admin chooses another
(SetDefaultRankingView, or at creation), then the view chosen, exactly as an explicit read of
it; an explicit raw read stays raw; the choice shows on the cause and in its audit trail; bad
choices get clear statuses.

The cluster here is its own (a Redis database of its own), set up as test_ranking_views'."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import redis
from conftest import RestartableCluster, eventually, own_database
from test_ranking_views import read, skewed_cause
from test_segments import ADMIN, HOUR_MS, PLATFORM, create_cause, refused

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import types_pb2

RAW = types_pb2.RANKING_VIEW_RAW
REPRESENTATIVE = types_pb2.RANKING_VIEW_REPRESENTATIVE
CONSENSUS = types_pb2.RANKING_VIEW_CONSENSUS
UNSET = types_pb2.RANKING_VIEW_UNSPECIFIED  # in a ranking: the raw view


@pytest.fixture(scope="module")
def view_cluster(redis_url: str) -> Iterator[RestartableCluster]:
    url = own_database(redis_url, "default_view")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    started = RestartableCluster(url, min_view_ms=HOUR_MS)
    yield started
    started.close()


def choose(stub: Any, cause_id: str, view: int, attribute: str = "", **fields: Any) -> Any:
    return stub.SetDefaultRankingView(gw.SetDefaultRankingViewRequest(
        cause_id=cause_id, view=view, view_attribute=attribute, **fields),
        metadata=ADMIN, timeout=10).cause


def abilities(ranking: Any) -> dict[str, float]:
    return {entry.proposal_id: entry.ability for entry in ranking.entries}


def test_the_default_view_is_served_when_a_read_leaves_it_unset(view_cluster, cause_id):
    stub = view_cluster.stub
    votes = skewed_cause(stub, cause_id, seed=5, n=600)
    cause = stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=PLATFORM,
                          timeout=10).cause
    assert cause.default_view == RAW and cause.default_view_attribute == ""
    raw = read(stub, cause_id)
    assert raw.view == UNSET and raw.votes_counted == len(votes)

    chosen = choose(stub, cause_id, REPRESENTATIVE, reason="census weights",
                    requested_by="organiser")
    assert chosen.default_view == REPRESENTATIVE and chosen.default_view_attribute == ""
    by_default = read(stub, cause_id)
    explicit = read(stub, cause_id, view=REPRESENTATIVE)
    assert by_default.view == REPRESENTATIVE
    assert list(by_default.weighted_attributes) == ["region", "age"]
    assert by_default.votes_counted == explicit.votes_counted == len(votes)
    assert abilities(by_default) == abilities(explicit)
    assert [e.proposal_id for e in by_default.entries] == [e.proposal_id
                                                          for e in explicit.entries]
    # The voters skew young, the population does not: weighting moves the abilities.
    assert max(abs(abilities(by_default)[pid] - ability)
               for pid, ability in abilities(raw).items()) > 0.1
    # An explicit raw read, and a segment's read, stay raw.
    again_raw = read(stub, cause_id, view=RAW)
    assert again_raw.view == UNSET and abilities(again_raw) == abilities(raw)
    north = read(stub, cause_id, segment=types_pb2.Segment(key="region", value="north"))
    assert north.view == UNSET and north.segment_votes > 0

    watch = stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id), metadata=PLATFORM,
                              timeout=60)
    try:
        update = next(watch)
        assert update.view == REPRESENTATIVE
        assert list(update.weighted_attributes) == ["region", "age"]
        assert abilities(update) == abilities(explicit)
    finally:
        watch.cancel()

    cause = stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=PLATFORM,
                          timeout=10).cause
    assert cause.default_view == REPRESENTATIVE
    # A consensus names its attribute: the first declared when none is given.
    assert choose(stub, cause_id, CONSENSUS).default_view_attribute == "region"
    consensus = eventually(
        lambda: (lambda r: r if r.votes_counted == len(votes) else None)(read(stub, cause_id)),
        "the default consensus reflects every vote", timeout=60)
    assert consensus.view == CONSENSUS and consensus.view_attribute == "region"
    assert choose(stub, cause_id, REPRESENTATIVE, "age").default_view_attribute == "age"
    alone = read(stub, cause_id)
    assert alone.view == REPRESENTATIVE and list(alone.weighted_attributes) == ["age"]
    # Back to raw (UNSPECIFIED chooses it too).
    assert choose(stub, cause_id, UNSET).default_view == RAW
    assert read(stub, cause_id).view == UNSET

    audit = stub.ListCauseAudit(gw.ListCauseAuditRequest(cause_id=cause_id), metadata=ADMIN,
                                timeout=10).entries
    chosen_views = [(entry.default_view, entry.default_view_attribute)
                    for entry in audit if entry.action == "default_view"]
    assert chosen_views == [(REPRESENTATIVE, ""), (CONSENSUS, "region"),
                            (REPRESENTATIVE, "age"), (RAW, "")]
    first = next(entry for entry in audit if entry.action == "default_view")
    assert first.reason == "census weights" and first.by.endswith(" / organiser")
    assert first.state_before == first.state_after == types_pb2.CAUSE_STATE_OPEN
    assert first.votes == len(votes)


def test_a_default_chosen_at_creation_and_bad_choices(view_cluster, cause_id):
    stub = view_cluster.stub
    # No attribute is declared at creation: a consensus cannot be the default yet.
    error = refused(stub.CreateCause, gw.CreateCauseRequest(
        cause_id=cause_id, title="Que faire ?", default_view=CONSENSUS))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "declares none" in \
        error.details()
    cause = stub.CreateCause(gw.CreateCauseRequest(
        cause_id=cause_id, title="Que faire ?", default_view=REPRESENTATIVE),
        metadata=ADMIN, timeout=10).cause
    assert cause.default_view == REPRESENTATIVE
    # Chosen before any attribute or margin: reads answer as an explicit representative one.
    for request in (gw.GetRankingRequest(cause_id=cause_id),
                    gw.GetRankingRequest(cause_id=cause_id, view=REPRESENTATIVE)):
        error = refused(stub.GetRanking, request, PLATFORM)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "SetVoterAttributes" in error.details()
    other = f"{cause_id}-attrs"
    create_cause(stub, other)
    choose(stub, other, REPRESENTATIVE)
    for request in (gw.GetRankingRequest(cause_id=other),
                    gw.GetRankingRequest(cause_id=other, view=REPRESENTATIVE)):
        error = refused(stub.GetRanking, request, PLATFORM)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "SetPopulationMargins" in error.details()
    watch_error = refused(lambda request, **kw: next(stub.WatchRanking(request, **kw)),
                          gw.WatchRankingRequest(cause_id=other), PLATFORM)
    assert watch_error.code() == grpc.StatusCode.FAILED_PRECONDITION
    # An explicit raw read is served whatever the default.
    assert read(stub, other, view=RAW).view == UNSET

    for request, metadata, code, words in [
        (gw.SetDefaultRankingViewRequest(cause_id=other, view=REPRESENTATIVE), PLATFORM,
         grpc.StatusCode.PERMISSION_DENIED, ""),
        (gw.SetDefaultRankingViewRequest(cause_id=f"{cause_id}-none", view=REPRESENTATIVE),
         ADMIN, grpc.StatusCode.NOT_FOUND, "not found"),
        (gw.SetDefaultRankingViewRequest(cause_id=cause_id, view=CONSENSUS), ADMIN,
         grpc.StatusCode.INVALID_ARGUMENT, "declares none"),
        (gw.SetDefaultRankingViewRequest(cause_id=other, view=CONSENSUS,
                                         view_attribute="income"), ADMIN,
         grpc.StatusCode.INVALID_ARGUMENT, "unknown attribute 'income'"),
        (gw.SetDefaultRankingViewRequest(cause_id=other, view=REPRESENTATIVE,
                                         view_attribute="income"), ADMIN,
         grpc.StatusCode.INVALID_ARGUMENT, "unknown attribute 'income'"),
        (gw.SetDefaultRankingViewRequest(cause_id=other, view=7), ADMIN,
         grpc.StatusCode.INVALID_ARGUMENT, "unknown view"),
        (gw.SetDefaultRankingViewRequest(cause_id=other, view=RAW, view_attribute="region"),
         ADMIN, grpc.StatusCode.INVALID_ARGUMENT, "raw view takes no attribute"),
    ]:
        error = refused(stub.SetDefaultRankingView, request, metadata)
        assert error.code() == code and words in error.details(), (request, error.details())
    # None of the refusals changed the default.
    assert stub.GetCause(gw.GetCauseRequest(cause_id=other), metadata=ADMIN,
                         timeout=10).cause.default_view == REPRESENTATIVE
