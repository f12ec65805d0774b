"""What the gateway does with ingest and the ranker, against stand-in gRPC peers on loopback
(the real services are covered by the full-flow test): deadlines propagate, UNAVAILABLE is
retried, other statuses pass through, concurrent votes each get their own answer, imports are
chunked and summed, watches are relayed and cancelled with the client."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import redis
from conftest import (
    ADMIN_TOKEN,
    PLATFORM_TOKEN,
    bearer,
    gateway_settings,
    own_database,
    serve_in_thread,
)

from gateway.server import start
from pairwise import keys
from pairwise.grpc_server import RunningServer, start_server
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import (
    gateway_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    ranker_pb2,
    ranker_pb2_grpc,
    types_pb2,
)

ADMIN = bearer(ADMIN_TOKEN)
PLATFORM = bearer(PLATFORM_TOKEN)
INTERNAL_TIMEOUT_S = 7.0
SLACK_S = 0.1


class StandInIngest(ingest_pb2_grpc.IngestServiceServicer):
    """Records what it is sent. Idempotency key "slow..." never answers; "flaky-N" fails N
    times with UNAVAILABLE first; "gone..." is refused with NOT_FOUND. Votes with vote_id
    "dup..." are duplicates, with winner_id "bad" rejected."""

    def __init__(self) -> None:
        self.remaining: list[float | None] = []
        self.slow_cancelled = threading.Event()
        self.attempts: dict[str, int] = {}
        self.batches: list[tuple[int, list[str]]] = []
        self.groups: list[list[str]] = []

    async def RecordVote(self, request, context):  # type: ignore[no-untyped-def]
        key = request.idempotency_key
        self.remaining.append(context.time_remaining())
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if key.startswith("flaky-") and self.attempts[key] <= int(key.split("-")[1]):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stand-in is restarting")
        if key.startswith("slow"):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                self.slow_cancelled.set()
                raise
        if key.startswith("gone"):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no proposal for {key}")
        return ingest_pb2.RecordVoteResponse(vote_id=f"vote-{key}", duplicate=key == "again")

    async def RecordInteractiveVotes(self, request, context):  # type: ignore[no-untyped-def]
        self.groups.append([v.idempotency_key for v in request.votes])
        reply = ingest_pb2.RecordInteractiveVotesResponse()
        for v in request.votes:
            key = v.idempotency_key
            if key.startswith("gone"):
                reply.outcomes.add(code=grpc.StatusCode.NOT_FOUND.value[0],
                                   message=f"no proposal for {key}")
            else:
                reply.outcomes.add(receipt=ingest_pb2.RecordVoteResponse(
                    vote_id=f"vote-{key}", duplicate=key == "again"))
        return reply

    async def RecordVotes(self, request, context):  # type: ignore[no-untyped-def]
        self.batches.append((request.first_index, [v.vote_id for v in request.votes]))
        reply = ingest_pb2.RecordVotesResponse()
        for i, vote in enumerate(request.votes):
            if vote.winner_id == "bad":
                reply.rejected += 1
                reply.errors.add(index=request.first_index + i, vote_id=vote.vote_id,
                                 reason="unknown_proposal: bad")
            elif vote.vote_id.startswith("dup"):
                reply.duplicates += 1
            else:
                reply.accepted += 1
        return reply

    async def GetVoteStats(self, request, context):  # type: ignore[no-untyped-def]
        return ingest_pb2.GetVoteStatsResponse(
            votes_accepted=42, duplicates=3, rejected_by_reason={"bad_token": 2, "expired": 1},
            voters=9, ties=4, skips=5,
            skip_reasons=[types_pb2.SkipReasonCount(reason="je ne sais pas", count=5)])


class StandInRanker(ranker_pb2_grpc.RankerServiceServicer):
    """A fixed ranking of 3 entries counting 40 votes; causes ending in "-cold" are refused
    with RESOURCE_EXHAUSTED, those ending in "-moved" with FAILED_PRECONDITION (what a ranker
    answers for a cause another ranker owns). FollowRanking sends two updates then waits for
    cancellation."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, int, int]] = []
        self.follows: list[tuple[str, int]] = []
        self.follow_cancelled = threading.Event()

    @staticmethod
    def ranking(cause_id: str, votes_counted: int, offset: int = 0,
                limit: int = 3) -> types_pb2.Ranking:
        entries = [types_pb2.RankedProposal(proposal_id=f"p{i}", rank=i + 1, ability=1.0 - i,
                                            score=70.0 - 20 * i, wins=3 - i)
                   for i in range(3)][offset:offset + limit]
        return types_pb2.Ranking(cause_id=cause_id, votes_counted=votes_counted,
                                 total_proposals=3, entries=entries, fitted_at_ms=1234,
                                 prior_strength=0.5, votes_untrusted=6, votes_excluded=2,
                                 exclusions_version=3)

    async def ReadRanking(self, request, context):  # type: ignore[no-untyped-def]
        self.reads.append((request.cause_id, request.offset, request.limit))
        if request.cause_id.endswith("-cold"):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "stand-in ranker is cold")
        if request.cause_id.endswith("-moved"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "served by another ranker")
        return ranker_pb2.ReadRankingResponse(
            ranking=self.ranking(request.cause_id, 40, request.offset, request.limit))

    async def StreamRanking(self, request, context):  # type: ignore[no-untyped-def]
        self.reads.append((request.cause_id, 0, 0))
        if request.cause_id.endswith("-moved"):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "served by another ranker")
        yield ranker_pb2.StreamRankingResponse(
            page=types_pb2.RankingExportPage(ranking=self.ranking(request.cause_id, 40)))

    async def FollowRanking(self, request, context):  # type: ignore[no-untyped-def]
        self.follows.append((request.cause_id, request.limit))
        yield ranker_pb2.FollowRankingResponse(ranking=self.ranking(request.cause_id, 1))
        yield ranker_pb2.FollowRankingResponse(ranking=self.ranking(request.cause_id, 2))
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.follow_cancelled.set()
            raise


