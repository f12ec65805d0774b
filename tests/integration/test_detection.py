"""The detector through a real gateway, ingest, ranker and Redis: a voter pushing one proposal
is flagged and listed with the score and why, and with automatic exclusion on for that
reason the ranking leaves all their votes out, the audit trail naming the detector; an
attacker spread over many accounts, none improbable alone, is flagged as a group and left
out the same way."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import redis
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    bearer,
    eventually,
    gateway_settings,
    ingest_settings,
    own_database,
    ranker_settings,
    serve_in_thread,
)

from gateway.server import start as start_gateway
from ingest.server import start as start_ingest
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2
from ranker.coordinated_voting import CoordinationSettings
from ranker.server import start as start_ranker
from ranker.voter_anomaly import DetectionSettings

ADMIN, PLATFORM = bearer(ADMIN_TOKEN), bearer(PLATFORM_TOKEN)
N_PROPOSALS = 30
PROPOSALS = [f"p{k:02d}" for k in range(N_PROPOSALS)]
# Abilities the honest voters act on, strongest first; the weakest is the one pushed.
TRUTH = np.linspace(2.5, -2.5, N_PROPOSALS)
PUSHED = PROPOSALS[-1]


@pytest.fixture(scope="module")
def stub(redis_url: str) -> Iterator[Any]:
    """A cluster of its own whose votes are all trusted (no minimum viewing time) and whose
    voters may call as fast as a test does."""
    url = own_database(redis_url, "detection")
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    with contextlib.ExitStack() as stack:
        ingest = stack.enter_context(serve_in_thread(
            start_ingest, ingest_settings(url, min_view_ms=0)))
        # The test across accounts looks every 50 interactive votes (a cause of the
        # benchmark's size looks every 2,000), and tests a thousand times fewer groups on 30
        # proposals than on the benchmark's 1,000: 1e-6 is about as strict as its 1e-9.
        detection = DetectionSettings(coordination=CoordinationSettings(
            check_every=50, alpha=1e-6))
        stack.enter_context(serve_in_thread(start_ranker, ranker_settings(
            url, detection=detection)))
        gateway = stack.enter_context(serve_in_thread(start_gateway, gateway_settings(
            url, f"127.0.0.1:{ingest.port}", voter_rate_per_s=1000.0, voter_burst=1000)))
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{gateway.port}"))
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def open_cause(stub: Any, cause_id: str, seed: int) -> int:
    """A cause with uniform pairs and 3,000 honest imported votes, counted and fitted;
    the votes counted."""
    stub.CreateCause(gw.CreateCauseRequest(
        cause_id=cause_id, title="t", auto_accept_proposals=True,
        pair_selection=types_pb2.PAIR_SELECTION_UNIFORM), metadata=ADMIN, timeout=10)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=pid) for pid in PROPOSALS]),
        metadata=ADMIN, timeout=10)
    rng = np.random.default_rng(seed)
    votes = []
    for k in range(3_000):
        a, b = rng.choice(N_PROPOSALS, 2, replace=False)
        if rng.random() >= 1 / (1 + np.exp(TRUTH[b] - TRUTH[a])):
            a, b = b, a
        votes.append(types_pb2.ImportedVote(
            vote_id=f"h{k}", cause_id=cause_id, voter_id=f"honest-{k % 100}",
            winner_id=PROPOSALS[a], loser_id=PROPOSALS[b]))
    reply = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=votes)]), metadata=ADMIN,
                             timeout=30)
    assert reply.accepted == 3_000
    ranking(stub, cause_id, until=lambda r: r.votes_counted == 3_000)
    return 3_000


def ranking(stub: Any, cause_id: str, *, until: Any, what: str = "the ranking") -> Any:
    return eventually(lambda: stub.GetRanking(gw.GetRankingRequest(
        cause_id=cause_id, limit=N_PROPOSALS), metadata=PLATFORM, timeout=10), what,
        until=until, timeout=30)


def push(stub: Any, cause_id: str, voter: str, n: int) -> int:
    """`voter` asks for pairs and votes only on those showing PUSHED, for it, `n` times (a
    pusher leaves the other prompts unanswered); the pushed proposal's votes."""
    voted = 0
    for _ in range(40 * n):
        pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                             metadata=PLATFORM, timeout=10)
        sides = (pair.left.proposal_id, pair.right.proposal_id)
        if PUSHED not in sides:
            continue
        stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token,
            choice=types_pb2.CHOICE_LEFT if sides[0] == PUSHED else types_pb2.CHOICE_RIGHT,
            idempotency_key=f"{voter}-{voted}"), metadata=PLATFORM, timeout=10)
        voted += 1
        if voted == n:
            return voted
    return voted


