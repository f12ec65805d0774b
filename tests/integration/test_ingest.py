"""The ingest service against a real Redis: bulk imports counted exactly, interactive votes
verified and consumed once, nothing acknowledged that Redis does not hold, backpressure."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from conftest import eventually, ingest_settings, internal, serve_in_thread
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ingest.server import SERVICE_NAME, start
from pairwise import keys, prompt_token, vote_log
from pairwise.embedded_redis import EmbeddedRedis
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc, types_pb2

SECRET = ingest_settings("redis://unused").token_keys
OTHER_KEYS = prompt_token.TokenKeys(b"another secret, also 32 bytes long")
LEFT, RIGHT, TIE, SKIP = (types_pb2.CHOICE_LEFT, types_pb2.CHOICE_RIGHT, types_pb2.CHOICE_TIE,
                          types_pb2.CHOICE_SKIP)
LIKE_BOTH = types_pb2.SKIP_REASON_LIKE_BOTH
TIMEOUT_S = 10


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def create_cause(r: redis.Redis, cause_id: str, n_proposals: int = 5, *,
                 register: bool = True) -> list[str]:
    """Write a cause and its proposals p0..p{n-1} the way the gateway does (only the keys
    ingest reads); `register=False` keeps rankers from discovering it."""
    r.hset(keys.cause(cause_id), mapping={"title": f"cause {cause_id}", "auto_accept": 0,
                                          "created_at_ms": now_ms()})
    if register:
        r.sadd(keys.CAUSES, cause_id)
    proposal_ids = [f"p{i}" for i in range(n_proposals)]
    r.hset(keys.proposal_index(cause_id), mapping={p: i for i, p in enumerate(proposal_ids)})
    r.rpush(keys.proposal_ids(cause_id), *proposal_ids)
    return proposal_ids


def log_entries(r: redis.Redis, cause_id: str) -> list[tuple[str, vote_log.VoteEntry]]:
    """Every vote in the cause's log, in order, with the id of the entry holding it."""
    return [(entry_id.decode(), vote)
            for entry_id, fields in r.xrange(keys.votes(cause_id))
            for vote in vote_log.votes_of(fields)]


def vote(vote_id: str, cause_id: str, winner_id: str, loser_id: str, *, voter_id: str = "u1",
         tie: bool = False) -> types_pb2.ImportedVote:
    return types_pb2.ImportedVote(vote_id=vote_id, cause_id=cause_id, voter_id=voter_id,
                                  winner_id=winner_id, loser_id=loser_id, tie=tie)


def token(cause_id: str, voter_id: str = "alice", left: str = "p0", right: str = "p1", *,
          age_ms: int = 1_000, ttl_ms: int = 900_000) -> str:
    """A prompt token as NextPair would issue it, `age_ms` ago."""
    wire, _ = prompt_token.issue(SECRET, cause_id, voter_id, left, right, now_ms() - age_ms,
                                 ttl_ms)
    return wire


def status_of(call) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