async def start_stand_ins(servicers: tuple[StandInIngest, StandInRanker]) -> RunningServer:
    ingest, ranker = servicers
    return await start_server(
        host="127.0.0.1", port=0,
        servicers=[(ingest_pb2_grpc.add_IngestServiceServicer_to_server, ingest),
                   (ranker_pb2_grpc.add_RankerServiceServicer_to_server, ranker)],
        service_names=["pairwise.v1.IngestService", "pairwise.v1.RankerService"])


@pytest.fixture(scope="module")
def peers() -> Iterator[tuple[StandInIngest, StandInRanker, str]]:
    ingest, ranker = StandInIngest(), StandInRanker()
    with serve_in_thread(start_stand_ins, (ingest, ranker)) as running:
        yield ingest, ranker, f"127.0.0.1:{running.port}"


@pytest.fixture(scope="module")
def forwarding_url(redis_url: str, peers) -> str:  # type: ignore[no-untyped-def]
    """A Redis database of this file's own, where the stand-in is the one live ranker."""
    url = own_database(redis_url, "forwarding")
    client = redis.Redis.from_url(url)
    client.flushdb()
    seconds, _ = client.time()
    client.zadd(keys.RANKERS, {"stand-in": (seconds + 3600) * 1000})
    client.hset(keys.RANKER_ADDRESSES, "stand-in", peers[2])
    client.close()
    return url


def gateway_with(redis_url: str, peer_addr: str, **overrides: Any):  # type: ignore[no-untyped-def]
    settings = gateway_settings(redis_url, peer_addr, **overrides)
    return serve_in_thread(start, settings)


@pytest.fixture(scope="module")
def stub(forwarding_url: str, peers) -> Iterator[gateway_pb2_grpc.GatewayServiceStub]:  # type: ignore[no-untyped-def]
    _, _, addr = peers
    with gateway_with(forwarding_url, addr, import_chunk=2,
                      internal_timeout_s=INTERNAL_TIMEOUT_S) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield gateway_pb2_grpc.GatewayServiceStub(channel)