def flagged(stub: Any, cause_id: str) -> Any:
    return stub.ListFlaggedVoters(gw.ListFlaggedVotersRequest(cause_id=cause_id),
                                  metadata=ADMIN, timeout=10)


def test_a_pushing_voter_is_flagged_listed_and_excluded_automatically(stub, cause_id):
    counted = open_cause(stub, cause_id, seed=1)
    pushed_before = next(e for e in ranking(stub, cause_id, until=bool).entries
                         if e.proposal_id == PUSHED)
    reply = stub.SetAutoExclusion(gw.SetAutoExclusionRequest(
        cause_id=cause_id, auto_exclude_reasons=["fit"]), metadata=ADMIN, timeout=10)
    assert list(reply.auto_exclude_reasons) == ["fit"]

    votes = push(stub, cause_id, "pusher", 16)
    assert votes == 16

    listing = eventually(lambda: flagged(stub, cause_id), "the pusher flagged",
                         until=lambda r: any(v.voter_id == "pusher" for v in r.voters),
                         timeout=30)
    pusher = next(v for v in listing.voters if v.voter_id == "pusher")
    assert list(pusher.reasons) == ["fit"]
    assert pusher.score > 4
    assert "decisive votes" in pusher.detail and pusher.auto_excluded
    assert list(listing.auto_exclude_reasons) == ["fit"]
    assert not [v.voter_id for v in listing.voters if v.voter_id.startswith("honest")]

    # Out of the ranking: every pusher vote, including those cast before the flag.
    after = ranking(stub, cause_id, what="the pusher's votes excluded",
                    until=lambda r: r.votes_counted == counted + votes
                    and r.votes_excluded == votes)
    pushed_after = next(e for e in after.entries if e.proposal_id == PUSHED)
    assert (pushed_after.wins, pushed_after.losses) == (pushed_before.wins,
                                                        pushed_before.losses)
    exclusions = stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id),
                                     metadata=ADMIN, timeout=10)
    assert [(e.voter_id, e.excluded_by) for e in exclusions.exclusions] == [
        ("pusher", "detector")]
    audit = stub.ListExclusionAudit(gw.ListExclusionAuditRequest(cause_id=cause_id),
                                    metadata=ADMIN, timeout=10)
    assert [(e.action, list(e.voter_ids), e.by) for e in audit.entries] == [
        ("exclude", ["pusher"], "detector")]
    assert audit.entries[0].reason.startswith("automatic")


def test_without_automatic_exclusion_a_flag_changes_nothing(stub, cause_id):
    counted = open_cause(stub, cause_id, seed=2)
    votes = push(stub, cause_id, "pusher", 16)
    eventually(lambda: flagged(stub, cause_id), "the pusher flagged",
               until=lambda r: [v.voter_id for v in r.voters] == ["pusher"], timeout=30)
    after = ranking(stub, cause_id, until=lambda r: r.votes_counted == counted + votes)
    assert after.votes_excluded == 0
    assert not flagged(stub, cause_id).voters[0].auto_excluded


