"""The internal services (IngestService, RankerService) and the health service of every
server against malformed and hostile inputs, on the live session cluster (hypothesis,
derandomized: every run tries the same inputs).

Only the gateway calls the internal services, with the internal secret; a process holding it
gets the gateway's rules here too (tests/integration/test_gateway_inputs.py, whose strategies
and checks this module shares): never UNKNOWN or
INTERNAL, no traceback, path, address or Python repr in an answer, and nothing recorded that
should not be: a vote without a valid prompt token of its own cause and voter, with a
malformed field, or an imported vote the contract calls malformed is never acknowledged, and
a refused write changes nothing a user could see.

The module's last test checks the number of inputs tried and prints it with the statuses
they got.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from conftest import INTERNAL_SECRET, Cluster, internal
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st
from test_gateway_inputs import (
    CHOICES,
    ID,
    MAX_IDEMPOTENCY_KEY,
    MAX_PROMPT_TOKEN,
    MAX_SKIP_REASON,
    VOTER_ID,
    World,
    enums,
    garbage,
    ids,
    import_problem,
    imported_votes,
    leaks,
    mostly,
    numbers,
    one_choice,
    outcome_of,
    pages,
    payloads,
    texts,
    tokens,
    voter_ids,
    world,
)
from test_gateway_inputs import _settings as gateway_settings

from pairwise import internal_auth
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc, ranker_pb2, ranker_pb2_grpc, types_pb2

__all__ = ["world"]  # the gateway module's fixture: this module's causes, proposals, tokens

# Inputs per test; their sum is about what one run tries (the last test checks it).
EXAMPLES = {
    "RecordVote": 200, "RecordInteractiveVotes": 100, "RecordVotes": 120, "GetVoteStats": 100,
    "ReadRanking": 80, "FollowRanking": 100, "StreamRanking": 80, "Health": 100,
    "raw bytes": 200,
}
MIN_INPUTS = 1_500  # a margin below the ~1,900 a run tries: draws shift as strategies change
CALL_TIMEOUT_S = 10.0
BATCH = 8
MAX_INT64 = 2**63 - 1

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
BAD = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
STATUSES: collections.Counter[tuple[str, str]] = collections.Counter()


def _settings(name: str) -> settings:
    """The gateway module's settings, with this module's example budget."""
    return settings(gateway_settings("CreateCause"), max_examples=EXAMPLES[name])


def check(rpc: str, request: Any, code: grpc.StatusCode, details: str, *,
          accepted_ok: bool, texts_of_reply: tuple[str, ...] = ()) -> None:
    """Never UNKNOWN/INTERNAL, nothing leaked, OK only where `accepted_ok`."""
    STATUSES[rpc, code.name] += 1
    shown = str(request).replace("\n", " ")[:600]
    assert code not in BAD, f"{rpc}({shown}) -> {code.name} {details!r}"
    for text in (details, *texts_of_reply):
        assert not leaks(text), f"{rpc}({shown}) -> {code.name}: leaks {leaks(text)}: {text!r}"
    assert code != OK or accepted_ok, f"{rpc}({shown}) accepted; it should not be"


@pytest.fixture(scope="module")
def ingest(cluster: Cluster) -> Iterator[ingest_pb2_grpc.IngestServiceStub]:
    with cluster.channel(cluster.ingest_addr) as channel:
        yield internal(ingest_pb2_grpc.IngestServiceStub(channel))


@pytest.fixture(scope="module")
def ranker(cluster: Cluster) -> Iterator[ranker_pb2_grpc.RankerServiceStub]:
    with cluster.channel(cluster.ranker_addr) as channel:
        yield internal(ranker_pb2_grpc.RankerServiceStub(channel))


# --- Ingest: interactive votes. -------------------------------------------------------------

def interactive_vote(world: World, data: st.DataObject, voter: str
                     ) -> tuple[ingest_pb2.RecordVoteRequest, bool]:
    """A vote as the gateway would forward it (or not quite), and whether ingest may record
    it: a real token issued for its own cause and voter, every field well-formed (the
    gateway's rules, pairwise.submitted_vote), or the replay of a vote recorded before."""
    token = data.draw(tokens(world, voter))
    request = ingest_pb2.RecordVoteRequest(
        cause_id=data.draw(mostly(st.just(world.main), ids(world.sink))),
        voter_id=data.draw(mostly(st.just(voter), voter_ids())),
        prompt_token=token.wire,
        choice=data.draw(mostly(st.sampled_from(sorted(CHOICES)), enums)),
        skip_reason=data.draw(mostly(st.just(""), st.one_of(
            texts, st.integers(60, 70).map("s".__mul__)))),
        idempotency_key=data.draw(mostly(st.one_of(st.just(""), st.text(max_size=20),
                                                   st.just("the-first-vote")),
                                         st.integers(120, 140).map("k".__mul__))))
    well_formed = (
        ID.fullmatch(request.cause_id) and VOTER_ID.fullmatch(request.voter_id)
        and request.choice in CHOICES and len(request.prompt_token) <= MAX_PROMPT_TOKEN
        and len(request.idempotency_key) <= MAX_IDEMPOTENCY_KEY
        and len(request.skip_reason) <= MAX_SKIP_REASON
        and (not request.skip_reason or request.choice == types_pb2.CHOICE_SKIP))
    issued_for_this = (request.cause_id, request.voter_id) == (token.cause_id, token.voter_id)
    replay = (token.kind == "used" and issued_for_this
              and request.idempotency_key == "the-first-vote"
              and (request.choice, request.skip_reason) == (types_pb2.CHOICE_LEFT, ""))
    recordable = bool(well_formed) and issued_for_this and token.kind == "real" or replay
    return request, recordable


@_settings("RecordVote")
@given(data=st.data())
def test_record_vote(world: World, ingest: ingest_pb2_grpc.IngestServiceStub,
                     data: st.DataObject) -> None:
    request, recordable = interactive_vote(world, data, f"v-{uuid.uuid4().hex[:12]}")
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: ingest.RecordVote(request, timeout=CALL_TIMEOUT_S))
    check("RecordVote", request, outcome.code, outcome.details, accepted_ok=recordable)
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused vote was logged"