def make_cause(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Q"), metadata=ADMIN,
                     timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=f"p{i}", text="t") for i in range(3)]),
        metadata=ADMIN, timeout=5)
    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id="waiting", text="t")]), metadata=PLATFORM, timeout=5)


def submit(stub, cause_id: str, key: str, timeout: float | None = 5):  # type: ignore[no-untyped-def]
    return stub.SubmitVote(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id="v", prompt_token="token", choice=types_pb2.CHOICE_LEFT,
        idempotency_key=key), metadata=PLATFORM, timeout=timeout)


def test_submit_vote_forwards_with_the_client_deadline(stub, peers, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    ingest, _, _ = peers
    make_cause(stub, cause_id)
    reply = submit(stub, cause_id, "k1", timeout=2.0)
    assert (reply.vote_id, reply.duplicate) == ("vote-k1", False)
    assert submit(stub, cause_id, "again").duplicate
    # Deadlines cross the wire rounded, hence the slack.
    remaining = ingest.remaining[-2]
    assert remaining is not None and 0 < remaining <= 2.0 + SLACK_S
    # Without a client deadline the internal call still gets one (settings.internal_timeout_s).
    submit(stub, cause_id, "k2", timeout=None)
    remaining = ingest.remaining[-1]
    assert remaining is not None and 2.0 + SLACK_S < remaining <= INTERNAL_TIMEOUT_S + SLACK_S


def test_concurrent_votes_each_get_their_own_answer(stub, peers, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    ingest, _, _ = peers
    make_cause(stub, cause_id)
    keys = [f"gone-{i}" if i % 3 == 0 else f"c{i}" for i in range(30)]
    futures = [stub.SubmitVote.future(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id="v", prompt_token="token", choice=types_pb2.CHOICE_LEFT,
        idempotency_key=key), metadata=PLATFORM, timeout=5) for key in keys]
    for key, future in zip(keys, futures, strict=True):
        if key.startswith("gone"):
            error = future.exception(timeout=10)
            assert error is not None and error.code() == grpc.StatusCode.NOT_FOUND
            assert error.details() == f"no proposal for {key}"
        else:
            assert future.result(timeout=10).vote_id == f"vote-{key}"
    forwarded = [k for group in ingest.groups for k in group] + list(ingest.attempts)
    assert set(keys) <= set(forwarded)


def test_oversized_fields_are_refused_alone_before_votes_travel_together(  # type: ignore[no-untyped-def]
        stub, peers, cause_id: str) -> None:
    """Concurrent SubmitVotes reach ingest in one call: two 3 MB prompt tokens in it would
    exceed its 4 MB message limit and fail every vote of the group. The gateway refuses each
    oversized field by name first, and the others' votes go through."""
    ingest, _, _ = peers
    make_cause(stub, cause_id)
    oversized = {"huge-token-1": {"prompt_token": "t" * 3_000_000},
                 "huge-token-2": {"prompt_token": "t" * 3_000_000},
                 "long-reason": {"choice": types_pb2.CHOICE_SKIP, "skip_reason": "r" * 65}}
    calls = []
    for i in range(24):
        key = list(oversized)[i % 3] if i % 4 == 0 else f"ok-{i}"
        fields = {"prompt_token": "token", "choice": types_pb2.CHOICE_LEFT,
                  **oversized.get(key, {})}
        calls.append((key, stub.SubmitVote.future(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id="v", idempotency_key=key, **fields),
            metadata=PLATFORM, timeout=10)))
    calls.append(("k" * 129, stub.SubmitVote.future(gw.SubmitVoteRequest(
        cause_id=cause_id, voter_id="v", prompt_token="token", choice=types_pb2.CHOICE_LEFT,
        idempotency_key="k" * 129), metadata=PLATFORM, timeout=10)))
    named = {"huge-token-1": "prompt_token: must be at most 1024 characters",
             "huge-token-2": "prompt_token: must be at most 1024 characters",
             "long-reason": "skip_reason: must be at most 64 characters",
             "k" * 129: "idempotency_key: must be at most 128 characters"}
    for key, future in calls:
        if key in named:
            error = future.exception(timeout=20)
            assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error.details().startswith(named[key]), error.details()
        else:
            assert future.result(timeout=20).vote_id == f"vote-{key}"
    forwarded = {k for group in ingest.groups for k in group} | set(ingest.attempts)
    assert forwarded.isdisjoint(named)


