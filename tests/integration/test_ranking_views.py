"""The representative and consensus views through a real gateway, ingest, ranker and Redis:
GetRanking serves the votes weighted to the population's margins of every attribute that has
some, and the proposals ranked by the region that likes them least; bad requests get clear
statuses.

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
    Vote,
    create_cause,
    import_votes,
    refused,
    simulated_votes,
)

from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import types_pb2
from ranker import cell_counts, fit_pool, survey_weights
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
    assert representative.view_attribute == ""
    assert list(representative.weighted_attributes) == ["region"]
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
         grpc.StatusCode.FAILED_PRECONDITION, "'age' has no population margins"),
        (gw.GetRankingRequest(cause_id=cause_id, view=REPRESENTATIVE, view_attribute="income"),
         grpc.StatusCode.INVALID_ARGUMENT, "unknown attribute"),
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
        assert update.view == REPRESENTATIVE and list(update.weighted_attributes) == ["region"]
        assert update.weighting == survey_weights.POST_STRATIFICATION
        assert 0 < update.effective_votes < update.votes_counted
        more = [(f"w{k}", *vote[1:]) for k, vote in enumerate(simulated_votes(rng, 300))]
        import_votes(stub, cause_id, more)
        while update.votes_counted < len(first) + len(more):
            update = next(watch)
        assert update.view == REPRESENTATIVE and len(update.entries) == len(PROPOSALS)
    finally:
        watch.cancel()


# A population where region and age go together among the voters, not in the population: the
# north's voters are mostly young, the south's mostly old. Region does not change tastes; age
# does (the young prefer the first proposals, the old the last ones).
CELL_SHARES = {("north", "young"): 0.6, ("north", "old"): 0.1, ("south", "young"): 0.1,
               ("south", "old"): 0.2}
AGE_TRUTH = {"young": np.array([1.5, 1.0, 0.5, 0.0, -0.5, -1.0]),
             "old": np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5])}
HALF = {"region": {"north": 0.5, "south": 0.5}, "age": {"young": 0.5, "old": 0.5}}


def skewed_votes(rng: np.random.Generator, n: int) -> list[Vote]:
    """`n` votes from the cells of `CELL_SHARES` (a tenth of them by voters who declare
    nothing), each acting on its age's abilities; 10% ties."""
    cells = list(CELL_SHARES)
    votes: list[Vote] = []
    for k in range(n):
        region, age = cells[rng.choice(len(cells), p=list(CELL_SHARES.values()))]
        attributes = {"region": region, "age": age} if rng.random() < 0.9 else {}
        a, b = rng.choice(len(PROPOSALS), size=2, replace=False).tolist()
        tie = bool(rng.random() < 0.1)
        truth = AGE_TRUTH[age]
        if not tie and rng.random() >= 1 / (1 + np.exp(truth[b] - truth[a])):
            a, b = b, a
        votes.append((f"s{k}", f"{region}-{age}-{rng.integers(20)}", PROPOSALS[a],
                      PROPOSALS[b], tie, attributes))
    return votes


def skewed_cause(stub: Any, cause_id: str, *, seed: int, n: int) -> list[Vote]:
    """A cause with `n` of `skewed_votes` counted and HALF as its population margins."""
    create_cause(stub, cause_id)
    votes = skewed_votes(np.random.default_rng(seed), n)
    import_votes(stub, cause_id, votes)
    eventually(lambda: read(stub, cause_id).votes_counted == len(votes) or None,
               "the raw ranking counts every vote", timeout=60)
    stub.SetPopulationMargins(gw.SetPopulationMarginsRequest(cause_id=cause_id, margins=[
        gw.AttributeMargins(key=key, shares=shares) for key, shares in HALF.items()]),
        metadata=ADMIN, timeout=10)
    return votes


def weighted_shares(values: np.ndarray, weights: np.ndarray, attribute: int,
                    n_values: int) -> np.ndarray:
    """Each value's weighted share of the votes that declare the attribute."""
    column = values[:, attribute]
    known = column != survey_weights.UNKNOWN
    totals = np.bincount(column[known], weights[known], n_values)
    return totals / totals.sum()