@_settings("RecordInteractiveVotes")
@given(data=st.data())
def test_record_interactive_votes(world: World, ingest: ingest_pb2_grpc.IngestServiceStub,
                                  data: st.DataObject) -> None:
    drawn = [interactive_vote(world, data, f"v-{uuid.uuid4().hex[:12]}")
             for _ in range(data.draw(st.integers(0, 4)))]
    request = ingest_pb2.RecordInteractiveVotesRequest(votes=[r for r, _ in drawn])
    before = world.fingerprint(world.main, world.sink)
    outcome = outcome_of(lambda: ingest.RecordInteractiveVotes(request, timeout=CALL_TIMEOUT_S))
    check("RecordInteractiveVotes", request, outcome.code, outcome.details, accepted_ok=True)
    if outcome.code != OK:
        assert world.fingerprint(world.main, world.sink) == before, "a refused call wrote"
        return
    outcomes = outcome.reply.outcomes
    assert len(outcomes) == len(drawn)
    for (vote, recordable), result in zip(drawn, outcomes, strict=True):
        code = {c.value[0]: c for c in grpc.StatusCode}[result.code]
        check("RecordInteractiveVotes", vote, code, result.message, accepted_ok=recordable)
    if not any(result.code == 0 for result in outcomes):
        assert world.fingerprint(world.main, world.sink) == before, "refused votes were logged"


# --- Ingest: imports and stats. -------------------------------------------------------------