@pytest.fixture(scope="module")
def ingest_addr(redis_url: str) -> Iterator[str]:
    with serve_in_thread(start, ingest_settings(redis_url)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture
def stub(ingest_addr: str) -> Iterator[ingest_pb2_grpc.IngestServiceStub]:
    with grpc.insecure_channel(ingest_addr) as channel:
        yield internal(ingest_pb2_grpc.IngestServiceStub(channel))


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


# --- bulk path ---------------------------------------------------------------------------


def test_import_counts_every_vote_exactly_once_and_logs_only_accepted_ones(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    other = f"{cause_id}-b"
    create_cause(r, other, 3)
    c = cause_id
    first = [
        vote("v1", c, "p0", "p1", voter_id="u1"),               # 0 accepted
        vote("v2", c, "p2", "p3", voter_id="u2", tie=True),     # 1 accepted (tie)
        vote("v1", c, "p0", "p1", voter_id="u1"),               # 2 duplicate of 0
        vote("bad id!", c, "p0", "p1"),                         # 3 invalid_vote_id
        vote("v3", c, "", "p1"),                                # 4 missing_winner_id
        vote("v4", c, "p2", "p2"),                              # 5 same_proposal
        vote("v5", c, "p0", "p1", voter_id="not a voter"),      # 6 invalid_voter_id
        vote("v6", "no-such-cause-x1", "p0", "p1"),             # 7 unknown_cause
        vote("v7", c, "p9", "p1"),                              # 8 unknown_proposal (winner)
        vote("v8", c, "p1", "ghost"),                           # 9 unknown_proposal (loser)
        vote("v9", other, "p2", "p0", voter_id="u3"),           # 10 accepted (other cause)
        vote("v10", c, "p3", "p4", voter_id="u2"),              # 11 accepted
        vote("v11", c, "p0", "p1", voter_id=""),                # 12 missing_voter_id
        vote("v12", "bad cause!", "p0", "p1"),                  # 13 invalid_cause_id
    ]
    reply = stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=first, first_index=0),
                             timeout=TIMEOUT_S)
    assert (reply.accepted, reply.duplicates, reply.rejected) == (4, 1, 9)
    assert [(e.index, e.vote_id, e.reason.split(":")[0]) for e in reply.errors] == [
        (3, "bad id!", "invalid_vote_id"),
        (4, "v3", "missing_winner_id"),
        (5, "v4", "same_proposal"),
        (6, "v5", "invalid_voter_id"),
        (7, "v6", "unknown_cause"),
        (8, "v7", "unknown_proposal"),
        (9, "v8", "unknown_proposal"),
        (12, "v11", "missing_voter_id"),
        (13, "v12", "invalid_cause_id"),
    ]
    assert "'p9'" in reply.errors[5].reason and "'ghost'" in reply.errors[6].reason

    # The next batch of the same import: indices continue, earlier votes resent are
    # duplicates, and an earlier vote_id on another vote is refused saying what differs.
    second = [
        vote("v2", c, "p2", "p3", voter_id="u2", tie=True),     # 14 duplicate (across batches)
        vote("v13", c, "p1", "p0", voter_id="u4"),              # 15 accepted
        vote("v13", c, "p1", "p0", voter_id="u4"),              # 16 duplicate (within batch)
        vote("v7", c, "p9", "p1"),                              # 17 unknown_proposal again
        vote("v2", c, "p2", "p3", voter_id="u2"),               # 18 v2 was a tie
        vote("v1", c, "p4", "p0", voter_id="u1"),               # 19 v1 was p0 over p1
        vote("v13", c, "p1", "p0", voter_id="u5"),              # 20 v13 was u4's (this batch)
    ]
    reply = stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=second, first_index=14),
                             timeout=TIMEOUT_S)
    assert (reply.accepted, reply.duplicates, reply.rejected) == (1, 2, 4)
    assert [(e.index, e.vote_id, e.reason.split(":")[0]) for e in reply.errors] == [
        (17, "v7", "unknown_proposal"), (18, "v2", "vote_id_reused"),
        (19, "v1", "vote_id_reused"), (20, "v13", "vote_id_reused")]
    assert "another outcome" in reply.errors[1].reason
    assert "other proposals" in reply.errors[2].reason
    assert "another voter_id" in reply.errors[3].reason

    logged = [(e.vote_id, e.kind, e.a, e.b, e.voter_id, e.trusted)
              for _, e in log_entries(r, c)]
    assert logged == [
        ("v1", "w", 0, 1, "u1", True),
        ("v2", "t", 2, 3, "u2", True),
        ("v10", "w", 3, 4, "u2", True),
        ("v13", "w", 1, 0, "u4", True),
    ]
    assert [(e.vote_id, e.a, e.b) for _, e in log_entries(r, other)] == [("v9", 2, 0)]
    receipts = {k.decode(): v.decode() for k, v in r.hgetall(keys.receipts(c)).items()}
    assert receipts == {e.vote_id: entry_id for entry_id, e in log_entries(r, c)}

    stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=c), timeout=TIMEOUT_S)
    assert (stats.votes_accepted, stats.duplicates, stats.ties, stats.skips,
            stats.voters) == (4, 3, 1, 0, 3)
    assert dict(stats.rejected_by_reason) == {
        "invalid_vote_id": 1, "missing_winner_id": 1, "same_proposal": 1,
        "invalid_voter_id": 1, "unknown_proposal": 3, "missing_voter_id": 1,
        "vote_id_reused": 3}
    other_stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=other))
    assert (other_stats.votes_accepted, other_stats.voters) == (1, 1)


