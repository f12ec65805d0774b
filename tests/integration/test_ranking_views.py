"""The representative and consensus views through a real gateway, ingest, ranker and Redis:
GetRanking serves the votes weighted to the population's margins of one attribute, and the
proposals ranked by the region that likes them least; bad requests get clear statuses.

The cluster here is its own (a Redis database of its own), set up as test_segments' is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import redis
from conftest import RestartableCluster, eventually, own_database
from test_segments import (
    ADMIN,
    HOUR_MS,
    PLATFORM,
    PROPOSALS,
    create_cause,
    import_votes,
    refused,
    simulated_votes,
)

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import types_pb2
from ranker import fit_pool, survey_weights
from ranker.bradley_terry.weighted import fit_weighted

REPRESENTATIVE = types_pb2.RANKING_VIEW_REPRESENTATIVE
CONSENSUS = types_pb2.RANKING_VIEW_CONSENSUS


@pytest.fixture(scope="module")
def views(redis_url: str) -> Iterator[RestartableCluster]:
    url = own_database(redis_url, "views")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    cluster = RestartableCluster(url, min_view_ms=HOUR_MS)
    yield cluster
    cluster.close()


def read(stub: Any, cause_id: str, **fields: Any) -> Any:
    return stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, **fields),
                           metadata=PLATFORM, timeout=10)


def test_representative_and_consensus_views(views, cause_id):
    stub = views.stub
    create_cause(stub, cause_id)
    votes = simulated_votes(np.random.default_rng(3), 900)
    import_votes(stub, cause_id, votes)
    eventually(lambda: read(stub, cause_id).votes_counted == len(votes) or None,
               "the raw ranking counts every vote", timeout=60)

    # No margins yet: nothing to weight to.
    error = refused(stub.GetRanking, gw.GetRankingRequest(cause_id=cause_id,
                                                          view=REPRESENTATIVE), PLATFORM)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "SetPopulationMargins" in error.details()
    margin = {"north": 0.4, "south": 0.4, "east": 0.2}
    stub.SetPopulationMargins(gw.SetPopulationMarginsRequest(cause_id=cause_id, margins=[
        gw.AttributeMargins(key="region", shares=margin)]), metadata=ADMIN, timeout=10)

    representative = read(stub, cause_id, view=REPRESENTATIVE)
    assert representative.view == REPRESENTATIVE
    assert representative.view_attribute == "region"
    assert representative.weighting == survey_weights.RAKING  # no east voter: renormalised
    assert representative.votes_counted == len(votes)
    assert 0 < representative.effective_votes < len(votes)
    assert representative.trimmed_votes == 0
    # The same fit as the votes weighted one by one (each vote its own voter, the regions
    # as strata): north and south weigh equally, the undeclared keep their share.
    index = {pid: k for k, pid in enumerate(PROPOSALS)}
    codes = {"north": 0, "south": 1, "east": 2}
    region = np.array([codes.get(v[5].get("region", ""), survey_weights.UNKNOWN)
                       for v in votes])
    weights = survey_weights.vote_weights(region[:, None],
                                          [np.array([0.4, 0.4, 0.2])])
    expected = fit_weighted(len(PROPOSALS), np.array([index[v[2]] for v in votes]),
                            np.array([index[v[3]] for v in votes]),
                            np.array([v[4] for v in votes]), weights.weights,
                            np.arange(len(votes)), groups=region[:, None])
    got = {entry.proposal_id: entry for entry in representative.entries}
    for pid, k in index.items():
        assert got[pid].ability == pytest.approx(expected.abilities[k], abs=1e-4)
        assert got[pid].std_error == pytest.approx(expected.std_errors[k], rel=1e-3)
    raw = {entry.proposal_id: entry.ability for entry in read(stub, cause_id).entries}
    # The south (40% of the votes, half the weighted population) pulls its favourite up.
    assert got["p5"].ability > raw["p5"]

    # Consensus across regions: the proposals both regions rank in the middle lead, the
    # ones they disagree on trail.
    def consensus() -> Any:
        ranking = read(stub, cause_id, view=CONSENSUS, view_attribute="region")
        return ranking if ranking.votes_counted == len(votes) else None
    agreed = eventually(consensus, "the consensus reflects every vote", timeout=60)
    order = [entry.proposal_id for entry in agreed.entries]
    assert set(order[:2]) == {"p2", "p3"}, order
    assert set(order[-2:]) == {"p0", "p5"}, order
    scores = [entry.score for entry in agreed.entries]
    assert scores == sorted(scores, reverse=True)
    assert agreed.view == CONSENSUS and agreed.view_attribute == "region"

    for request, code, words in [
        (gw.GetRankingRequest(cause_id=cause_id, view=CONSENSUS,
                              segment=types_pb2.Segment(key="region", value="north")),
         grpc.StatusCode.INVALID_ARGUMENT, "segment"),
        (gw.GetRankingRequest(cause_id=cause_id, view=CONSENSUS, view_attribute="income"),
         grpc.StatusCode.INVALID_ARGUMENT, "unknown attribute"),
        (gw.GetRankingRequest(cause_id=cause_id, view=REPRESENTATIVE, view_attribute="age"),
         grpc.StatusCode.FAILED_PRECONDITION, "no population margins"),
        (gw.GetRankingRequest(cause_id=cause_id, view=7), grpc.StatusCode.INVALID_ARGUMENT,
         "view"),
    ]:
        error = refused(stub.GetRanking, request, PLATFORM)
        assert error.code() == code and words in error.details(), (request, error.details())


def test_watching_a_view_follows_it(views, cause_id, monkeypatch):
    # Every fit goes to the fit worker, the representative view's as a large cause's would.
    monkeypatch.setattr(fit_pool, "INLINE_MAX_ITEMS", 0)
    stub = views.stub
    create_cause(stub, cause_id)
    stub.SetPopulationMargins(gw.SetPopulationMarginsRequest(cause_id=cause_id, margins=[
        gw.AttributeMargins(key="region", shares={"north": 0.5, "south": 0.5})]),
        metadata=ADMIN, timeout=10)
    rng = np.random.default_rng(4)
    first = simulated_votes(rng, 300)
    import_votes(stub, cause_id, first)
    eventually(lambda: read(stub, cause_id).votes_counted == len(first) or None,
               "the raw ranking counts the first votes", timeout=60)
    watch = stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id, view=REPRESENTATIVE),
                              metadata=PLATFORM, timeout=60)
    try:
        update = next(watch)
        assert update.view == REPRESENTATIVE and update.view_attribute == "region"
        assert update.weighting == survey_weights.POST_STRATIFICATION
        assert 0 < update.effective_votes < update.votes_counted
        more = [(f"w{k}", *vote[1:]) for k, vote in enumerate(simulated_votes(rng, 300))]
        import_votes(stub, cause_id, more)
        while update.votes_counted < len(first) + len(more):
            update = next(watch)
        assert update.view == REPRESENTATIVE and len(update.entries) == len(PROPOSALS)
    finally:
        watch.cancel()