@_settings("RecordVotes")
@given(data=st.data())
def test_record_votes(world: World, ingest: ingest_pb2_grpc.IngestServiceStub,
                      data: st.DataObject) -> None:
    votes = data.draw(st.lists(imported_votes(world), max_size=8))
    first_index = data.draw(mostly(st.integers(0, 10_000), numbers))
    request = ingest_pb2.RecordVotesRequest(votes=votes, first_index=first_index)
    causes = (world.main, world.sink)
    before = [world.accepted(c) for c in causes]
    outcome = outcome_of(lambda: ingest.RecordVotes(request, timeout=CALL_TIMEOUT_S))
    reasons = tuple(e.reason for e in outcome.reply.errors) if outcome.code == OK else ()
    check("RecordVotes", request, outcome.code, outcome.details,
          accepted_ok=0 <= first_index <= MAX_INT64 - len(votes), texts_of_reply=reasons)
    after = [world.accepted(c) for c in causes]
    if outcome.code != OK:
        assert outcome.code == INVALID and outcome.details.startswith("first_index"), outcome
        assert after == before, "a refused RecordVotes recorded votes"
        return
    report = outcome.reply
    bad = set()
    for i, vote in enumerate(votes):
        fields = (vote.voter_id, vote.winner_id, vote.loser_id, vote.tie)
        if import_problem(world, vote) or world.imported.setdefault(
                (vote.cause_id, vote.vote_id), fields) != fields:
            bad.add(first_index + i)
    assert {e.index for e in report.errors} == bad, report
    assert report.accepted + report.duplicates + report.rejected == len(votes)
    assert sum(a - b for a, b in zip(after, before, strict=True)) == report.accepted


@_settings("GetVoteStats")
@given(data=st.data())
def test_get_vote_stats(world: World, ingest: ingest_pb2_grpc.IngestServiceStub,
                        data: st.DataObject) -> None:
    requests = data.draw(st.lists(st.builds(ingest_pb2.GetVoteStatsRequest,
                                            cause_id=ids(world.main, world.sink)),
                                  min_size=1, max_size=BATCH))
    futures = [ingest.GetVoteStats.future(r, timeout=CALL_TIMEOUT_S) for r in requests]
    for request, future in zip(requests, futures, strict=True):
        outcome = outcome_of(future.result)
        reasons = tuple(outcome.reply.rejected_by_reason) if outcome.code == OK else ()
        check("GetVoteStats", request, outcome.code, outcome.details,
              accepted_ok=bool(ID.fullmatch(request.cause_id)), texts_of_reply=reasons)
        if not ID.fullmatch(request.cause_id):
            assert outcome.code == INVALID, outcome


# --- The ranker. ----------------------------------------------------------------------------

def first_message(call: Any) -> Any:
    try:
        return next(call, None)
    finally:
        call.cancel()


@_settings("ReadRanking")
@given(data=st.data())
def test_read_ranking(world: World, ranker: ranker_pb2_grpc.RankerServiceStub,
                      data: st.DataObject) -> None:
    requests = data.draw(st.lists(st.builds(
        ranker_pb2.ReadRankingRequest, cause_id=ids(world.main),
        offset=mostly(pages, numbers), limit=mostly(pages, numbers)),
        min_size=1, max_size=BATCH))
    futures = [ranker.ReadRanking.future(r, timeout=CALL_TIMEOUT_S) for r in requests]
    for request, future in zip(requests, futures, strict=True):
        outcome = outcome_of(future.result)
        # The ranker serves the gateway, which bounds the page (GetRanking's MAX_LIMIT).
        well_formed = request.cause_id and request.offset >= 0 and request.limit >= 0
        check("ReadRanking", request, outcome.code, outcome.details,
              accepted_ok=bool(well_formed))
        if outcome.code == OK and request.limit:
            assert len(outcome.reply.ranking.entries) <= request.limit


@_settings("FollowRanking")
@given(data=st.data())
def test_follow_ranking(world: World, ranker: ranker_pb2_grpc.RankerServiceStub,
                        data: st.DataObject) -> None:
    request = ranker_pb2.FollowRankingRequest(cause_id=data.draw(ids(world.main)),
                                              limit=data.draw(mostly(pages, numbers)))
    outcome = outcome_of(lambda: first_message(ranker.FollowRanking(
        request, timeout=CALL_TIMEOUT_S)))
    check("FollowRanking", request, outcome.code, outcome.details,
          accepted_ok=bool(request.cause_id) and request.limit >= 0)


@_settings("StreamRanking")
@given(data=st.data())
def test_stream_ranking(world: World, ranker: ranker_pb2_grpc.RankerServiceStub,
                        data: st.DataObject) -> None:
    request = ranker_pb2.StreamRankingRequest(cause_id=data.draw(ids(world.main, world.sink)))
    outcome = outcome_of(lambda: first_message(ranker.StreamRanking(
        request, timeout=CALL_TIMEOUT_S)))
    check("StreamRanking", request, outcome.code, outcome.details,
          accepted_ok=bool(request.cause_id))