def test_a_slow_ingest_is_unavailable_before_the_deadline_and_is_cancelled(stub, peers,  # type: ignore[no-untyped-def]
                                                                          cause_id: str) -> None:
    ingest, _, _ = peers
    make_cause(stub, cause_id)
    with pytest.raises(grpc.RpcError) as info:
        # Long enough for the gateway's full margin (DEADLINE_MARGIN_S): with a short
        # deadline the margin is a tenth of it, too little for a loaded machine to answer.
        submit(stub, cause_id, "slow-1", timeout=3.0)
    # Answered in time to say why (retryable), rather than left to expire.
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "deadline" in info.value.details()
    # The internal call carried the same deadline, so the stand-in was cancelled too.
    assert ingest.slow_cancelled.wait(10)


def test_internal_timeout_bounds_calls_without_client_deadline(forwarding_url: str, peers,  # type: ignore[no-untyped-def]
                                                               cause_id: str) -> None:
    _, _, addr = peers
    with gateway_with(forwarding_url, addr, internal_timeout_s=0.5) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        make_cause(stub, cause_id)
        future = stub.SubmitVote.future(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id="v", prompt_token="t", choice=types_pb2.CHOICE_LEFT,
            idempotency_key="slow-2"), metadata=PLATFORM)
        # The client set no deadline; the gateway's internal one ends the call.
        assert future.exception(timeout=10).code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_unavailable_ingest_is_retried(stub, peers, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    ingest, _, _ = peers
    make_cause(stub, cause_id)
    assert submit(stub, cause_id, "flaky-2").vote_id == "vote-flaky-2"
    assert ingest.attempts["flaky-2"] == 3


def test_unreachable_ingest_is_unavailable(redis_url: str, cause_id: str) -> None:
    """Ingest unreachable and no ranker live: every call that needs one is UNAVAILABLE."""
    url = own_database(redis_url, "no_ranker")
    redis.Redis.from_url(url).flushdb()
    with gateway_with(url, "127.0.0.1:1") as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        make_cause(stub, cause_id)
        for call in (lambda: submit(stub, cause_id, "k"),
                     lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id),
                                             metadata=PLATFORM, timeout=5),
                     lambda: stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id),
                                                metadata=PLATFORM, timeout=5)):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_ranker_errors_pass_through(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    cold = cause_id + "-cold"
    make_cause(stub, cold)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRanking(gw.GetRankingRequest(cause_id=cold), metadata=PLATFORM, timeout=5)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details() == "stand-in ranker is cold"


def test_a_cause_that_moved_is_read_again_once_then_unavailable(stub, peers,  # type: ignore[no-untyped-def]
                                                                cause_id: str) -> None:
    """A ranker answering that another one owns the cause makes the gateway read the
    directory and try once more; a cause still moving is UNAVAILABLE (retryable)."""
    _, ranker, _ = peers
    moved = cause_id + "-moved"
    make_cause(stub, moved)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetRanking(gw.GetRankingRequest(cause_id=moved), metadata=PLATFORM, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "moving between rankers" in info.value.details()
    assert [read for read in ranker.reads if read[0] == moved] == [(moved, 0, 100)] * 2
    # An export of the ranking too: its stream is opened again on the owner, once.
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ExportRanking(gw.ExportRankingRequest(cause_id=moved), metadata=ADMIN,
                                timeout=5))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "moving between rankers" in info.value.details()
    assert [read for read in ranker.reads if read[0] == moved][2:] == [(moved, 0, 0)] * 2
    make_cause(stub, cause_id)
    pages = list(stub.ExportRanking(gw.ExportRankingRequest(cause_id=cause_id),
                                    metadata=ADMIN, timeout=5))
    assert [e.proposal_id for p in pages for e in p.page.ranking.entries] == ["p0", "p1", "p2"]


def test_import_votes_chunks_batches_and_sums(stub, peers) -> None:  # type: ignore[no-untyped-def]
    ingest, _, _ = peers

    def vote(vote_id: str, winner: str = "p0") -> types_pb2.ImportedVote:
        return types_pb2.ImportedVote(vote_id=vote_id, cause_id="c", voter_id="v",
                                      winner_id=winner, loser_id="p1")

    batches = [
        gw.ImportVotesRequest(votes=[vote("a"), vote("dup-b"), vote("c", "bad")]),
        gw.ImportVotesRequest(),
        gw.ImportVotesRequest(votes=[vote("d"), vote("e", "bad"), vote("f"), vote("dup-g"),
                                     vote("h")]),
    ]
    before = len(ingest.batches)
    reply = stub.ImportVotes(iter(batches), metadata=ADMIN, timeout=10)
    assert (reply.accepted, reply.duplicates, reply.rejected) == (4, 2, 2)
    assert [(e.index, e.vote_id) for e in reply.errors] == [(2, "c"), (4, "e")]
    # Chunks of at most import_chunk=2, numbered across the whole stream.
    assert ingest.batches[before:] == [(0, ["a", "dup-b"]), (2, ["c"]), (3, ["d", "e"]),
                                       (5, ["f", "dup-g"]), (7, ["h"])]


def test_import_votes_lists_at_most_1000_errors(stub) -> None:  # type: ignore[no-untyped-def]
    bad = [types_pb2.ImportedVote(vote_id=f"x{i}", winner_id="bad", loser_id="p1")
           for i in range(1100)]
    reply = stub.ImportVotes(iter([gw.ImportVotesRequest(votes=bad[:700]),
                                   gw.ImportVotesRequest(votes=bad[700:])]),
                             metadata=ADMIN, timeout=30)
    assert reply.rejected == 1100 and reply.accepted == 0
    assert [e.index for e in reply.errors] == list(range(1000))


def test_empty_import_returns_zeros(stub, peers) -> None:  # type: ignore[no-untyped-def]
    ingest, _, _ = peers
    before = len(ingest.batches)
    reply = stub.ImportVotes(iter([]), metadata=ADMIN, timeout=5)
    assert (reply.accepted, reply.duplicates, reply.rejected, list(reply.errors)) == \
        (0, 0, 0, [])
    assert len(ingest.batches) == before


def test_get_ranking_routes_and_copies_the_ranking(stub, peers, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    _, ranker, _ = peers
    make_cause(stub, cause_id)
    reply = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, offset=1, limit=5),
                            metadata=PLATFORM, timeout=5)
    assert (reply.cause_id, reply.votes_counted, reply.total_proposals, reply.fitted_at_ms,
            reply.prior_strength) == (cause_id, 40, 3, 1234, 0.5)
    assert (reply.votes_untrusted, reply.votes_excluded, reply.exclusions_version) == (6, 2, 3)
    assert [(e.proposal_id, e.rank, e.wins) for e in reply.entries] == [("p1", 2, 2),
                                                                        ("p2", 3, 1)]
    stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id), metadata=PLATFORM, timeout=5)
    assert ranker.reads[-2:] == [(cause_id, 1, 5), (cause_id, 0, 100)]
    for request, field in [(gw.GetRankingRequest(cause_id=cause_id, limit=1001), "limit"),
                           (gw.GetRankingRequest(cause_id=cause_id, offset=-1), "offset")]:
        with pytest.raises(grpc.RpcError) as info:
            stub.GetRanking(request, metadata=PLATFORM, timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in info.value.details()


def test_watch_ranking_relays_updates_until_the_client_cancels(stub, peers,  # type: ignore[no-untyped-def]
                                                                cause_id: str) -> None:
    _, ranker, _ = peers
    make_cause(stub, cause_id)
    ranker.follow_cancelled.clear()
    call = stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id), metadata=PLATFORM)
    first, second = next(call), next(call)
    assert (first.cause_id, first.votes_counted, second.votes_counted) == (cause_id, 1, 2)
    assert [e.proposal_id for e in second.entries] == ["p0", "p1", "p2"]
    assert (second.total_proposals, second.fitted_at_ms, second.prior_strength) == \
        (3, 1234, 0.5)
    assert (second.votes_untrusted, second.votes_excluded, second.exclusions_version) == \
        (6, 2, 3)
    assert ranker.follows[-1] == (cause_id, 20)
    call.cancel()
    assert ranker.follow_cancelled.wait(10)
    with pytest.raises(grpc.RpcError) as info:
        stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id, limit=1001),
                          metadata=PLATFORM, timeout=5).next()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in info.value.details()


