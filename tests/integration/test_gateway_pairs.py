"""NextPair through the gateway alone: unseen pairs only, accepted proposals only, uniform
choice, signed prompt tokens, and the per-voter rate limit."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
import redis
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    TOKEN_KEYS,
    bearer,
    gateway_settings,
    serve_in_thread,
)
from redis.asyncio import Redis

from gateway.catalog import Cause, NewProposal, Status
from gateway.catalog_store import CatalogStore
from gateway.pair_selection import PairSelector
from gateway.server import start
from pairwise import keys, prompt_token
from pairwise.errors import FailedPrecondition, PermissionDenied
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

ADMIN = bearer(ADMIN_TOKEN)
PLATFORM = bearer(PLATFORM_TOKEN)
NOWHERE = "127.0.0.1:1"


@pytest.fixture(scope="module")
def stub(redis_url: str) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:
    with serve_in_thread(start, gateway_settings(redis_url, NOWHERE)) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def make_cause(stub, cause_id: str, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    """A cause with `n` accepted proposals p0..p{n-1}; returns their ids."""
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Q",
                                           pair_selection=types_pb2.PAIR_SELECTION_UNIFORM),
                     metadata=ADMIN, timeout=5)
    ids = [f"p{i}" for i in range(n)]
    if ids:
        stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
            types_pb2.NewProposal(proposal_id=pid, text=f"Proposition {pid}") for pid in ids]),
            metadata=ADMIN, timeout=5)
    return ids


def next_pair(stub, cause_id: str, voter: str) -> gw.NextPairResponse:  # type: ignore[no-untyped-def]
    return stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id=voter),
                         metadata=PLATFORM, timeout=5)


def pair_of(reply: gw.NextPairResponse) -> frozenset[str]:
    return frozenset((reply.left.proposal_id, reply.right.proposal_id))


def code_of(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def moderate(stub, cause_id: str, pid: str, status: int) -> None:  # type: ignore[no-untyped-def]
    stub.ModerateProposal(gw.ModerateProposalRequest(cause_id=cause_id, proposal_id=pid,
                                                     status=status), metadata=ADMIN, timeout=5)


def test_a_voter_sees_every_pair_once_then_failed_precondition(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    ids = make_cause(stub, cause_id, 6)
    shown = [pair_of(next_pair(stub, cause_id, "alice")) for _ in range(15)]
    assert len(set(shown)) == 15
    assert set(shown) == {frozenset(p) for p in itertools.combinations(ids, 2)}
    code, details = code_of(lambda: next_pair(stub, cause_id, "alice"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "every pair" in details
    # Another voter starts afresh.
    assert pair_of(next_pair(stub, cause_id, "bob")) in set(shown)


def test_fewer_than_two_accepted_is_failed_precondition(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    make_cause(stub, cause_id, 1)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id="pending", text="En attente")]),
        metadata=PLATFORM, timeout=5)
    code, details = code_of(lambda: next_pair(stub, cause_id, "v"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "1 accepted" in details
    moderate(stub, cause_id, "pending", types_pb2.PROPOSAL_STATUS_ACCEPTED)
    assert pair_of(next_pair(stub, cause_id, "v")) == {"p0", "pending"}


def test_only_accepted_proposals_are_paired(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    make_cause(stub, cause_id, 3)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=f"citizen{i}", text="En attente") for i in range(5)]),
        metadata=PLATFORM, timeout=5)
    for voter in range(20):
        reply = next_pair(stub, cause_id, f"v{voter}")
        assert pair_of(reply) <= {"p0", "p1", "p2"}
        assert reply.left.status == reply.right.status == types_pb2.PROPOSAL_STATUS_ACCEPTED
        assert reply.left.text.startswith("Proposition")


def test_rejected_proposals_leave_pairs_and_reinstated_ones_return(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    ids = make_cause(stub, cause_id, 4)
    shown = [pair_of(next_pair(stub, cause_id, "carol")) for _ in range(3)]
    moderate(stub, cause_id, "p3", types_pb2.PROPOSAL_STATUS_REJECTED)
    while True:
        try:
            pair = pair_of(next_pair(stub, cause_id, "carol"))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            break
        assert "p3" not in pair
        shown.append(pair)
    assert {frozenset(p) for p in itertools.combinations(ids[:3], 2)} <= set(shown)
    moderate(stub, cause_id, "p3", types_pb2.PROPOSAL_STATUS_ACCEPTED)
    while True:
        try:
            shown.append(pair_of(next_pair(stub, cause_id, "carol")))
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            break
    assert sorted(map(sorted, shown)) == sorted(map(sorted, itertools.combinations(ids, 2)))


def test_pairs_are_uniform_and_sides_random(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    ids = make_cause(stub, cause_id, 4)
    draws = 600
    replies = [next_pair(stub, cause_id, f"voter-{i}") for i in range(draws)]
    counts = Counter(pair_of(r) for r in replies)
    assert len(counts) == 6
    expected = draws / 6
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 30, counts  # 5 degrees of freedom: p < 2e-5 for a fair draw
    lower_on_left = sum(ids.index(r.left.proposal_id) < ids.index(r.right.proposal_id)
                        for r in replies)
    assert 220 < lower_on_left < 380


def test_prompt_token_is_signed_for_cause_voter_and_pair(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    make_cause(stub, cause_id, 3)
    reply = next_pair(stub, cause_id, "dave@example.org")
    raw = reply.prompt_token
    # Still valid one millisecond before the expiry the response announces.
    token = prompt_token.verify(TOKEN_KEYS, raw, cause_id, "dave@example.org",
                                reply.expires_at_ms - 1)
    assert (token.left_id, token.right_id) == (reply.left.proposal_id, reply.right.proposal_id)
    assert token.expires_ms == reply.expires_at_ms == token.issued_ms + 15 * 60 * 1000
    with pytest.raises(PermissionDenied):
        prompt_token.verify(TOKEN_KEYS, raw, cause_id, "mallory", token.issued_ms)
    with pytest.raises(FailedPrecondition):
        prompt_token.verify(TOKEN_KEYS, raw, cause_id, "dave@example.org", token.expires_ms)


def test_next_pair_names_bad_fields(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    make_cause(stub, cause_id, 2)
    for voter in ("", "has space", "x" * 129):
        code, details = code_of(lambda v=voter: next_pair(stub, cause_id, v))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "voter_id" in details
    code, details = code_of(lambda: next_pair(stub, "", "v"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cause_id" in details


def test_rate_limit_is_per_voter_and_says_when_to_retry(redis_url: str, cause_id: str) -> None:
    settings = gateway_settings(redis_url, NOWHERE, voter_burst=3,
                                voter_rate_per_s=0.01)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        make_cause(stub, cause_id, 5)
        # Refused calls (bad token) do not spend the voter's budget.
        for _ in range(5):
            code, _ = code_of(lambda: stub.NextPair(gw.NextPairRequest(
                cause_id=cause_id, voter_id="eve"), metadata=bearer("wrong"), timeout=5))
            assert code == grpc.StatusCode.UNAUTHENTICATED
        for _ in range(3):
            next_pair(stub, cause_id, "eve")
        with pytest.raises(grpc.RpcError) as info:
            next_pair(stub, cause_id, "eve")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry in" in info.value.details()
        retry_after = dict(info.value.trailing_metadata())["retry-after-ms"]
        assert 0 < int(retry_after) <= 100_000
        # SubmitVote shares the bucket: refused before ingest is even called.
        code, _ = code_of(lambda: stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id="eve", prompt_token="t",
            choice=types_pb2.CHOICE_LEFT), metadata=PLATFORM, timeout=5))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Another voter, or the same voter in another cause, has its own bucket.
        next_pair(stub, cause_id, "frank")
        make_cause(stub, cause_id + "-2", 2)
        next_pair(stub, cause_id + "-2", "eve")


def test_a_cause_and_the_platform_have_their_own_limits_over_all_voters(
        redis_url: str, cause_id: str) -> None:
    """A cause gone viral (or under attack) cannot take the cluster from the others, and
    every cause together stays under the platform's limit, whoever the voters are."""
    settings = gateway_settings(redis_url, NOWHERE, cause_rate_per_s=0.01,
                                cause_burst=4, platform_rate_per_s=0.01, platform_burst=7)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        store = redis.Redis.from_url(redis_url)
        store.delete(keys.platform_rate_limit())
        make_cause(stub, cause_id, 5)
        make_cause(stub, cause_id + "-2", 5)
        for voter in ("v1", "v2", "v3", "v4"):
            next_pair(stub, cause_id, voter)
        with pytest.raises(grpc.RpcError) as info:
            next_pair(stub, cause_id, "v5")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.details().startswith(f"cause {cause_id!r} is over its rate limit")
        assert int(dict(info.value.trailing_metadata())["retry-after-ms"]) > 0
        # The other cause still votes, until the platform's bucket (7, of which 5 were
        # spent: the refused call took the platform's token too) runs out.
        next_pair(stub, cause_id + "-2", "v1")
        next_pair(stub, cause_id + "-2", "v2")
        with pytest.raises(grpc.RpcError) as info:
            next_pair(stub, cause_id + "-2", "v3")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.details().startswith("the platform is over its rate limit")
        store.delete(keys.platform_rate_limit())
        store.close()