# --- Every server: health, and bytes that are no message. -----------------------------------

SERVICE_NAMES = ["", "pairwise.v1.GatewayService", "pairwise.v1.IngestService",
                 "pairwise.v1.RankerService", "grpc.health.v1.Health"]


@_settings("Health")
@given(data=st.data())
def test_health(cluster: Cluster, data: st.DataObject) -> None:
    addr = data.draw(st.sampled_from([cluster.gateway_addr, cluster.ingest_addr,
                                      cluster.ranker_addr]))
    service = data.draw(one_choice(st.sampled_from(SERVICE_NAMES), garbage))
    request = health_pb2.HealthCheckRequest(service=service)
    with cluster.channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        if data.draw(st.booleans()):
            rpc, outcome = "Check", outcome_of(lambda: stub.Check(request,
                                                                  timeout=CALL_TIMEOUT_S))
        else:
            rpc, outcome = "Watch", outcome_of(lambda: first_message(stub.Watch(
                request, timeout=CALL_TIMEOUT_S)))
    check("Health", request, outcome.code, outcome.details, accepted_ok=True)
    assert outcome.code in (OK, grpc.StatusCode.NOT_FOUND), (rpc, service, outcome)


INTERNAL_METHODS = {
    f"/pairwise.v1.{service}/{name}": (message, kind)
    for service, module in (("IngestService", ingest_pb2), ("RankerService", ranker_pb2))
    for name, method in module.DESCRIPTOR.services_by_name[service].methods_by_name.items()
    for message, kind in [(method.input_type._concrete_class,
                           "stream" if method.server_streaming else "unary")]
}
INTERNAL_WRITES = {"RecordVote", "RecordInteractiveVotes", "RecordVotes"}
# What the gateway sends with every internal call (without it: UNAUTHENTICATED,
# tests/integration/test_internal_auth.py).
SECRET = internal_auth.metadata(INTERNAL_SECRET)


@_settings("raw bytes")
@given(data=st.data())
def test_bytes_that_are_no_message(cluster: Cluster, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(INTERNAL_METHODS)))
    payload = data.draw(payloads())
    message, kind = INTERNAL_METHODS[path]
    undecodable = not decodes_as(message, payload)
    if path.rpartition("/")[2] in INTERNAL_WRITES and not undecodable:
        # A write that decodes is tried by its own test above, never written from here.
        return
    addr = cluster.ingest_addr if "Ingest" in path else cluster.ranker_addr
    identity = bytes
    with cluster.channel(addr) as channel:
        if kind == "stream":
            outcome = outcome_of(lambda: first_message(channel.unary_stream(
                path, request_serializer=identity, response_deserializer=identity)(
                payload, timeout=CALL_TIMEOUT_S, metadata=SECRET)))
        else:
            outcome = outcome_of(lambda: channel.unary_unary(
                path, request_serializer=identity, response_deserializer=identity)(
                payload, timeout=CALL_TIMEOUT_S, metadata=SECRET))
    check("raw bytes", payload, outcome.code, outcome.details, accepted_ok=not undecodable)
    if undecodable:
        assert outcome.code == INVALID and outcome.details.startswith("request:"), outcome


def decodes_as(message: Any, payload: bytes) -> bool:
    try:
        message.FromString(payload)
    except DecodeError:
        return False
    return True


def test_inputs_tried_in_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    """The run tried at least MIN_INPUTS inputs, none answered UNKNOWN or INTERNAL; the count
    and the statuses are printed (without -s too)."""
    ran = {rpc for rpc, _ in STATUSES}
    if not set(EXAMPLES) <= ran:
        pytest.skip(f"only part of the module ran: {sorted(set(EXAMPLES) - ran)} did not")
    total = sum(STATUSES.values())
    lines = [f"internal-services property tests: {total} inputs tried"]
    for rpc in EXAMPLES:
        per = {code: n for (name, code), n in STATUSES.items() if name == rpc}
        lines.append(f"  {rpc}: " + ", ".join(f"{c} {n}" for c, n in sorted(per.items())))
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert total >= MIN_INPUTS, "\n".join(lines)
    assert not {code for _, code in STATUSES} & {"UNKNOWN", "INTERNAL"}, "\n".join(lines)