def test_watchers_of_a_cause_share_one_ranker_stream_and_are_bounded(  # type: ignore[no-untyped-def]
        forwarding_url: str, peers, cause_id: str) -> None:
    """However many clients watch a cause, the ranker sends its updates once per (cause,
    limit); past the per-cause or per-gateway bound a new watch is RESOURCE_EXHAUSTED, and
    the ranker's stream ends with the last watcher."""
    _, ranker, addr = peers
    with gateway_with(forwarding_url, addr, max_watches=3, max_watches_per_cause=2) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        make_cause(stub, cause_id)
        make_cause(stub, cause_id + "-b")
        ranker.follow_cancelled.clear()
        before = len(ranker.follows)
        watch = gw.WatchRankingRequest(cause_id=cause_id)
        first = stub.WatchRanking(watch, metadata=PLATFORM)
        assert next(first).votes_counted == 1
        second = stub.WatchRanking(watch, metadata=PLATFORM)
        # A late follower starts from the latest ranking, then follows along.
        assert next(second).votes_counted == 2
        assert next(first).votes_counted == 2
        assert ranker.follows[before:] == [(cause_id, 20)]
        third = stub.WatchRanking(watch, metadata=PLATFORM)
        with pytest.raises(grpc.RpcError) as info:
            next(third)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"cause {cause_id!r} already has 2 ranking watches" in info.value.details()
        other = stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id + "-b"),
                                  metadata=PLATFORM)
        assert next(other).cause_id == cause_id + "-b"
        fourth = stub.WatchRanking(gw.WatchRankingRequest(cause_id=cause_id + "-b", limit=5),
                                   metadata=PLATFORM)
        with pytest.raises(grpc.RpcError) as info:
            next(fourth)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "this gateway already serves 3 ranking watches" in info.value.details()
        first.cancel()
        assert not ranker.follow_cancelled.wait(0.5)  # the second watcher still follows
        second.cancel()
        assert ranker.follow_cancelled.wait(10)
        other.cancel()