def test_a_cause_with_only_unknown_cause_votes_rejects_them_one_by_one(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    reply = stub.RecordVotes(ingest_pb2.RecordVotesRequest(
        votes=[vote(f"v{i}", cause_id, "p0", "p1") for i in range(3)], first_index=100))
    assert (reply.accepted, reply.duplicates, reply.rejected) == (0, 0, 3)
    assert [(e.index, e.reason.split(":")[0]) for e in reply.errors] == [
        (100, "unknown_cause"), (101, "unknown_cause"), (102, "unknown_cause")]
    assert not r.exists(keys.votes(cause_id), keys.vote_stats(cause_id), keys.receipts(cause_id))


def test_a_batch_over_the_limit_is_refused_naming_votes(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    too_many = [vote(f"v{i}", cause_id, "p0", "p1") for i in range(10_001)]
    error = status_of(lambda: stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=too_many),
                                               timeout=TIMEOUT_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("votes:")
    assert r.xlen(keys.votes(cause_id)) == 0


def test_a_full_batch_of_one_cause_is_recorded(stub: ingest_pb2_grpc.IngestServiceStub,
                                               r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id, 50)
    votes = [vote(f"v{i}", cause_id, f"p{i % 50}", f"p{(i * 7 + 1) % 50}",
                  voter_id=f"u{i % 300}", tie=i % 5 == 0)
             for i in range(10_000) if i % 50 != (i * 7 + 1) % 50]
    reply = stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=votes), timeout=TIMEOUT_S)
    assert (reply.accepted, reply.duplicates, reply.rejected) == (len(votes), 0, 0)
    entries = log_entries(r, cause_id)
    assert [e.vote_id for _, e in entries] == [v.vote_id for v in votes]
    assert [(e.a, e.b, e.kind == "t") for _, e in entries] == [
        (int(v.winner_id[1:]), int(v.loser_id[1:]), v.tie) for v in votes]
    stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=cause_id))
    assert stats.votes_accepted == len(votes)
    assert stats.ties == sum(v.tie for v in votes)
    assert abs(stats.voters - 300) <= 6  # HyperLogLog: within 2% of the distinct voters


# --- interactive path --------------------------------------------------------------------


def record(stub: ingest_pb2_grpc.IngestServiceStub, cause_id: str, wire: str, choice: int,
           *, voter_id: str = "alice", key: str = "k1",
           skip_reason: str = "", code: int = 0) -> ingest_pb2.RecordVoteResponse:
    return stub.RecordVote(ingest_pb2.RecordVoteRequest(
        cause_id=cause_id, voter_id=voter_id, prompt_token=wire, choice=choice,
        skip_reason=skip_reason, idempotency_key=key, skip_reason_code=code),  # type: ignore[arg-type]
        timeout=TIMEOUT_S)


def test_each_choice_becomes_the_right_log_entry(stub: ingest_pb2_grpc.IngestServiceStub,
                                                 r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    # A skip's r field: its reason code, then its free text (none, or the text alone: other).
    cases = [(LEFT, "", 0, ("w", 2, 4, "")), (RIGHT, "", 0, ("w", 4, 2, "")),
             (TIE, "", 0, ("t", 2, 4, "")),
             (SKIP, "je ne sais pas", 0, ("s", 2, 4, "other je ne sais pas")),
             (SKIP, "", 0, ("s", 2, 4, "unspecified")),
             (SKIP, "", LIKE_BOTH, ("s", 2, 4, "like_both")),
             (SKIP, "les deux", LIKE_BOTH, ("s", 2, 4, "like_both les deux"))]
    for n, (choice, reason, code, expected) in enumerate(cases):
        reply = record(stub, cause_id, token(cause_id, left="p2", right="p4"), choice,
                       key=f"key-{n}", skip_reason=reason, code=code)
        assert not reply.duplicate and reply.vote_id.startswith("sv-")
        [(entry_id, entry)] = [(i, e) for i, e in log_entries(r, cause_id)
                               if i == reply.entry_id]
        assert (entry.kind, entry.a, entry.b, entry.skip_reason) == expected
        assert (entry.vote_id, entry.voter_id, entry.trusted) == (reply.vote_id, "alice", True)
    stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=cause_id))
    assert (stats.votes_accepted, stats.ties, stats.skips, stats.voters) == (7, 1, 4, 1)
    # Every skip counted once, by its code; the free text is stored, never a counter.
    assert [(s.reason, s.code, s.count) for s in stats.skip_reasons] == [
        ("SKIP_REASON_LIKE_BOTH", LIKE_BOTH, 2),
        ("SKIP_REASON_OTHER", types_pb2.SKIP_REASON_OTHER, 1),
        ("SKIP_REASON_UNSPECIFIED", types_pb2.SKIP_REASON_UNSPECIFIED, 1)]
    assert not any(b"sais" in name or b"deux" in name
                   for name in r.hkeys(keys.vote_stats(cause_id)))


