"""Gateway alone (no ingest or ranker): auth roles, causes and proposals in Redis, moderation,
and the precise statuses a platform sees for bad requests."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from conftest import ADMIN_TOKEN, PLATFORM_TOKEN, bearer, gateway_settings, serve_in_thread
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.server import start
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

ADMIN = bearer(ADMIN_TOKEN)
PLATFORM = bearer(PLATFORM_TOKEN)
# Nothing listens there: only RPCs that need ingest or the ranker would notice.
NOWHERE = "127.0.0.1:1"
ACCEPTED = types_pb2.PROPOSAL_STATUS_ACCEPTED
PENDING = types_pb2.PROPOSAL_STATUS_PENDING
REJECTED = types_pb2.PROPOSAL_STATUS_REJECTED


@pytest.fixture(scope="module")
def gateway_addr(redis_url: str) -> Iterator[str]:
    with serve_in_thread(start, gateway_settings(redis_url, NOWHERE)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture
def channel(gateway_addr: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(gateway_addr) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> gateway_pb2_grpc.GatewayServiceStub:
    return gateway_pb2_grpc.GatewayServiceStub(channel)


def create_cause(stub, cause_id: str, auto_accept: bool = False) -> types_pb2.Cause:  # type: ignore[no-untyped-def]
    return stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="Une question ?",
                                                  auto_accept_proposals=auto_accept),
                            metadata=ADMIN, timeout=5).cause


def add(stub, cause_id: str, *pairs: tuple[str, str], metadata=ADMIN):  # type: ignore[no-untyped-def]
    request = gw.AddProposalsRequest(cause_id=cause_id, proposals=[
        types_pb2.NewProposal(proposal_id=pid, text=text, author_id="org") for pid, text in pairs])
    return list(stub.AddProposals(request, metadata=metadata, timeout=5).proposals)


def status_of(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


# --- auth ---------------------------------------------------------------------------------

def test_missing_or_wrong_token_is_unauthenticated(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    request = gw.GetCauseRequest(cause_id=cause_id)
    for metadata in [(), bearer("not-the-token"), (("authorization", ADMIN_TOKEN),),
                     (("authorization", "Basic " + ADMIN_TOKEN),)]:
        code, _ = status_of(lambda m=metadata: stub.GetCause(request, metadata=m, timeout=5))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = status_of(lambda: stub.ImportVotes(iter([]), timeout=5))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    code, _ = status_of(lambda: list(stub.WatchRanking(gw.WatchRankingRequest(
        cause_id=cause_id), metadata=bearer("x"), timeout=5)))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_platform_token_cannot_call_admin_rpcs(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    add(stub, cause_id, ("a", "Former les policiers"))
    calls = {
        "CreateCause": lambda: stub.CreateCause(
            gw.CreateCauseRequest(cause_id=cause_id + "x", title="t"), metadata=PLATFORM,
            timeout=5),
        "ModerateProposal": lambda: stub.ModerateProposal(
            gw.ModerateProposalRequest(cause_id=cause_id, proposal_id="a", status=REJECTED),
            metadata=PLATFORM, timeout=5),
        "ImportVotes": lambda: stub.ImportVotes(iter([gw.ImportVotesRequest()]),
                                                metadata=PLATFORM, timeout=5),
    }
    for name, call in calls.items():
        code, details = status_of(call)
        assert code == grpc.StatusCode.PERMISSION_DENIED, name
        assert name in details
    # Nothing changed behind the refusals.
    assert status_of(lambda: stub.GetCause(gw.GetCauseRequest(cause_id=cause_id + "x"),
                                           metadata=ADMIN, timeout=5))[0] == \
        grpc.StatusCode.NOT_FOUND
    listed = stub.ListProposals(gw.ListProposalsRequest(cause_id=cause_id), metadata=PLATFORM,
                                timeout=5)
    assert [p.status for p in listed.proposals] == [ACCEPTED]


def test_health_and_reflection_need_no_token(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="pairwise.v1.GatewayService"),
                         timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    names = {s.name for s in replies[0].list_services_response.service}
    assert "pairwise.v1.GatewayService" in names


# --- causes -------------------------------------------------------------------------------

def test_create_and_get_cause(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    created = create_cause(stub, cause_id, auto_accept=True)
    assert created.cause_id == cause_id and created.auto_accept_proposals
    assert created.created_at_ms > 0
    got = stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=PLATFORM,
                        timeout=5).cause
    assert (got.cause_id, got.title, got.auto_accept_proposals, got.created_at_ms) == \
        (cause_id, "Une question ?", True, created.created_at_ms)
    assert (got.proposals_accepted, got.proposals_pending, got.proposals_rejected) == (0, 0, 0)


def test_cause_id_is_generated_when_empty(stub) -> None:  # type: ignore[no-untyped-def]
    first = stub.CreateCause(gw.CreateCauseRequest(title="Sans identifiant"), metadata=ADMIN,
                             timeout=5).cause
    second = stub.CreateCause(gw.CreateCauseRequest(title="Sans identifiant"), metadata=ADMIN,
                              timeout=5).cause
    assert first.cause_id and second.cause_id and first.cause_id != second.cause_id
    got = stub.GetCause(gw.GetCauseRequest(cause_id=first.cause_id), metadata=ADMIN,
                        timeout=5).cause
    assert got.title == "Sans identifiant"


def test_taken_cause_id_is_already_exists(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    code, details = status_of(lambda: create_cause(stub, cause_id))
    assert code == grpc.StatusCode.ALREADY_EXISTS and cause_id in details


def test_create_cause_names_bad_fields(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (gw.CreateCauseRequest(cause_id="has space", title="t"), "cause_id"),
        (gw.CreateCauseRequest(cause_id="x" * 65, title="t"), "cause_id"),
        (gw.CreateCauseRequest(cause_id=cause_id, title=""), "title"),
        (gw.CreateCauseRequest(cause_id=cause_id, title="   "), "title"),
        (gw.CreateCauseRequest(cause_id=cause_id, title="t" * 501), "title"),
    ]
    for request, field in cases:
        code, details = status_of(lambda r=request: stub.CreateCause(r, metadata=ADMIN,
                                                                     timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert field in details
    # None of them created the cause.
    assert status_of(lambda: stub.GetCause(gw.GetCauseRequest(cause_id=cause_id),
                                           metadata=ADMIN, timeout=5))[0] == \
        grpc.StatusCode.NOT_FOUND


def test_unknown_cause_is_not_found_everywhere(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    calls = {
        "GetCause": lambda: stub.GetCause(gw.GetCauseRequest(cause_id=cause_id),
                                          metadata=PLATFORM, timeout=5),
        "AddProposals": lambda: add(stub, cause_id, ("a", "x")),
        "ModerateProposal": lambda: stub.ModerateProposal(gw.ModerateProposalRequest(
            cause_id=cause_id, proposal_id="a", status=ACCEPTED), metadata=ADMIN, timeout=5),
        "ListProposals": lambda: stub.ListProposals(
            gw.ListProposalsRequest(cause_id=cause_id), metadata=PLATFORM, timeout=5),
        "NextPair": lambda: stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="v1"),
                                          metadata=PLATFORM, timeout=5),
        "SubmitVote": lambda: stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=cause_id, voter_id="v1", prompt_token="t", choice=types_pb2.CHOICE_LEFT),
            metadata=PLATFORM, timeout=5),
        "GetRanking": lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id),
                                              metadata=PLATFORM, timeout=5),
        "WatchRanking": lambda: list(stub.WatchRanking(
            gw.WatchRankingRequest(cause_id=cause_id), metadata=PLATFORM, timeout=5)),
        "GetCauseStats": lambda: stub.GetCauseStats(
            gw.GetCauseStatsRequest(cause_id=cause_id), metadata=PLATFORM, timeout=5),
    }
    for name, call in calls.items():
        code, details = status_of(call)
        assert code == grpc.StatusCode.NOT_FOUND, name
        assert cause_id in details, name


# --- proposals and moderation ---------------------------------------------------------------

def test_admin_proposals_are_accepted_and_indexed_in_order(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    added = add(stub, cause_id, ("a", "Former les policiers"), ("", "Un numéro d'urgence"),
                ("c", "Éduquer à l'égalité dès l'école"))
    assert [p.status for p in added] == [ACCEPTED] * 3
    assert added[0].proposal_id == "a" and added[2].proposal_id == "c"
    assert added[1].proposal_id not in ("", "a", "c")
    assert added[1].text == "Un numéro d'urgence" and added[1].cause_id == cause_id
    listed = stub.ListProposals(gw.ListProposalsRequest(cause_id=cause_id), metadata=ADMIN,
                                timeout=5)
    assert [p.proposal_id for p in listed.proposals] == [p.proposal_id for p in added]
    assert listed.proposals[2].text == "Éduquer à l'égalité dès l'école"
    assert listed.total == 3


def test_platform_proposals_wait_for_moderation_unless_auto_accept(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    (citizen,) = add(stub, cause_id, ("citizen", "Des refuges partout"), metadata=PLATFORM)
    assert citizen.status == PENDING
    auto = cause_id + "-auto"
    create_cause(stub, auto, auto_accept=True)
    (citizen_auto,) = add(stub, auto, ("citizen", "Des refuges partout"), metadata=PLATFORM)
    assert citizen_auto.status == ACCEPTED


def test_moderation_moves_proposals_between_statuses(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    add(stub, cause_id, ("a", "A"), ("b", "B"))
    add(stub, cause_id, ("p", "P"), ("q", "Q"), metadata=PLATFORM)

    def moderate(pid: str, status: int, reason: str = "") -> types_pb2.Proposal:
        return stub.ModerateProposal(gw.ModerateProposalRequest(
            cause_id=cause_id, proposal_id=pid, status=status, reason=reason),
            metadata=ADMIN, timeout=5).proposal

    accepted = moderate("p", ACCEPTED)
    assert accepted.status == ACCEPTED and accepted.text == "P"
    rejected = moderate("b", REJECTED, "hors sujet")
    assert rejected.status == REJECTED and rejected.moderation_reason == "hors sujet"

    cause = stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=PLATFORM,
                          timeout=5).cause
    assert (cause.proposals_accepted, cause.proposals_pending, cause.proposals_rejected) == \
        (2, 1, 1)

    def ids(status: int) -> list[str]:
        reply = stub.ListProposals(gw.ListProposalsRequest(cause_id=cause_id, status=status),
                                   metadata=PLATFORM, timeout=5)
        assert reply.total == len(reply.proposals)
        return [p.proposal_id for p in reply.proposals]

    assert ids(ACCEPTED) == ["a", "p"]
    assert ids(PENDING) == ["q"]
    assert ids(REJECTED) == ["b"]
    # A rejected proposal can be reinstated.
    moderate("b", ACCEPTED)
    assert ids(ACCEPTED) == ["a", "b", "p"] and ids(REJECTED) == []


def test_moderation_errors(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    add(stub, cause_id, ("a", "A"))
    for status in (PENDING, types_pb2.PROPOSAL_STATUS_UNSPECIFIED):
        code, details = status_of(lambda s=status: stub.ModerateProposal(
            gw.ModerateProposalRequest(cause_id=cause_id, proposal_id="a", status=s),
            metadata=ADMIN, timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "status" in details
    code, details = status_of(lambda: stub.ModerateProposal(gw.ModerateProposalRequest(
        cause_id=cause_id, proposal_id="nope", status=REJECTED), metadata=ADMIN, timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND and "nope" in details


def test_duplicate_proposal_ids_are_already_exists_and_add_nothing(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    add(stub, cause_id, ("a", "A"))
    code, details = status_of(lambda: add(stub, cause_id, ("b", "B"), ("a", "again")))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "'a'" in details
    code, details = status_of(lambda: add(stub, cause_id, ("c", "C"), ("c", "C twice")))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "'c'" in details
    listed = stub.ListProposals(gw.ListProposalsRequest(cause_id=cause_id), metadata=ADMIN,
                                timeout=5)
    assert [p.proposal_id for p in listed.proposals] == ["a"]
    # The next proposal still gets the next index: pairs of it and "a" work.
    add(stub, cause_id, ("b", "B"))
    pair = stub.NextPair(gw.NextPairRequest(cause_id=cause_id, voter_id="v"),
                         metadata=PLATFORM, timeout=5)
    assert {pair.left.proposal_id, pair.right.proposal_id} == {"a", "b"}


def test_add_proposals_names_bad_fields(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    cases = [
        ([], "proposals"),
        ([("", "x")] * 1001, "proposals"),
        ([("ok", "A"), ("", "")], "proposals[1].text"),
        ([("ok", "  ")], "proposals[0].text"),
        ([("ok", "x" * 2001)], "proposals[0].text"),
        ([("bad id", "A")], "proposals[0].proposal_id"),
    ]
    for pairs, field in cases:
        code, details = status_of(lambda p=pairs: add(stub, cause_id, *p))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith(field), details
    code, details = status_of(lambda: add(stub, "bad/cause", ("a", "A")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "cause_id" in details


def test_list_proposals_pages_and_validates(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    create_cause(stub, cause_id)
    add(stub, cause_id, *[(f"p{i:02d}", f"Proposition {i}") for i in range(25)])

    def page(offset: int, limit: int) -> gw.ListProposalsResponse:
        return stub.ListProposals(gw.ListProposalsRequest(
            cause_id=cause_id, offset=offset, limit=limit), metadata=PLATFORM, timeout=5)

    assert [p.proposal_id for p in page(10, 5).proposals] == [f"p{i}" for i in range(10, 15)]
    assert len(page(0, 0).proposals) == 25 and page(0, 0).total == 25
    assert page(30, 10).proposals == [] and page(30, 10).total == 25
    for offset, limit, field in [(-1, 10, "offset"), (0, -1, "limit"), (0, 1001, "limit")]:
        code, details = status_of(lambda o=offset, m=limit: page(o, m))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and field in details


def test_catalog_survives_a_gateway_restart(redis_url: str, cause_id: str) -> None:
    settings = gateway_settings(redis_url, NOWHERE)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        create_cause(stub, cause_id, auto_accept=True)
        add(stub, cause_id, ("a", "A"), ("b", "B"), ("c", "C"))
        stub.ModerateProposal(gw.ModerateProposalRequest(
            cause_id=cause_id, proposal_id="c", status=REJECTED, reason="doublon"),
            metadata=ADMIN, timeout=5)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        cause = stub.GetCause(gw.GetCauseRequest(cause_id=cause_id), metadata=ADMIN,
                              timeout=5).cause
        assert cause.auto_accept_proposals
        assert (cause.proposals_accepted, cause.proposals_rejected) == (2, 1)
        listed = stub.ListProposals(gw.ListProposalsRequest(cause_id=cause_id),
                                    metadata=ADMIN, timeout=5).proposals
        assert [(p.proposal_id, p.status, p.moderation_reason) for p in listed] == \
            [("a", ACCEPTED, ""), ("b", ACCEPTED, ""), ("c", REJECTED, "doublon")]
        # Indices continue after the restart and the cause still takes new proposals.
        (d,) = add(stub, cause_id, ("d", "D"), metadata=PLATFORM)
        assert d.status == ACCEPTED
        code, _ = status_of(lambda: add(stub, cause_id, ("a", "A again")))
        assert code == grpc.StatusCode.ALREADY_EXISTS


def test_redis_down_is_unavailable(cause_id: str) -> None:
    settings = gateway_settings("redis://127.0.0.1:1/0", NOWHERE)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        calls = {
            "CreateCause": lambda: create_cause(stub, cause_id),
            "GetCause": lambda: stub.GetCause(gw.GetCauseRequest(cause_id=cause_id),
                                              metadata=PLATFORM, timeout=5),
            # Refused by the rate limiter, before the servicer runs.
            "NextPair": lambda: stub.NextPair(gw.NextPairRequest(cause_id=cause_id,
                                                                 voter_id="v"),
                                              metadata=PLATFORM, timeout=5),
        }
        for name, call in calls.items():
            code, _ = status_of(call)
            assert code == grpc.StatusCode.UNAVAILABLE, name


def test_a_cause_holds_at_most_its_limit_of_proposals_and_a_refused_add_adds_none(
        redis_url: str, cause_id: str) -> None:
    """Past the limit (kept below the index the ranker takes for malformed, so no vote on an
    accepted proposal is ever dropped) AddProposals is RESOURCE_EXHAUSTED, all or nothing."""
    settings = gateway_settings(redis_url, NOWHERE, max_proposals=5)
    with serve_in_thread(start, settings) as running, \
            grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        create_cause(stub, cause_id)
        add(stub, cause_id, ("a", "A"), ("b", "B"), ("c", "C"))
        code, details = status_of(lambda: add(stub, cause_id, ("d", "D"), ("e", "E"),
                                               ("f", "F")))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details == (f"cause {cause_id!r} holds 3 proposals; 3 more would pass its "
                           "limit of 5; nothing was added")
        listed = stub.ListProposals(gw.ListProposalsRequest(cause_id=cause_id),
                                    metadata=ADMIN, timeout=5)
        assert [p.proposal_id for p in listed.proposals] == ["a", "b", "c"]
        add(stub, cause_id, ("d", "D"), ("e", "E"))
        code, _ = status_of(lambda: add(stub, cause_id, ("f", "F")))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_list_causes_pages_through_every_cause_for_the_admin_only(stub, cause_id: str) -> None:  # type: ignore[no-untyped-def]
    made = {f"{cause_id}-{n}" for n in range(5)}
    for one in made:
        create_cause(stub, one)
    add(stub, f"{cause_id}-0", ("p1", "Plus de pistes cyclables"))
    seen: dict[str, types_pb2.Cause] = {}
    after = ""
    while True:
        reply = stub.ListCauses(gw.ListCausesRequest(after=after, limit=2), metadata=ADMIN,
                                timeout=5)
        seen.update((c.cause_id, c) for c in reply.causes)
        if not reply.next_after:
            break
        after = reply.next_after
    assert made <= set(seen)
    first = seen[f"{cause_id}-0"]
    assert (first.title, first.proposals_accepted) == ("Une question ?", 1)

    assert status_of(lambda: stub.ListCauses(gw.ListCausesRequest(), metadata=PLATFORM,
                                             timeout=5))[0] == grpc.StatusCode.PERMISSION_DENIED
    for bad in ("x", "-1", "1" * 21, str(2**64)):
        code, details = status_of(lambda bad=bad: stub.ListCauses(
            gw.ListCausesRequest(after=bad), metadata=ADMIN, timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "after" in details, (bad, details)
