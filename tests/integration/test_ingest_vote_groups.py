"""RecordInteractiveVotes against a real Redis: every vote of a group is answered exactly as
RecordVote would answer it alone (receipt, replay, refused token, unknown proposal or cause),
and only accepted votes reach the log."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
import redis
from conftest import ingest_settings, internal, serve_in_thread

from ingest.server import start
from pairwise import keys, prompt_token, vote_log
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc, types_pb2

SECRET = ingest_settings("redis://unused").token_keys
TIMEOUT_S = 10


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_cause(r: redis.Redis, cause_id: str) -> None:
    """A cause with proposals p0..p2, written as the gateway writes the keys ingest reads;
    not registered, so no ranker consumes it."""
    r.hset(keys.cause(cause_id), mapping={"title": "q", "auto_accept": 0,
                                          "created_at_ms": now_ms()})
    r.hset(keys.proposal_index(cause_id), mapping={"p0": 0, "p1": 1, "p2": 2})
    r.rpush(keys.proposal_ids(cause_id), "p0", "p1", "p2")


def token(cause_id: str, voter_id: str, left: str = "p0", right: str = "p1") -> str:
    wire, _ = prompt_token.issue(SECRET, cause_id, voter_id, left, right, now_ms() - 1_000,
                                 900_000)
    return wire


def submission(cause_id: str, voter_id: str, wire: str, key: str = "",
               choice: types_pb2.Choice.ValueType = types_pb2.CHOICE_LEFT,
               ) -> ingest_pb2.RecordVoteRequest:
    return ingest_pb2.RecordVoteRequest(cause_id=cause_id, voter_id=voter_id,
                                        prompt_token=wire, choice=choice, idempotency_key=key)


@pytest.fixture(scope="module")
def stub(redis_url: str) -> Iterator[ingest_pb2_grpc.IngestServiceStub]:
    with serve_in_thread(start, ingest_settings(redis_url)) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield internal(ingest_pb2_grpc.IngestServiceStub(channel))


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_each_vote_of_a_group_gets_what_record_vote_would_answer(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    alice, bob = token(cause_id, "alice"), token(cause_id, "bob", "p2", "p0")
    group = [
        submission(cause_id, "alice", alice),                        # 0 accepted
        submission(cause_id, "alice", alice),                        # 1 replay of 0
        submission(cause_id, "alice", alice, key="other"),           # 2 token already used
        submission(cause_id, "alice", alice[:-4] + "AAAA"),          # 3 forged token
        submission(cause_id, "alice", bob),                          # 4 bob's token
        submission(cause_id, "bob", bob, choice=types_pb2.CHOICE_RIGHT),  # 5 accepted
        submission(cause_id, "carol", token(cause_id, "carol", "p0", "ghost")),  # 6 no proposal
        submission("no-such-cause-g1", "dan", token("no-such-cause-g1", "dan")),  # 7 no cause
        submission(cause_id, "erin", token(cause_id, "erin"), choice=types_pb2.CHOICE_UNSPECIFIED),
    ]
    reply = stub.RecordInteractiveVotes(
        ingest_pb2.RecordInteractiveVotesRequest(votes=group), timeout=TIMEOUT_S)
    codes = [grpc.StatusCode.OK if o.code == 0 else
             next(c for c in grpc.StatusCode if c.value[0] == o.code) for o in reply.outcomes]
    assert codes == [grpc.StatusCode.OK, grpc.StatusCode.OK,
                     grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT,
                     grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OK,
                     grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND,
                     grpc.StatusCode.INVALID_ARGUMENT]
    first, replay, used, forged, stolen, right, ghost, no_cause, no_choice = reply.outcomes
    assert not first.receipt.duplicate and replay.receipt.duplicate
    assert (replay.receipt.vote_id, replay.receipt.entry_id) == (first.receipt.vote_id,
                                                                 first.receipt.entry_id)
    assert "already used" in used.message
    assert forged.message.startswith("prompt_token")
    assert "another voter" in stolen.message
    assert "'ghost'" in ghost.message and "no-such-cause-g1" in no_cause.message
    assert no_choice.message.startswith("choice")
    # Only the two accepted votes are in the log: alice chose p0 over p1, bob p0 over p2.
    logged = [vote for _, fields in r.xrange(keys.votes(cause_id))
              for vote in vote_log.votes_of(fields)]
    assert [(v.vote_id, v.a, v.b) for v in logged] == [
        (first.receipt.vote_id, 0, 1), (right.receipt.vote_id, 0, 2)]
    # The same vote sent alone later is a replay with the original receipt.
    alone = stub.RecordVote(group[0], timeout=TIMEOUT_S)
    assert (alone.vote_id, alone.duplicate, alone.entry_id) == (
        first.receipt.vote_id, True, first.receipt.entry_id)


def test_an_empty_group_is_answered_with_no_outcomes(
        stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    reply = stub.RecordInteractiveVotes(ingest_pb2.RecordInteractiveVotesRequest(),
                                        timeout=TIMEOUT_S)
    assert list(reply.outcomes) == []