def test_a_replay_returns_the_original_receipt_and_a_reused_token_is_refused(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    wire = token(cause_id)
    first = record(stub, cause_id, wire, LEFT, key="retry-me")
    again = record(stub, cause_id, wire, LEFT, key="retry-me")
    assert (again.vote_id, again.entry_id, again.duplicate) == (first.vote_id, first.entry_id,
                                                                True)
    assert r.xlen(keys.votes(cause_id)) == 1

    error = status_of(lambda: record(stub, cause_id, wire, RIGHT, key="another-key"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already used" in error.details()
    assert r.xlen(keys.votes(cause_id)) == 1

    # Without an idempotency key the token itself identifies the vote.
    keyless = token(cause_id)
    one = record(stub, cause_id, keyless, TIE, key="")
    two = record(stub, cause_id, keyless, TIE, key="")
    assert (two.vote_id, two.duplicate) == (one.vote_id, True)
    stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=cause_id))
    assert (stats.votes_accepted, stats.duplicates) == (2, 2)
    assert stats.rejected_by_reason["prompt_token_used"] == 1


def test_a_key_reused_with_another_request_is_refused_saying_what_differs(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    wire = token(cause_id, left="p0", right="p1")
    first = record(stub, cause_id, wire, LEFT, key="click-1")
    other_prompt = token(cause_id, left="p2", right="p3")
    refusals = [
        (lambda: record(stub, cause_id, wire, RIGHT, key="click-1"), "another outcome"),
        (lambda: record(stub, cause_id, wire, TIE, key="click-1"), "another outcome"),
        (lambda: record(stub, cause_id, other_prompt, LEFT, key="click-1"), "other proposals"),
    ]
    for call, what in refusals:
        error = status_of(call)
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "idempotency_key 'click-1'" in error.details() and what in error.details()
    # The identical retry still gets the first receipt; nothing else was written.
    again = record(stub, cause_id, wire, LEFT, key="click-1")
    assert (again.vote_id, again.entry_id, again.duplicate) == (
        first.vote_id, first.entry_id, True)
    assert [e.kind for _, e in log_entries(r, cause_id)] == ["w"]

    # Without a key the prompt names the vote: the same prompt answered otherwise is refused.
    keyless = token(cause_id, left="p3", right="p4")
    record(stub, cause_id, keyless, SKIP, key="", skip_reason="no idea")
    for choice, reason, what in ((LEFT, "", "another outcome"),
                                 (SKIP, "both good", "another skip_reason")):
        error = status_of(lambda c=choice, s=reason: record(stub, cause_id, keyless, c, key="",
                                                            skip_reason=s))
        assert error.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "prompt_token" in error.details() and what in error.details()
    assert record(stub, cause_id, keyless, SKIP, key="", skip_reason="no idea").duplicate
    stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=cause_id))
    assert (stats.votes_accepted, stats.duplicates) == (2, 2)
    assert stats.rejected_by_reason["vote_id_reused"] == 5