def test_the_representative_view_is_weighted_to_every_attribute(views, cause_id):
    stub = views.stub
    votes = skewed_cause(stub, cause_id, seed=7, n=1_500)

    served = read(stub, cause_id, view=REPRESENTATIVE)
    # The response says how it was weighted: raked to both attributes' margins, and how
    # close the weighted votes come to them.
    assert list(served.weighted_attributes) == ["region", "age"]
    assert served.weighting == survey_weights.RAKING
    assert served.margin_gap < 1e-3
    assert served.trimmed_votes == 0
    assert 0 < served.effective_votes < len(votes)

    # The votes weighted one by one, as the ranker's cells weight them: the served fit.
    index = {pid: k for k, pid in enumerate(PROPOSALS)}
    codes = {"north": 0, "south": 1, "young": 0, "old": 1}
    values = np.array([[codes.get(v[5].get(key, ""), survey_weights.UNKNOWN)
                        for key in ("region", "age")] for v in votes])
    winners = np.array([index[v[2]] for v in votes])
    losers = np.array([index[v[3]] for v in votes])
    ties = np.array([v[4] for v in votes])
    half = np.array([0.5, 0.5])
    raked = survey_weights.vote_weights(values, [half, half])
    expected = fit_weighted(len(PROPOSALS), winners, losers, ties, raked.weights,
                            np.arange(len(votes)), groups=raked.calibration_groups())
    got = {entry.proposal_id: entry for entry in served.entries}
    for pid, k in index.items():
        assert got[pid].ability == pytest.approx(expected.abilities[k], abs=1e-4)
        assert got[pid].std_error == pytest.approx(expected.std_errors[k], rel=1e-3)

    # Both attributes' weighted shares are the population's within the stated gap; weighted
    # by region alone, the young (70% of the votes) still weigh about 60%.
    by_region = survey_weights.vote_weights(values[:, :1], [half])
    for attribute in (0, 1):
        shares = weighted_shares(values, raked.weights, attribute, 2)
        assert np.abs(shares - half).max() <= served.margin_gap + 1e-6
    young = weighted_shares(values, by_region.weights, 1, 2)[0]
    assert young > 0.55, young
    # So the young's favourite stands lower in the representative ranking than in a ranking
    # weighted by region alone, and the old's higher.
    alone = fit_weighted(len(PROPOSALS), winners, losers, ties, by_region.weights,
                         np.arange(len(votes)), groups=values[:, :1])
    assert got["p0"].ability < alone.abilities[0] - 0.1
    assert got["p5"].ability > alone.abilities[5] + 0.1
    # Asked for by one attribute, the view is weighted to that one alone.
    by_one = read(stub, cause_id, view=REPRESENTATIVE, view_attribute="region")
    assert by_one.view_attribute == "region" and list(by_one.weighted_attributes) == ["region"]
    for entry in by_one.entries:
        assert entry.ability == pytest.approx(alone.abilities[index[entry.proposal_id]],
                                              abs=1e-4)

    # A restarted ranker loads the cells from its checkpoint and serves the same view.
    views.restart_ranker()
    again = read(views.stub, cause_id, view=REPRESENTATIVE)
    assert list(again.weighted_attributes) == ["region", "age"]
    assert again.votes_counted == len(votes)
    for entry in again.entries:
        assert entry.ability == pytest.approx(got[entry.proposal_id].ability, abs=1e-6)


def test_past_its_cells_bound_the_view_says_it_weights_one_attribute(views, cause_id,
                                                                     monkeypatch):
    # A cause whose voters fill more cells than the ranker keeps (here 2): the view is
    # weighted by the first attribute with margins alone, and says so.
    monkeypatch.setattr(cell_counts, "MAX_CELLS", 2)
    stub = views.stub
    skewed_cause(stub, cause_id, seed=8, n=600)
    served = read(stub, cause_id, view=REPRESENTATIVE)
    assert list(served.weighted_attributes) == ["region"]
    assert served.margin_gap < 1e-9  # region's margin is met; age is not weighted