def test_exact_selection_near_exhaustion_is_uniform(redis_url: str, cause_id: str) -> None:
    """With sampling off (tries=0) the exact path alone must stay uniform over unseen pairs
    and ignore seen pairs that involve a rejected proposal."""

    async def scenario() -> tuple[Counter[frozenset[str]], list[frozenset[str]]]:
        redis = Redis.from_url(redis_url)
        try:
            catalog = CatalogStore(redis)
            selector = PairSelector(redis, tries=0)
            await catalog.create_cause(Cause(cause_id, "Q", False, 0))
            await catalog.add_proposals(
                cause_id, [NewProposal(f"p{i}", "t", "") for i in range(7)], Status.ACCEPTED, 0)
            await catalog.moderate(cause_id, "p6", Status.REJECTED, "")
            # Every voter has seen all pairs but (0,1), (2,5), (3,4), plus pairs with p6.
            unseen = {"0:1", "2:5", "3:4"}
            seen = [f"{a}:{b}" for a, b in itertools.combinations(range(7), 2)
                    if f"{a}:{b}" not in unseen]
            counts: Counter[frozenset[str]] = Counter()
            for voter in range(300):
                await redis.sadd(keys.seen_pairs(cause_id, f"v{voter}"), *seen)
                left, right = await selector.next_pair(cause_id, f"v{voter}")
                counts[frozenset((left.proposal_id, right.proposal_id))] += 1
            # One voter draws the three remaining pairs, then none is left.
            rest = [frozenset(p.proposal_id for p in await selector.next_pair(cause_id, "v0"))
                    for _ in range(2)]
            with pytest.raises(FailedPrecondition):
                await selector.next_pair(cause_id, "v0")
            return counts, rest
        finally:
            await redis.aclose()

    counts, rest = asyncio.run(scenario())
    assert set(counts) == {frozenset(("p0", "p1")), frozenset(("p2", "p5")),
                           frozenset(("p3", "p4"))}
    chi2 = sum((c - 100) ** 2 / 100 for c in counts.values())
    assert chi2 < 22, counts  # 2 degrees of freedom: p < 2e-5 for a fair draw
    assert len(set(rest)) == 2


def test_a_voters_seen_pairs_are_bounded_in_count_and_time(redis_url: str, cause_id: str) -> None:
    """Past the cap a voter is refused RESOURCE_EXHAUSTED naming the setting, while other
    voters still get pairs; the seen set expires after the voter's last pair."""
    settings = gateway_settings(redis_url, NOWHERE, max_seen_pairs=4,
                                seen_pairs_ttl_s=3600)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        capped = gateway_pb2_grpc.GatewayServiceStub(channel)
        make_cause(capped, cause_id, 10)
        shown = {frozenset((r.left.proposal_id, r.right.proposal_id))
                 for r in (next_pair(capped, cause_id, "busy") for _ in range(4))}
        with pytest.raises(grpc.RpcError) as info:
            next_pair(capped, cause_id, "busy")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "has been shown 4 pairs" in info.value.details()
        assert "GATEWAY_MAX_SEEN_PAIRS" in info.value.details()
        assert next_pair(capped, cause_id, "other").left.proposal_id
    store = redis.Redis.from_url(redis_url)
    seen = keys.seen_pairs(cause_id, "busy")
    assert store.scard(seen) == len(shown) == 4
    assert 3500 < store.ttl(seen) <= 3600
    store.close()