def test_a_retry_after_the_prompt_expired_still_gets_its_receipt(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    wire, issued = prompt_token.issue(SECRET, cause_id, "alice", "p0", "p1",
                                      now_ms() - 1_000, 1_500)
    first = record(stub, cause_id, wire, RIGHT, key="slow-network")
    eventually(lambda: now_ms() > issued.expires_ms, "the prompt expired")
    again = record(stub, cause_id, wire, RIGHT, key="slow-network")
    assert (again.vote_id, again.duplicate) == (first.vote_id, True)
    # A vote never recorded gets the expiry, and a changed retry is still refused.
    for key, choice, code in (("never-sent", RIGHT, grpc.StatusCode.FAILED_PRECONDITION),
                              ("slow-network", LEFT, grpc.StatusCode.ALREADY_EXISTS)):
        error = status_of(lambda k=key, c=choice: record(stub, cause_id, wire, c, key=k))
        assert error.code() == code
    assert "expired" in status_of(
        lambda: record(stub, cause_id, wire, RIGHT, key="never-sent")).details()
    assert r.xlen(keys.votes(cause_id)) == 1


def test_bad_tokens_get_distinct_statuses_and_write_nothing(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    wire = token(cause_id)
    payload, signature = wire.split(".")
    altered = token(cause_id, left="p3").split(".")[0] + "." + signature
    forged, _ = prompt_token.issue(OTHER_KEYS, cause_id, "alice", "p0", "p1", now_ms(),
                                   60_000)
    cases = [
        (altered, "alice", grpc.StatusCode.INVALID_ARGUMENT),
        (forged, "alice", grpc.StatusCode.INVALID_ARGUMENT),
        ("garbage", "alice", grpc.StatusCode.INVALID_ARGUMENT),
        (wire, "mallory", grpc.StatusCode.PERMISSION_DENIED),
        (token(f"{cause_id}-elsewhere"), "alice", grpc.StatusCode.PERMISSION_DENIED),
        (token(cause_id, age_ms=120_000, ttl_ms=60_000), "alice",
         grpc.StatusCode.FAILED_PRECONDITION),
    ]
    for wire_token, voter_id, code in cases:
        error = status_of(lambda w=wire_token, v=voter_id: record(
            stub, cause_id, w, LEFT, voter_id=v))
        assert error.code() == code, (wire_token, error.details())
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert error.details().startswith("prompt_token")
    assert r.xlen(keys.votes(cause_id)) == 0
    # The genuine token was never consumed by those attempts.
    assert not record(stub, cause_id, wire, LEFT).duplicate


def test_malformed_choice_fields_are_named(stub: ingest_pb2_grpc.IngestServiceStub,
                                           r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    wire = token(cause_id)
    for choice, reason, code, field in [(types_pb2.CHOICE_UNSPECIFIED, "", 0, "choice"),
                                        (LEFT, "too hard", 0, "skip_reason"),
                                        (SKIP, "x" * 65, 0, "skip_reason"),
                                        (LEFT, "", LIKE_BOTH, "skip_reason_code"),
                                        (SKIP, "", 99, "skip_reason_code")]:
        error = status_of(lambda c=choice, s=reason, k=code: record(stub, cause_id, wire, c,
                                                                    skip_reason=s, code=k))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details().startswith(f"{field}:")
    assert r.xlen(keys.votes(cause_id)) == 0


def test_a_vote_faster_than_reading_is_kept_but_flagged(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    reply = record(stub, cause_id, token(cause_id, age_ms=0), LEFT)
    [(entry_id, entry)] = log_entries(r, cause_id)
    assert entry_id == reply.entry_id and not entry.trusted


def test_a_prompt_for_a_vanished_proposal_or_cause_is_not_found(
        stub: ingest_pb2_grpc.IngestServiceStub, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id)
    error = status_of(lambda: record(stub, cause_id, token(cause_id, right="gone"), LEFT))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "'gone'" in error.details()
    missing = f"{cause_id}-missing"
    error = status_of(lambda: record(stub, missing, token(missing), LEFT))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    error = status_of(lambda: stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(
        cause_id=missing)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert r.xlen(keys.votes(cause_id)) == 0


# --- failures, durability, backpressure ----------------------------------------------------


def test_redis_down_is_unavailable_and_acknowledged_votes_survive_its_restart(
        tmp_path: Path, cause_id: str) -> None:
    server = EmbeddedRedis(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        create_cause(client, cause_id, register=False)
        client.close()
        with (serve_in_thread(start, ingest_settings(server.url)) as running,
              grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel):
            stub = internal(ingest_pb2_grpc.IngestServiceStub(channel))
            acked = [vote(f"a{i}", cause_id, "p0", "p1") for i in range(50)]
            reply = stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=acked),
                                     timeout=TIMEOUT_S)
            assert reply.accepted == 50

            server.kill()
            failed = ingest_pb2.RecordVotesRequest(
                votes=[vote(f"b{i}", cause_id, "p1", "p2") for i in range(30)], first_index=50)
            error = status_of(lambda: stub.RecordVotes(failed, timeout=TIMEOUT_S))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            error = status_of(lambda: record(stub, cause_id, token(cause_id), LEFT))
            assert error.code() == grpc.StatusCode.UNAVAILABLE

            server = EmbeddedRedis(tmp_path / "redis", port=server.port).start()
            client = redis.Redis.from_url(server.url)
            assert [e.vote_id for _, e in log_entries(client, cause_id)] == [
                v.vote_id for v in acked]
            client.close()
            # A careful client retries UNAVAILABLE; the retry is recorded exactly once.
            for _ in range(5):
                try:
                    reply = stub.RecordVotes(failed, timeout=TIMEOUT_S)
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
            assert (reply.accepted, reply.duplicates) == (30, 0)
            reply = stub.RecordVotes(failed, timeout=TIMEOUT_S)
            assert (reply.accepted, reply.duplicates) == (0, 30)
            stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=cause_id))
            assert stats.votes_accepted == 80
    finally:
        server.stop()


def test_a_frozen_redis_is_answered_unavailable_before_the_deadline(
        tmp_path: Path, cause_id: str) -> None:
    server = EmbeddedRedis(tmp_path / "redis", unix_socket=True).start()
    assert server.process is not None
    try:
        client = redis.Redis.from_url(server.url)
        create_cause(client, cause_id, register=False)
        client.close()
        with (serve_in_thread(start, ingest_settings(server.url)) as running,
              grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel):
            stub = internal(ingest_pb2_grpc.IngestServiceStub(channel))
            wire = token(cause_id)
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                # Redis would hold the call for its socket timeout (5 s), past the client's
                # 2 s: the answer says the store is away, in time to retry.
                error = status_of(lambda: stub.RecordVote(ingest_pb2.RecordVoteRequest(
                    cause_id=cause_id, voter_id="alice", prompt_token=wire, choice=LEFT,
                    idempotency_key="k1"), timeout=2))
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "deadline" in error.details()
            retried = eventually(lambda: stub_call_or_none(
                lambda: record(stub, cause_id, wire, LEFT)), "the vote retried")
            assert retried.vote_id
        client = redis.Redis.from_url(server.url)
        assert len(log_entries(client, cause_id)) == 1
        client.close()
    finally:
        server.stop()


def aof_off(server: EmbeddedRedis) -> None:
    """Turn the server's append-only file off, as a misconfigured Redis would run."""
    client = redis.Redis.from_url(server.url)
    client.config_set("appendonly", "no")
    client.close()


def test_ingest_will_not_start_on_a_redis_that_cannot_fsync_on_demand(
        tmp_path: Path, cause_id: str, caplog: pytest.LogCaptureFixture) -> None:
    server = EmbeddedRedis(tmp_path / "redis", unix_socket=True).start()
    try:
        aof_off(server)
        with pytest.raises(SystemExit) as refused:
            with serve_in_thread(start, ingest_settings(server.url)):
                pass
        message = str(refused.value)
        assert "appendonly" in message and "INGEST_WAITAOF=false" in message
        assert "host crash" in message
        # The operator's explicit opt-out starts, says in its log what it risks, takes votes.
        client = redis.Redis.from_url(server.url)
        create_cause(client, cause_id, register=False)
        client.close()
        with (serve_in_thread(start, ingest_settings(server.url, wait_aof=False)) as running,
              grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel):
            stub = internal(ingest_pb2_grpc.IngestServiceStub(channel))
            assert not record(stub, cause_id, token(cause_id), LEFT).duplicate
        assert any("INGEST_WAITAOF=false" in r.getMessage() and r.levelname == "WARNING"
                   for r in caplog.records)
    finally:
        server.stop()


def test_no_vote_is_acknowledged_while_redis_cannot_confirm_it_on_disk(
        tmp_path: Path, cause_id: str) -> None:
    server = EmbeddedRedis(tmp_path / "redis", unix_socket=True).start()
    client = redis.Redis.from_url(server.url)
    try:
        create_cause(client, cause_id, register=False)
        with (serve_in_thread(start, ingest_settings(server.url)) as running,
              grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel):
            stub = internal(ingest_pb2_grpc.IngestServiceStub(channel))
            assert not record(stub, cause_id, token(cause_id), LEFT, key="first").duplicate

            aof_off(server)
            batch = ingest_pb2.RecordVotesRequest(
                votes=[vote(f"v{i}", cause_id, "p0", "p1") for i in range(20)])
            wire = token(cause_id, left="p2", right="p3")
            for call in (lambda: stub.RecordVotes(batch, timeout=TIMEOUT_S),
                         lambda: record(stub, cause_id, wire, RIGHT, key="second")):
                error = status_of(call)
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                assert "on disk" in error.details()

            # With the AOF back, the retries are taken, each vote once.
            client.config_set("appendonly", "yes")
            retried = eventually(lambda: stub_call_or_none(
                lambda: stub.RecordVotes(batch, timeout=TIMEOUT_S)), "the batch retried")
            assert retried.accepted + retried.duplicates == 20
            assert record(stub, cause_id, wire, RIGHT, key="second").vote_id
            stats = stub.GetVoteStats(ingest_pb2.GetVoteStatsRequest(cause_id=cause_id))
            assert stats.votes_accepted == 22
        assert len(log_entries(client, cause_id)) == 22
    finally:
        client.close()
        server.stop()


def stub_call_or_none(call):  # type: ignore[no-untyped-def]
    """`call()`'s reply, or None when it answered UNAVAILABLE (for `eventually`)."""
    try:
        return call()
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


def test_a_cause_the_rankers_fall_behind_on_refuses_votes_until_they_catch_up(
        redis_url: str, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id, register=False)
    settings = ingest_settings(redis_url, max_backlog=5, backlog_check_interval_s=0.0)
    with (serve_in_thread(start, settings) as running,
          grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel):
        stub = internal(ingest_pb2_grpc.IngestServiceStub(channel))
        batch = [vote(f"v{i}", cause_id, "p0", "p1") for i in range(8)]
        assert stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=batch)).accepted == 8

        more = ingest_pb2.RecordVotesRequest(votes=[vote("v9", cause_id, "p1", "p2")])
        for call in (lambda: stub.RecordVotes(more, timeout=TIMEOUT_S),
                     lambda: record(stub, cause_id, token(cause_id), LEFT)):
            error = status_of(call)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "buffer full" in error.details()
        assert len(log_entries(r, cause_id)) == 8

        # A ranker checkpoint counts 6 of them: 2 left uncounted, under the limit again.
        r.hset(keys.checkpoint(cause_id), "votes_counted", 6)
        assert stub.RecordVotes(more, timeout=TIMEOUT_S).accepted == 1


def test_between_backlog_readings_the_votes_just_added_still_count(
        redis_url: str, r: redis.Redis, cause_id: str) -> None:
    create_cause(r, cause_id, register=False)
    settings = ingest_settings(redis_url, max_backlog=5, backlog_check_interval_s=3600.0)
    with (serve_in_thread(start, settings) as running,
          grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel):
        stub = internal(ingest_pb2_grpc.IngestServiceStub(channel))
        batch = [vote(f"v{i}", cause_id, "p0", "p1") for i in range(8)]
        assert stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=batch)).accepted == 8
        error = status_of(lambda: record(stub, cause_id, token(cause_id), LEFT))
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "buffer full" in error.details()


def test_health_reports_serving(ingest_addr: str) -> None:
    with grpc.insecure_channel(ingest_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service),
                                 timeout=TIMEOUT_S)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