def test_cause_stats_combine_ingest_ranker_and_catalog(stub, peers, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    _, ranker, _ = peers
    make_cause(stub, cause_id)
    stub.ModerateProposal(gw.ModerateProposalRequest(
        cause_id=cause_id, proposal_id="p2", status=types_pb2.PROPOSAL_STATUS_REJECTED),
        metadata=ADMIN, timeout=5)
    stats = stub.GetCauseStats(gw.GetCauseStatsRequest(cause_id=cause_id), metadata=PLATFORM,
                               timeout=5)
    assert (stats.votes_accepted, stats.votes_counted, stats.lag) == (42, 40, 2)
    assert (stats.duplicates, stats.votes_rejected, stats.voters, stats.ties, stats.skips) == \
        (3, 3, 9, 4, 5)
    assert dict(stats.rejected_by_reason) == {"bad_token": 2, "expired": 1}
    assert [(s.reason, s.count) for s in stats.skip_reasons] == [("je ne sais pas", 5)]
    assert (stats.proposals_accepted, stats.proposals_pending, stats.proposals_rejected) == \
        (2, 1, 1)
    assert (stats.votes_untrusted, stats.votes_excluded, stats.exclusions_version) == (6, 2, 3)
    assert ranker.reads[-1] == (cause_id, 0, 0)