def test_detection_rpcs_are_admin_only_and_checked(stub, cause_id):
    open_cause(stub, cause_id, seed=3)
    for call, request in ((stub.ListFlaggedVoters, gw.ListFlaggedVotersRequest(
            cause_id=cause_id)), (stub.SetAutoExclusion, gw.SetAutoExclusionRequest(
            cause_id=cause_id))):
        with pytest.raises(grpc.RpcError) as denied:
            call(request, metadata=PLATFORM, timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as bad:
        stub.SetAutoExclusion(gw.SetAutoExclusionRequest(
            cause_id=cause_id, auto_exclude_reasons=["vibes"]), metadata=ADMIN, timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "auto_exclude_reasons" in bad.value.details()
    with pytest.raises(grpc.RpcError) as missing:
        stub.SetAutoExclusion(gw.SetAutoExclusionRequest(cause_id="no-such-cause"),
                              metadata=ADMIN, timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def vote_as(stub: Any, cause_id: str, voter: str, n: int,
            choose: Any) -> int:
    """`voter` answers `n` pairs, `choose(left, right)` returning the proposal picked."""
    for k in range(n):
        pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                             metadata=PLATFORM, timeout=10)
        left, right = pair.left.proposal_id, pair.right.proposal_id
        stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id=voter, prompt_token=pair.prompt_token,
            choice=types_pb2.CHOICE_LEFT if choose(left, right) == left
            else types_pb2.CHOICE_RIGHT, idempotency_key=f"{voter}-{k}"),
            metadata=PLATFORM, timeout=10)
    return n


def test_an_attacker_spread_over_many_accounts_is_flagged_as_a_group_and_left_out(
        stub, cause_id):
    counted = open_cause(stub, cause_id, seed=4)
    stub.SetAutoExclusion(gw.SetAutoExclusionRequest(
        cause_id=cause_id, auto_exclude_reasons=["coordinated"]), metadata=ADMIN, timeout=10)
    rng = np.random.default_rng(4)
    strength = dict(zip(PROPOSALS, TRUTH, strict=True))

    def honest(left: str, right: str) -> str:
        chance = 1 / (1 + np.exp(strength[right] - strength[left]))
        return left if rng.random() < chance else right

    top, near = set(PROPOSALS[:5]), set(PROPOSALS[5:15])

    def attacker(left: str, right: str) -> str:
        # The weakest proposal wins when shown; the top 5 lose to the proposals just
        # below them (rarely a strong upset: each account alone looks like a voter with a
        # taste of their own); every other pair is answered honestly.
        if PUSHED in (left, right):
            return PUSHED
        if left in top and right in near:
            return right
        if right in top and left in near:
            return left
        return honest(left, right)

    votes = sum(vote_as(stub, cause_id, f"honest-live-{k}", 5, honest) for k in range(40))
    attackers = [f"account-{k}" for k in range(20)]
    per_account = 30
    attack_votes = sum(vote_as(stub, cause_id, account, per_account, attacker)
                       for account in attackers)

    def group_of(listing: Any) -> set[str]:
        return {v.voter_id for v in listing.voters if "coordinated" in v.reasons}

    # An account that never voted on the group's proposals cannot be told from an honest
    # one: most, not all, are flagged (how many voted on them depends on the pairs served,
    # which are not seeded: 14 to 20 of the 20 in the runs seen).
    listing = eventually(lambda: flagged(stub, cause_id), "the accounts flagged as a group",
                         until=lambda r: len(group_of(r)) > len(attackers) // 2, timeout=60)
    assert not [v.voter_id for v in listing.voters if v.voter_id.startswith("honest")]
    assert group_of(listing) <= set(attackers)
    some = next(v for v in listing.voters if "coordinated" in v.reasons)
    assert "coordinated: among accounts of 16–31 decisive votes" in some.detail
    assert some.auto_excluded
    # Every vote of every account excluded is out of the ranking, those cast before the
    # flag included (the flags are final: no interactive vote arrives any more).
    after = eventually(
        lambda: (flagged(stub, cause_id), ranking(stub, cause_id, until=bool)),
        "the group's votes left out",
        until=lambda pair: pair[1].votes_counted == counted + votes + attack_votes
        and pair[1].votes_excluded == per_account * len(
            [v for v in pair[0].voters if v.auto_excluded]), timeout=60)
    excluded = {v.voter_id for v in after[0].voters if v.auto_excluded}
    assert group_of(after[0]) <= excluded <= set(attackers)
    exclusions = stub.ListExclusions(gw.ListExclusionsRequest(cause_id=cause_id),
                                     metadata=ADMIN, timeout=10)
    assert {(e.voter_id, e.excluded_by) for e in exclusions.exclusions} == {
        (account, "detector") for account in excluded}
