"""Every public GatewayService RPC against malformed and hostile inputs, on the live session
cluster (hypothesis, derandomized: every run tries the same inputs).

For each call: the status is one the contract documents for it, never UNKNOWN or INTERNAL;
its details leak no traceback, file path, address or Python repr; a request the contract
calls malformed is refused INVALID_ARGUMENT naming the field (`field: problem`), and a
refused write changed nothing a user could see. The expectations come from the contract
(proto comments, README's API section), not from the gateway's code.

The module's last test checks the number of inputs tried and prints it with the statuses
they got.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import math
import re
import string
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import redis
from conftest import ADMIN_TOKEN, PLATFORM_TOKEN, TOKEN_KEYS, Cluster, bearer, eventually
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pairwise import keys, prompt_token
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

pytest.importorskip("ingest.server")
pytest.importorskip("ranker.server")

# Inputs per RPC; their sum is what one run tries (the module's last test checks it).
# Examples per test: one call each for the writes and WatchRanking, a batch of up to BATCH
# calls at once for the reads, raw bytes and authorization (on average ~4.5 calls).
EXAMPLES = {
    "CreateCause": 500, "UpdatePairSelection": 500, "GetCause": 250, "AddProposals": 400,
    "ModerateProposal": 500, "ListProposals": 250, "NextPair": 250, "SubmitVote": 450,
    "ImportVotes": 250, "GetRanking": 250, "WatchRanking": 300, "GetCauseStats": 200,
    "ExcludeVotes": 300, "ListExclusions": 150, "ListExclusionAudit": 150, "Exports": 200,
    "SetVoterAttributes": 250, "SetPopulationMargins": 250, "GetPopulationMargins": 100,
    "ListFlaggedVoters": 150, "SetAutoExclusion": 200,
    "ListCauses": 100, "SetDefaultRankingView": 150,
    "raw bytes": 350, "authorization": 200,
}
MIN_INPUTS = 10_000

CALL_TIMEOUT_S = 10.0


def _settings(rpc: str) -> settings:
    return settings(max_examples=EXAMPLES[rpc], deadline=None, derandomize=True,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example,
                                           # the conftest's check after each test, once
                                           HealthCheck.function_scoped_fixture])


# --- The contract's syntax (proto comments), restated here as the oracle. -----------------

ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # cause_id, proposal_id
VOTE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # ImportedVote.vote_id
VOTER_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")  # voter_id (ids.py; the proto is silent)
MAX_TITLE, MAX_TEXT, MAX_AUTHOR, MAX_REASON = 500, 2000, 128, 500
MAX_PROPOSALS_PER_CALL = 1000
MAX_LIMIT, MAX_TOP_K = 1000, 1000
MAX_SKIP_REASON, MAX_IDEMPOTENCY_KEY, MAX_PROMPT_TOKEN = 64, 128, 1024
PAIR_SELECTIONS = {types_pb2.PAIR_SELECTION_UNIFORM, types_pb2.PAIR_SELECTION_ADAPTIVE}
PROPOSAL_STATUSES = {types_pb2.PROPOSAL_STATUS_PENDING, types_pb2.PROPOSAL_STATUS_ACCEPTED,
                     types_pb2.PROPOSAL_STATUS_REJECTED}
CHOICES = {types_pb2.CHOICE_LEFT, types_pb2.CHOICE_RIGHT, types_pb2.CHOICE_TIE,
           types_pb2.CHOICE_SKIP}

MAX_EXCLUDED_IDS, MAX_EXCLUSION_REASON, MAX_REQUESTED_BY = 1000, 500, 128
ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")  # VoterAttribute key and values
MAX_ATTRIBUTES, MAX_ATTRIBUTE_VALUES = 8, 32
MAX_U64 = 2**64 - 1

ADMIN_RPCS = {"CreateCause", "UpdatePairSelection", "ModerateProposal", "ImportVotes",
              "ExcludeVotes", "ReinstateVotes", "ListExclusions", "ListExclusionAudit",
              "ListFlaggedVoters", "SetAutoExclusion"}
# Exports hand out every vote with its voter: admins only.
ADMIN_RPCS |= {"ExportVotes", "ExportRanking"}
ADMIN_RPCS |= {"SetVoterAttributes", "SetPopulationMargins", "ListCauses"}
# A cause's life is the organiser's.
ADMIN_RPCS |= {"CloseCause", "ReopenCause", "ScheduleCause", "ArchiveCause", "ListCauseAudit"}
# Which ranking view a cause serves by default is the organiser's choice.
ADMIN_RPCS |= {"SetDefaultRankingView"}

OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE

# What no answer may contain, whatever the input.
LEAKS = [
    ("a traceback", re.compile(r"Traceback|File \"")),
    ("a file path", re.compile(r"/work/|/root/|/home/|/tmp/|site-packages|\.py\b")),
    ("an address", re.compile(r"\b\d{1,3}(\.\d{1,3}){3}:\d+|\bipv[46]:|\bunix:")),
    ("a Python repr", re.compile(r"<[\w.]+ object at 0x|<class '|<bound method|<function ")),
    ("an internal module", re.compile(r"redis\.exceptions|google\.protobuf|grpc\._|"
                                      r"\w+Error\b|\w+Exception\b")),
]

STATUSES: collections.Counter[tuple[str, str]] = collections.Counter()


# --- Strategies. ----------------------------------------------------------------------------

def one_choice(*strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`st.one_of` whose branches are drawn about equally often: hypothesis flattens nested
    one_of's into one list of branches, which would make a strategy listing seven kinds of
    garbage next to one well-formed kind draw garbage seven times in eight."""
    return st.one_of(*(strategy.map(lambda value: value) for strategy in strategies))


ID_CHARS = string.ascii_letters + string.digits + "_.-"
SEPARATORS = "|:{}[]\"'\\/ \t\n\r\x00\x7f%*?<>#@$~,;=&+"
valid_ids = st.text(ID_CHARS, min_size=1, max_size=64)
short_ids = st.text(ID_CHARS, min_size=1, max_size=12)
unicode_text = st.text(st.characters(codec="utf-8"), max_size=80)
garbage = st.one_of(
    st.just(""),
    st.text(ID_CHARS, min_size=65, max_size=300),
    unicode_text,
    st.text(st.sampled_from(SEPARATORS), min_size=1, max_size=12),
    st.builds(lambda a, sep, b: a + sep + b, short_ids, st.sampled_from(SEPARATORS), short_ids),
    st.builds(lambda a: f"{{{a}}}", short_ids),  # a Redis hash tag of its own
    st.sampled_from(["..", ".", "-", "*", "?", "causes", "\u00e9t\u00e9", "\u0661\u0662",
                     "a\u200bb", "\ufeffx", "x" * 10_000]),
)
numbers = st.one_of(
    st.integers(-3, 1003),
    st.sampled_from([-1, 0, 1, 999, 1000, 1001, 2**31 - 1, 2**31, -2**31, 2**53,
                     2**63 - 1, -2**63]),
    st.integers(-2**63, 2**63 - 1),
)
enums = st.one_of(st.integers(-2, 6), st.integers(-2**31, 2**31 - 1))
texts = st.one_of(
    st.text(max_size=40), unicode_text, st.just(""), st.sampled_from([" ", "\n\t", "\x00"]),
    st.text(st.sampled_from(SEPARATORS), max_size=30),
    st.integers(0, 2600).map(lambda n: "é" * n),
)


well_formed_texts = st.text(string.ascii_letters + " '?!\u00e9\u00e0", max_size=60).map(
    "P ".__add__)
pages = st.integers(0, 1000)


def mostly(well_formed: st.SearchStrategy[Any], anything: st.SearchStrategy[Any]
           ) -> st.SearchStrategy[Any]:
    """Three draws in four from `well_formed`: requests with one or two malformed fields
    among well-formed ones, and well-formed requests that must be answered as such."""
    return one_choice(well_formed, well_formed, well_formed, anything)


def ids(*known: str) -> st.SearchStrategy[str]:
    """Ids that exist, well-formed ones that (mostly) do not, and malformed ones."""
    return one_choice(st.sampled_from(known), valid_ids, garbage) if known else \
        one_choice(valid_ids, garbage)


def voter_ids() -> st.SearchStrategy[str]:
    return one_choice(st.text(ID_CHARS + ":@", min_size=1, max_size=128),
                      st.builds(lambda: f"v-{uuid.uuid4().hex[:12]}"), garbage)


# --- Calls and the checks common to all. ----------------------------------------------------

@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    reply: Any = None


def outcome_of(call: Callable[[], Any]) -> Outcome:
    try:
        return Outcome(OK, "", call())
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "")  # type: ignore[attr-defined]


def first_update(call: Any) -> Any:
    """The first message of a server stream, then the stream is cancelled."""
    try:
        return next(call, None)
    finally:
        call.cancel()


def leaks(text: str) -> list[str]:
    return [what for what, pattern in LEAKS if pattern.search(text)]


def check(rpc: str, request: Any, outcome: Outcome, *, problems: Sequence[str],
          allowed: set[grpc.StatusCode], role_ok: bool | None = True,
          texts_of_reply: Sequence[str] = ()) -> None:
    """The checks every call gets (see the module docstring).

    `problems`: the fields the contract calls malformed in `request` (any one may be named);
    `allowed`: the statuses a well-formed request may get; `role_ok`: whether the metadata
    proves a role allowed to call `rpc` (None: no role at all).
    """
    STATUSES[rpc, outcome.code.name] += 1
    failure = _failure(outcome, problems, allowed, role_ok, texts_of_reply)
    if failure:
        pytest.fail(f"{rpc}({_shown(request)}) -> {outcome.code.name} {outcome.details!r}: "
                    f"{failure}")


def _failure(outcome: Outcome, problems: Sequence[str], allowed: set[grpc.StatusCode],
             role_ok: bool | None, texts_of_reply: Sequence[str]) -> str | None:
    """What is wrong with `outcome` (see `check`), or None."""
    if outcome.code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        return "never UNKNOWN or INTERNAL"
    for text in (outcome.details, *texts_of_reply):
        found = leaks(text)
        if found:
            return f"the answer holds {', '.join(found)}: {text!r}"
    if role_ok is None:
        return None if outcome.code == UNAUTHENTICATED else "expected UNAUTHENTICATED"
    if not role_ok:
        return None if outcome.code == DENIED else "expected PERMISSION_DENIED"
    if problems and outcome.code != INVALID:
        return f"malformed {sorted(set(problems))}: expected INVALID_ARGUMENT"
    if outcome.code == INVALID:
        if not problems:
            return "refused a well-formed request"
        field = outcome.details.partition(":")[0]
        return None if field in problems else \
            f"names {field!r}, not one of {sorted(set(problems))}"
    if outcome.code not in allowed:
        return f"not one of {sorted(c.name for c in allowed)}"
    return None


def _shown(request: Any) -> str:
    text = str(request).replace("\n", " ") if isinstance(request, Message) else repr(request)
    return text if len(text) < 600 else text[:600] + "..."


# --- The world the inputs are tried against. ------------------------------------------------

@dataclass
class World:
    stub: gateway_pb2_grpc.GatewayServiceStub
    channel: grpc.Channel
    redis: redis.Redis
    main: str  # fitted, proposals MAIN_PROPOSALS accepted: reads, votes, imports
    sink: str  # proposals SINK_PROPOSALS: AddProposals and ModerateProposal land here
    pool: tuple[str, ...]  # the ids CreateCause may create (then ALREADY_EXISTS)
    admin: tuple[tuple[str, str], ...] = bearer(ADMIN_TOKEN)
    platform: tuple[tuple[str, str], ...] = bearer(PLATFORM_TOKEN)
    # (cause_id, vote_id) -> (voter_id, winner_id, loser_id, tie) of every vote imported.
    imported: dict[tuple[str, str], tuple[str, str, str, bool]] = field(default_factory=dict)

    def fingerprint(self, *cause_ids: str) -> tuple[Any, ...]:
        """What a user could see change of these causes (and how many causes there are):
        one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.scard(keys.CAUSES)
        for cause_id in cause_ids:
            if ID.fullmatch(cause_id):
                pipe.hgetall(keys.cause(cause_id))
                pipe.hlen(keys.proposals(cause_id))
                pipe.hmget(keys.proposals(cause_id), *MAIN_PROPOSALS, *SINK_PROPOSALS)
                pipe.get(keys.catalog_version(cause_id))
                pipe.xlen(keys.votes(cause_id))
                pipe.hget(keys.vote_stats(cause_id), "accepted")
                pipe.get(keys.exclusions_version(cause_id))
                pipe.xlen(keys.exclusions_audit(cause_id))
                pipe.get(keys.auto_exclusion(cause_id))
        return tuple(pipe.execute())

    def accepted(self, cause_id: str) -> int:
        return int(self.redis.hget(keys.vote_stats(cause_id), "accepted") or 0)


MAIN_PROPOSALS = ("m0", "m1", "m2", "m3", "m4", "m5")
SINK_PROPOSALS = ("s0", "s1", "s2", "s3")


@pytest.fixture(scope="module")
def world(cluster: Cluster, redis_url: str) -> Iterator[World]:
    run = uuid.uuid4().hex[:8]
    main, sink = f"fz-main-{run}", f"fz-sink-{run}"
    client = redis.Redis.from_url(redis_url)
    with cluster.channel() as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        world = World(stub, channel, client, main, sink,
                      tuple(f"fz-new-{run}-{i}" for i in range(4)))
        for cause_id, proposals in ((main, MAIN_PROPOSALS), (sink, SINK_PROPOSALS)):
            stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="fuzz"),
                             metadata=world.admin, timeout=5)
            stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
                types_pb2.NewProposal(proposal_id=p, text=f"proposal {p}") for p in proposals]),
                metadata=world.admin, timeout=5)
            stub.ImportVotes(iter([gw.ImportVotesRequest(votes=[
                types_pb2.ImportedVote(vote_id=f"seed-{i}", cause_id=cause_id, voter_id="seed",
                                       winner_id=proposals[i % len(proposals)],
                                       loser_id=proposals[(i + 1) % len(proposals)])
                for i in range(12)])]), metadata=world.admin, timeout=5)
        for cause_id in (main, sink):
            eventually(lambda c=cause_id: _ranked(stub, world, c), f"cause {cause_id} fitted",
                       timeout=30)
        yield world
    client.close()


def _ranked(stub: gateway_pb2_grpc.GatewayServiceStub, world: World, cause_id: str) -> bool:
    try:
        stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id), metadata=world.admin,
                        timeout=5)
    except grpc.RpcError as exc:
        if exc.code() != UNAVAILABLE:  # type: ignore[attr-defined]
            raise
        return False
    return True


def summary_lines() -> list[str]:
    """The inputs tried so far and the statuses they got, overall and per test."""
    total = sum(STATUSES.values())
    by_status = collections.Counter[str]()
    for (_, code), n in STATUSES.items():
        by_status[code] += n
    lines = [f"malformed-input property tests: {total} inputs tried; statuses: "
             + ", ".join(f"{code} {n}" for code, n in by_status.most_common())]
    for rpc in EXAMPLES:
        per = {code: n for (name, code), n in STATUSES.items() if name == rpc}
        if per:
            lines.append(f"  {rpc}: " + ", ".join(f"{c} {n}" for c, n in sorted(per.items())))
    return lines


# --- Authorization. -------------------------------------------------------------------------

# (metadata, the role it proves: "admin", "platform" or None)
AUTHORIZATIONS: list[tuple[tuple[tuple[str, str | bytes], ...], str | None]] = [
    ((), None),
    ((("authorization", ""),), None),
    ((("authorization", "Bearer"),), None),
    ((("authorization", "Bearer "),), None),
    ((("authorization", "Basic " + ADMIN_TOKEN),), None),
    ((("authorization", ADMIN_TOKEN),), None),
    ((("authorization", "Bearer " + ADMIN_TOKEN + "x"),), None),
    ((("authorization", "Bearer " + ADMIN_TOKEN[:-1]),), None),
    ((("authorization", "Bearer " + ADMIN_TOKEN.upper()),), None),
    ((("authorization", "Bearer " + PLATFORM_TOKEN + ADMIN_TOKEN),), None),
    ((("authorization", "Bearer " + "x" * 4000),), None),
    ((("x-authorization", "Bearer " + ADMIN_TOKEN),), None),
    ((("authorization-bin", ADMIN_TOKEN.encode()),), None),
    ((("authorization", "Bearer " + ADMIN_TOKEN),), "admin"),
    ((("authorization", "bearer " + ADMIN_TOKEN),), "admin"),
    ((("authorization", "Bearer " + PLATFORM_TOKEN),), "platform"),
    ((("authorization", "BEARER " + PLATFORM_TOKEN),), "platform"),
]


def role_ok(rpc: str, role: str | None) -> bool | None:
    if role is None:
        return None
    return role == "admin" or rpc not in ADMIN_RPCS


def auth_for(rpc: str) -> st.SearchStrategy[tuple[tuple[tuple[str, str], ...], str | None]]:
    """Mostly the right token for `rpc`, sometimes the other one or none that works."""
    right = ((("authorization", f"Bearer {ADMIN_TOKEN}"),), "admin") \
        if rpc in ADMIN_RPCS else ((("authorization", f"Bearer {PLATFORM_TOKEN}"),), "platform")
    return st.one_of(st.just(right), st.just(right), st.just(right), st.just(right),
                     st.sampled_from(AUTHORIZATIONS))


# --- One test per RPC. ----------------------------------------------------------------------

# The reads' examples are batches of up to BATCH calls made at once: more inputs per second,
# and calls that overlap in the gateway.
BATCH = 8


def batches(rpc: str, requests: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Lists of `((metadata, role), request)`."""
    return st.lists(st.tuples(auth_for(rpc), requests), min_size=1, max_size=BATCH)


def at_once(method: Any, calls: Sequence[tuple[tuple[Any, str | None], Any]]
            ) -> list[tuple[tuple[Any, str | None], Outcome]]:
    """Each call made through the stub `method` at the same time: `((request, role),
    outcome)` in order."""
    futures = [method.future(request, metadata=metadata, timeout=CALL_TIMEOUT_S)
               for (metadata, _), request in calls]
    return [((request, role), outcome_of(future.result))
            for ((_, role), request), future in zip(calls, futures, strict=True)]

def syntax_problems(*checks: tuple[str, bool]) -> list[str]:
    return [field for field, bad in checks if bad]


@_settings("CreateCause")
@given(data=st.data())
def test_create_cause(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("CreateCause"))
    request = gw.CreateCauseRequest(
        cause_id=data.draw(mostly(st.sampled_from(world.pool + (world.main,)), garbage)),
        title=data.draw(mostly(well_formed_texts, texts)),
        auto_accept_proposals=data.draw(st.booleans()),
        pair_selection=data.draw(mostly(st.sampled_from([0, 1, 2]), enums)),
        top_k=data.draw(mostly(pages, numbers)))
    problems = syntax_problems(
        ("cause_id", bool(request.cause_id) and not ID.fullmatch(request.cause_id)),
        ("title", not request.title.strip() or len(request.title) > MAX_TITLE),
        ("pair_selection", request.pair_selection not in PAIR_SELECTIONS | {0}),
        ("top_k", request.top_k != 0 and not 1 <= request.top_k <= MAX_TOP_K))
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.CreateCause(request, metadata=metadata,
                                                        timeout=CALL_TIMEOUT_S))
    check("CreateCause", request, outcome, problems=problems, allowed={OK, EXISTS},
          role_ok=role_ok("CreateCause", role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused CreateCause wrote"
    else:
        cause = outcome.reply.cause
        assert cause.title == request.title
        assert cause.pair_selection in PAIR_SELECTIONS
        assert cause.top_k == (request.top_k or 10)


@_settings("UpdatePairSelection")
@given(data=st.data())
def test_update_pair_selection(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("UpdatePairSelection"))
    request = gw.UpdatePairSelectionRequest(
        cause_id=data.draw(ids(world.sink)),
        pair_selection=data.draw(mostly(st.sampled_from([0, 1, 2]), enums)),
        top_k=data.draw(mostly(pages, numbers)))
    problems = syntax_problems(
        ("cause_id", not ID.fullmatch(request.cause_id)),
        ("pair_selection", request.pair_selection not in PAIR_SELECTIONS | {0}),
        ("top_k", request.top_k != 0 and not 1 <= request.top_k <= MAX_TOP_K))
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.UpdatePairSelection(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S))
    check("UpdatePairSelection", request, outcome, problems=problems,
          allowed={OK, NOT_FOUND}, role_ok=role_ok("UpdatePairSelection", role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused update wrote"
    elif request.top_k:
        assert outcome.reply.cause.top_k == request.top_k


@_settings("SetDefaultRankingView")
@given(data=st.data())
def test_set_default_ranking_view(world: World, data: st.DataObject) -> None:
    # Only the sink (or causes that do not exist): main's rankings are read with no view.
    metadata, role = data.draw(auth_for("SetDefaultRankingView"))
    request = gw.SetDefaultRankingViewRequest(
        cause_id=data.draw(mostly(st.just(world.sink), ids(world.sink))),
        view=data.draw(mostly(st.sampled_from([0, 1, 2, 3]), enums)),
        view_attribute=data.draw(mostly(st.sampled_from(["", "region"]), texts)),
        reason=data.draw(mostly(well_formed_texts, st.one_of(
            texts, st.integers(495, 505).map("r".__mul__)))),
        requested_by=data.draw(mostly(st.just(""), texts)))
    declared: list[str] | None = None  # the cause's attributes; None when it does not exist
    if ID.fullmatch(request.cause_id):
        found = outcome_of(lambda: world.stub.GetCause(gw.GetCauseRequest(
            cause_id=request.cause_id), metadata=world.admin, timeout=CALL_TIMEOUT_S))
        if found.code == OK:
            declared = [a.key for a in found.reply.cause.voter_attributes]
    view, attribute = request.view, request.view_attribute
    problems = syntax_problems(
        ("cause_id", not ID.fullmatch(request.cause_id)),
        ("view", view not in (0, 1, 2, 3)),
        ("view_attribute", view in (0, 1) and attribute != ""),
        ("reason", len(request.reason) > MAX_REASON),
        ("requested_by", len(request.requested_by) > MAX_REQUESTED_BY
         or any(c in request.requested_by for c in "\r\n\t")))
    if not problems and declared is not None and view in (2, 3):
        # What the cause declares: an attribute it has, and one at least for a consensus.
        problems = syntax_problems(
            ("view_attribute", attribute != "" and attribute not in declared),
            ("view", view == 3 and not declared and attribute == ""))
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.SetDefaultRankingView(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S))
    check("SetDefaultRankingView", request, outcome, problems=problems,
          allowed={OK, NOT_FOUND}, role_ok=role_ok("SetDefaultRankingView", role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused choice wrote"
    else:
        cause = outcome.reply.cause
        assert cause.default_view == (view if view in (2, 3) else types_pb2.RANKING_VIEW_RAW)
        if view in (2, 3) and attribute:
            assert cause.default_view_attribute == attribute


@_settings("GetCause")
@given(data=st.data())
def test_get_cause(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.GetCauseRequest, cause_id=ids(world.main, world.sink))
    for (request_, role), outcome in at_once(world.stub.GetCause, data.draw(
            batches("GetCause", request))):
        check("GetCause", request_, outcome,
              problems=syntax_problems(("cause_id", not ID.fullmatch(request_.cause_id))),
              allowed={OK, NOT_FOUND}, role_ok=role_ok("GetCause", role))
        if outcome.code == OK:
            assert outcome.reply.cause.cause_id == request_.cause_id


def new_proposals(world: World) -> st.SearchStrategy[list[types_pb2.NewProposal]]:
    one = st.builds(types_pb2.NewProposal,
                    proposal_id=mostly(st.one_of(st.just(""), valid_ids),
                                       st.one_of(st.sampled_from(SINK_PROPOSALS), garbage)),
                    text=mostly(well_formed_texts, texts),
                    author_id=mostly(st.text(max_size=20),
                                     st.integers(120, 140).map("a".__mul__)))
    return st.one_of(st.lists(one, min_size=1, max_size=3), st.lists(one, max_size=6),
                     st.integers(1001, 1003).map(
                         lambda n: [types_pb2.NewProposal(text="t")] * n))


@_settings("AddProposals")
@given(data=st.data())
def test_add_proposals(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("AddProposals"))
    request = gw.AddProposalsRequest(cause_id=data.draw(ids(world.sink)),
                                     proposals=data.draw(new_proposals(world)))
    problems = syntax_problems(
        ("cause_id", not ID.fullmatch(request.cause_id)),
        ("proposals", not 1 <= len(request.proposals) <= MAX_PROPOSALS_PER_CALL))
    for i, p in enumerate(request.proposals):
        problems += syntax_problems(
            (f"proposals[{i}].proposal_id", bool(p.proposal_id) and not ID.fullmatch(
                p.proposal_id)),
            (f"proposals[{i}].text", not p.text.strip() or len(p.text) > MAX_TEXT),
            (f"proposals[{i}].author_id", len(p.author_id) > MAX_AUTHOR))
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.AddProposals(request, metadata=metadata,
                                                         timeout=CALL_TIMEOUT_S))
    check("AddProposals", request, outcome, problems=problems,
          allowed={OK, NOT_FOUND, EXISTS}, role_ok=role_ok("AddProposals", role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused AddProposals wrote"
    else:
        assert len(outcome.reply.proposals) == len(request.proposals)
        assert [p.text for p in outcome.reply.proposals] == [p.text for p in request.proposals]


@_settings("ModerateProposal")
@given(data=st.data())
def test_moderate_proposal(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("ModerateProposal"))
    request = gw.ModerateProposalRequest(
        cause_id=data.draw(ids(world.sink)),
        proposal_id=data.draw(ids(*SINK_PROPOSALS)),
        status=data.draw(mostly(st.sampled_from([2, 3]), enums)),
        reason=data.draw(mostly(st.text(max_size=30),
                                st.one_of(texts, st.integers(495, 510).map("r".__mul__)))))
    problems = syntax_problems(
        ("cause_id", not ID.fullmatch(request.cause_id)),
        ("proposal_id", not ID.fullmatch(request.proposal_id)),
        ("status", request.status not in (types_pb2.PROPOSAL_STATUS_ACCEPTED,
                                          types_pb2.PROPOSAL_STATUS_REJECTED)),
        ("reason", len(request.reason) > MAX_REASON))
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.ModerateProposal(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S))
    check("ModerateProposal", request, outcome, problems=problems, allowed={OK, NOT_FOUND},
          role_ok=role_ok("ModerateProposal", role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused moderation wrote"
    else:
        assert outcome.reply.proposal.status == request.status
        assert outcome.reply.proposal.moderation_reason == request.reason


@_settings("ListProposals")
@given(data=st.data())
def test_list_proposals(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.ListProposalsRequest, cause_id=ids(world.main, world.sink),
                        status=mostly(st.integers(0, 3), enums), offset=mostly(pages, numbers),
                        limit=mostly(pages, numbers))
    for (request_, role), outcome in at_once(world.stub.ListProposals, data.draw(
            batches("ListProposals", request))):
        problems = syntax_problems(
            ("cause_id", not ID.fullmatch(request_.cause_id)),
            ("status", request_.status not in PROPOSAL_STATUSES | {0}),
            ("offset", request_.offset < 0),
            ("limit", not 0 <= request_.limit <= MAX_LIMIT))
        proposals = outcome.reply.proposals if outcome.code == OK else []
        check("ListProposals", request_, outcome, problems=problems, allowed={OK, NOT_FOUND},
              role_ok=role_ok("ListProposals", role),
              texts_of_reply=[p.moderation_reason for p in proposals])
        if outcome.code == OK:
            assert len(proposals) <= (request_.limit or 100)
            assert all(p.status == request_.status for p in proposals if request_.status)


@_settings("NextPair")
@given(data=st.data())
def test_next_pair(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.NextPairRequest, cause_id=ids(world.main), voter_id=voter_ids(),
                        attributes=mostly(st.just({}), attribute_maps()))
    for (request_, role), outcome in at_once(world.stub.NextPair, data.draw(
            batches("NextPair", request))):
        # The cause declares no attribute: any is one it does not declare.
        problems = syntax_problems(("cause_id", not ID.fullmatch(request_.cause_id)),
                                   ("voter_id", not VOTER_ID.fullmatch(request_.voter_id)),
                                   ("attributes", bool(request_.attributes)))
        check("NextPair", request_, outcome, problems=problems,
              allowed={OK, NOT_FOUND, PRECONDITION, EXHAUSTED},
              role_ok=role_ok("NextPair", role))
        if outcome.code == OK:
            pair = outcome.reply
            assert pair.left.proposal_id != pair.right.proposal_id
            assert {pair.left.proposal_id, pair.right.proposal_id} <= set(MAIN_PROPOSALS)
            assert len(pair.prompt_token) <= MAX_PROMPT_TOKEN


# --- SubmitVote: prompt tokens, real and forged. --------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(fields: Sequence[str], secret: bytes = TOKEN_KEYS.current,
           version: str = "v2", kid: str | None = None) -> str:
    """A token signed like the gateway's (with the cluster's key unless told otherwise)."""
    parts = [version] + ([kid or prompt_token.key_id(secret)] if version == "v2" else [])
    payload = "|".join([*parts, *fields]).encode()
    return f"{_b64(payload)}.{_b64(hmac.new(secret, payload, hashlib.sha256).digest())}"


@dataclass
class Token:
    """A prompt token and what the contract says of a vote with it."""

    wire: str
    kind: str
    cause_id: str = ""  # what it was issued for, when it is a real one
    voter_id: str = ""


def fresh_pair(world: World, voter: str) -> gw.NextPairResponse:
    return world.stub.NextPair(gw.NextPairRequest(cause_id=world.main, voter_id=voter),
                               metadata=world.platform, timeout=CALL_TIMEOUT_S)


def tokens(world: World, voter: str) -> st.SearchStrategy[Token]:
    """Tokens for a vote by `voter` on the main cause: issued by NextPair, or forged."""
    now_ms = 2_000_000_000_000  # 2033: far from any expiry of a real token
    wall_ms = int(time.time() * 1000)
    main, a, b = world.main, MAIN_PROPOSALS[0], MAIN_PROPOSALS[1]

    def real() -> Token:
        return Token(fresh_pair(world, voter).prompt_token, "real", main, voter)

    def altered(how: str) -> Callable[[], Token]:
        def make() -> Token:
            wire = fresh_pair(world, voter).prompt_token
            payload, _, mac = wire.partition(".")
            changed = {"truncated": wire[: len(wire) // 2],
                       "flipped": payload[:-2] + ("A" if payload[-2] != "A" else "B")
                       + payload[-1] + "." + mac,
                       "no signature": payload,
                       "doubled": wire + "." + mac,
                       "padded": wire + "=="}[how]
            return Token(changed, "malformed")
        return make

    def used() -> Token:
        wire = fresh_pair(world, voter).prompt_token
        world.stub.SubmitVote(gw.SubmitVoteRequest(
            cause_id=main, voter_id=voter, prompt_token=wire, choice=types_pb2.CHOICE_LEFT,
            idempotency_key="the-first-vote"), metadata=world.platform, timeout=CALL_TIMEOUT_S)
        return Token(wire, "used", main, voter)

    forged = [
        Token(signed([main, voter, a, b, "1", "2", "n1"]), "expired"),
        # Expired a second ago (one issued in 2033 and valid 1 ms is not expired yet: a vote
        # with it is recorded, once).
        Token(signed([main, voter, a, b, str(wall_ms - 60_000), str(wall_ms - 1_000), "n2"]),
              "expired"),
        Token(signed([main, "someone-else", a, b, "1", str(now_ms * 2), "n3"]), "other"),
        Token(signed(["other-cause", voter, a, b, "1", str(now_ms * 2), "n4"]), "other"),
        Token(signed([main, voter, a, b, "1", str(now_ms * 2), "n5"],
                     secret=b"another-secret-of-at-least-32-bytes!"), "malformed"),
        Token(signed([main, voter, a, b, "1", str(now_ms * 2), "n6"],
                     kid="00000000"), "malformed"),
        Token(signed([main, voter, a, b, "1", str(now_ms * 2)]), "malformed"),
        Token(signed([main, voter, a, b, "x", "y", "n7"]), "malformed"),
        Token(signed([main, voter, a, b, "1", str(now_ms * 2), "n8"], version="v3"),
              "malformed"),
        Token(signed([main, voter, "nope", b, "1", str(now_ms * 2), uuid.uuid4().hex]),
              "unknown proposal", main, voter),
        # Signed with the cluster's key, yet no pair: never a vote.
        Token(signed([main, voter, a, a, "1", str(now_ms * 2), uuid.uuid4().hex]),
              "same proposal", main, voter),
    ]
    return st.one_of(
        st.builds(real), st.builds(real), st.builds(used),
        st.sampled_from(["truncated", "flipped", "no signature", "doubled", "padded"]).flatmap(
            lambda how: st.builds(altered(how))),
        st.sampled_from(forged),
        st.one_of(garbage, st.just("x.y"), st.just("."),
                  st.integers(1020, 1030).map("A".__mul__)).map(
            lambda wire: Token(wire, "malformed" if wire else "missing")),
    )


@_settings("SubmitVote")
@given(data=st.data())
def test_submit_vote(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("SubmitVote"))
    voter = f"v-{uuid.uuid4().hex[:12]}"
    token = data.draw(tokens(world, voter))
    request = gw.SubmitVoteRequest(
        cause_id=data.draw(mostly(st.just(world.main), ids(world.sink))),
        voter_id=data.draw(mostly(st.just(voter), voter_ids())),
        prompt_token=token.wire,
        choice=data.draw(mostly(st.sampled_from(sorted(CHOICES)), enums)),
        skip_reason=data.draw(mostly(st.just(""), st.one_of(
            texts, st.integers(60, 70).map("s".__mul__)))),
        idempotency_key=data.draw(mostly(st.one_of(st.just(""), st.text(max_size=20),
                                                   st.just("the-first-vote")),
                                         st.integers(120, 140).map("k".__mul__))),
        want_next_pair=data.draw(st.booleans()),
        skip_reason_code=data.draw(mostly(st.just(0), st.one_of(
            st.sampled_from(types_pb2.SkipReason.values()), enums))))
    problems = syntax_problems(
        ("cause_id", not ID.fullmatch(request.cause_id)),
        ("voter_id", not VOTER_ID.fullmatch(request.voter_id)),
        ("choice", request.choice not in CHOICES),
        ("skip_reason_code", request.skip_reason_code not in types_pb2.SkipReason.values()
         or bool(request.skip_reason_code) and request.choice != types_pb2.CHOICE_SKIP),
        ("skip_reason", bool(request.skip_reason) and request.choice != types_pb2.CHOICE_SKIP
         or len(request.skip_reason) > MAX_SKIP_REASON),
        ("idempotency_key", len(request.idempotency_key) > MAX_IDEMPOTENCY_KEY),
        # A token's content is judged against its cause: an unknown one may come first. (A
        # cause other than main and sink may exist: another test's CreateCause made it.)
        ("prompt_token", token.kind == "missing" or len(request.prompt_token) > MAX_PROMPT_TOKEN
         or token.kind in ("malformed", "same proposal")
         and (request.cause_id in (world.main, world.sink)
              or ID.fullmatch(request.cause_id) is not None
              and bool(world.redis.exists(keys.cause(request.cause_id))))))
    # NOT_FOUND: the cause, or a proposal the token names; PERMISSION_DENIED: a token
    # issued for another voter or cause.
    allowed = {NOT_FOUND, DENIED}
    issued_for_this = (request.cause_id, request.voter_id) == (token.cause_id, token.voter_id)
    if token.kind == "real" and issued_for_this:
        allowed |= {OK}
    if token.kind in ("expired", "used"):
        allowed |= {PRECONDITION}
    replay = (token.kind == "used" and issued_for_this
              and request.idempotency_key == "the-first-vote")
    if replay and (request.choice, request.skip_reason, request.skip_reason_code) == (
            types_pb2.CHOICE_LEFT, "", 0):
        allowed |= {OK}  # the first vote's receipt, again
    elif replay:
        allowed |= {EXISTS}  # the first vote's key, for another vote
    if VOTER_ID.fullmatch(request.voter_id) and ID.fullmatch(request.cause_id):
        allowed |= {EXHAUSTED}
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.SubmitVote(request, metadata=metadata,
                                                       timeout=CALL_TIMEOUT_S))
    reply_texts = [outcome.reply.next_pair_unavailable] if outcome.code == OK else []
    check("SubmitVote", request, outcome, problems=problems, allowed=allowed,
          role_ok=role_ok("SubmitVote", role), texts_of_reply=reply_texts)
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused vote was logged"
    else:
        assert outcome.reply.vote_id and outcome.reply.duplicate == replay
        if request.want_next_pair:
            assert outcome.reply.HasField("next_pair") != bool(
                outcome.reply.next_pair_unavailable)


# --- ImportVotes: a stream of batches of decided votes. -------------------------------------

def imported_votes(world: World) -> st.SearchStrategy[types_pb2.ImportedVote]:
    proposal = mostly(st.sampled_from(MAIN_PROPOSALS), ids(*SINK_PROPOSALS))
    return st.builds(
        types_pb2.ImportedVote,
        vote_id=st.one_of(st.builds(lambda: f"fz-{uuid.uuid4().hex}"),
                          st.text(ID_CHARS + ":", min_size=1, max_size=128),
                          st.integers(126, 132).map("v".__mul__), garbage),
        cause_id=mostly(st.just(world.main), ids(world.sink)),
        voter_id=one_choice(st.just("importer"), voter_ids()),
        winner_id=proposal, loser_id=proposal, tie=st.booleans())


def import_problem(world: World, vote: types_pb2.ImportedVote) -> bool:
    """Whether the contract says this vote cannot be recorded."""
    known = {world.main: MAIN_PROPOSALS, world.sink: SINK_PROPOSALS}
    return (not VOTE_ID.fullmatch(vote.vote_id) or not VOTER_ID.fullmatch(vote.voter_id)
            or vote.cause_id not in known or vote.winner_id == vote.loser_id
            or not {vote.winner_id, vote.loser_id} <= set(known[vote.cause_id]))


@_settings("ImportVotes")
@given(data=st.data())
def test_import_votes(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("ImportVotes"))
    batches = data.draw(st.lists(st.lists(imported_votes(world), max_size=8), max_size=3))
    votes = [vote for batch in batches for vote in batch]
    causes = (world.main, world.sink)
    before = [world.accepted(c) for c in causes]
    outcome = outcome_of(lambda: world.stub.ImportVotes(
        iter([gw.ImportVotesRequest(votes=batch) for batch in batches]), metadata=metadata,
        timeout=CALL_TIMEOUT_S))
    reply_texts = [e.reason for e in outcome.reply.errors] if outcome.code == OK else []
    check("ImportVotes", votes, outcome, problems=[], allowed={OK},
          role_ok=role_ok("ImportVotes", role), texts_of_reply=reply_texts)
    after = [world.accepted(c) for c in causes]
    if outcome.code != OK:
        assert after == before, "a refused ImportVotes recorded votes"
        return
    report = outcome.reply
    assert report.accepted + report.duplicates + report.rejected == len(votes)
    bad = set()
    for i, vote in enumerate(votes):
        if import_problem(world, vote):
            bad.add(i)
            continue
        # A vote_id recorded before for another vote is refused, not taken as a duplicate.
        fields = (vote.voter_id, vote.winner_id, vote.loser_id, vote.tie)
        if world.imported.setdefault((vote.cause_id, vote.vote_id), fields) != fields:
            bad.add(i)
    assert {e.index for e in report.errors} == bad, report
    assert all(re.fullmatch(r"[a-z_]+: .+", e.reason, re.S) for e in report.errors), report
    gained = sum(a - b for a, b in zip(after, before, strict=True))
    assert gained == report.accepted, "the stats do not count what was accepted"


# --- Reading rankings and stats. ------------------------------------------------------------

RANKING_READS = {OK, NOT_FOUND}


@_settings("GetRanking")
@given(data=st.data())
def test_get_ranking(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.GetRankingRequest, cause_id=ids(world.main),
                        offset=mostly(pages, numbers), limit=mostly(pages, numbers))
    for (request_, role), outcome in at_once(world.stub.GetRanking, data.draw(
            batches("GetRanking", request))):
        problems = syntax_problems(("cause_id", not ID.fullmatch(request_.cause_id)),
                                   ("offset", request_.offset < 0),
                                   ("limit", not 0 <= request_.limit <= MAX_LIMIT))
        check("GetRanking", request_, outcome, problems=problems, allowed=RANKING_READS,
              role_ok=role_ok("GetRanking", role))
        if outcome.code == OK:
            entries = outcome.reply.entries
            assert len(entries) <= (request_.limit or 100)
            assert [e.rank for e in entries] == list(range(
                request_.offset + 1, request_.offset + 1 + len(entries)))


@_settings("WatchRanking")
@given(data=st.data())
def test_watch_ranking(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("WatchRanking"))
    request = gw.WatchRankingRequest(cause_id=data.draw(ids(world.main)),
                                     limit=data.draw(mostly(pages, numbers)))
    problems = syntax_problems(("cause_id", not ID.fullmatch(request.cause_id)),
                               ("limit", not 0 <= request.limit <= MAX_LIMIT))
    outcome = outcome_of(lambda: first_update(world.stub.WatchRanking(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S)))
    check("WatchRanking", request, outcome, problems=problems,
          allowed=RANKING_READS | {EXHAUSTED}, role_ok=role_ok("WatchRanking", role))
    if outcome.code == OK:
        assert len(outcome.reply.entries) <= (request.limit or 20)


@_settings("GetCauseStats")
@given(data=st.data())
def test_get_cause_stats(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.GetCauseStatsRequest, cause_id=ids(world.main, world.sink))
    for (request_, role), outcome in at_once(world.stub.GetCauseStats, data.draw(
            batches("GetCauseStats", request))):
        stats = outcome.reply if outcome.code == OK else gw.GetCauseStatsResponse()
        check("GetCauseStats", request_, outcome,
              problems=syntax_problems(("cause_id", not ID.fullmatch(request_.cause_id))),
              allowed=RANKING_READS, role_ok=role_ok("GetCauseStats", role),
              texts_of_reply=[*stats.rejected_by_reason])
        assert stats.votes_rejected == sum(stats.rejected_by_reason.values())
        assert stats.lag == stats.votes_accepted - stats.votes_counted


# --- Exclusions: writes on the sink cause, reads of both. ------------------------------------

def id_lists(one: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """A few ids (repeats included), or about the most a request may name."""
    return one_choice(st.lists(one, max_size=4),
                      st.sampled_from([MAX_EXCLUDED_IDS - 1, MAX_EXCLUDED_IDS,
                                       MAX_EXCLUDED_IDS + 1]).map(
                          lambda n: [f"bulk-{k}" for k in range(n)]))


@_settings("ExcludeVotes")
@given(data=st.data())
def test_exclude_and_reinstate_votes(world: World, data: st.DataObject) -> None:
    rpc = data.draw(st.sampled_from(["ExcludeVotes", "ReinstateVotes"]))
    metadata, role = data.draw(auth_for(rpc))
    kind = gw.ExcludeVotesRequest if rpc == "ExcludeVotes" else gw.ReinstateVotesRequest
    known_voters = st.lists(st.sampled_from(["seed", "v-1"]), max_size=2)
    known_votes = st.lists(st.sampled_from(["seed-1", "seed-2"]), max_size=2)
    request = kind(
        cause_id=data.draw(mostly(st.just(world.sink), ids(world.sink))),
        voter_ids=data.draw(mostly(known_voters, id_lists(voter_ids()))),
        vote_ids=data.draw(mostly(known_votes, id_lists(ids()))),
        reason=data.draw(mostly(well_formed_texts, st.one_of(
            texts, st.integers(495, 505).map("r".__mul__)))),
        requested_by=data.draw(mostly(st.just(""), texts)))
    voters, votes = set(request.voter_ids), set(request.vote_ids)
    problems = syntax_problems(
        ("cause_id", not ID.fullmatch(request.cause_id)),
        ("voter_ids", not voters and not votes),
        ("voter_ids", len(voters) + len(votes) > MAX_EXCLUDED_IDS),
        ("voter_ids", any(not VOTER_ID.fullmatch(v) for v in voters)),
        ("vote_ids", any(not VOTE_ID.fullmatch(v) for v in votes)),
        ("reason", not request.reason.strip() or len(request.reason) > MAX_EXCLUSION_REASON),
        ("requested_by", len(request.requested_by) > MAX_REQUESTED_BY
         or any(c in request.requested_by for c in "\r\n\t")))
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: getattr(world.stub, rpc)(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S))
    check("ExcludeVotes", request, outcome, problems=problems, allowed={OK, NOT_FOUND},
          role_ok=role_ok(rpc, role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused exclusion wrote"
    else:
        assert outcome.reply.voters_changed <= len(voters)
        assert outcome.reply.votes_changed <= len(votes)
        assert outcome.reply.exclusions_version >= 0


@_settings("ListExclusions")
@given(data=st.data())
def test_list_exclusions(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.ListExclusionsRequest, cause_id=ids(world.main, world.sink),
                        offset=mostly(pages, numbers), limit=mostly(pages, numbers))
    for (request_, role), outcome in at_once(world.stub.ListExclusions, data.draw(
            batches("ListExclusions", request))):
        problems = syntax_problems(
            ("cause_id", not ID.fullmatch(request_.cause_id)),
            ("offset", request_.offset < 0),
            ("limit", not 0 <= request_.limit <= MAX_LIMIT))
        listed = outcome.reply.exclusions if outcome.code == OK else []
        check("ListExclusions", request_, outcome, problems=problems, allowed={OK, NOT_FOUND},
              role_ok=role_ok("ListExclusions", role),
              texts_of_reply=[e.reason for e in listed])
        if outcome.code == OK:
            assert len(listed) <= (request_.limit or 100)
            assert all(bool(e.voter_id) != bool(e.vote_id) for e in listed)


# --- Voter attributes and population margins. ----------------------------------------------

attribute_names = one_choice(st.text(ID_CHARS, min_size=1, max_size=32),
                             st.sampled_from(["region", "age", "north", "south", "young"]),
                             garbage)


def attribute_maps() -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(attribute_names, attribute_names, max_size=10)


def declaration_problems(attributes: Sequence[types_pb2.VoterAttribute]) -> list[str]:
    """The fields the contract calls malformed in a SetVoterAttributes request's attributes."""
    problems = ["attributes"] if len(attributes) > MAX_ATTRIBUTES else []
    seen: set[str] = set()
    for k, attribute in enumerate(attributes):
        if not ATTRIBUTE_NAME.fullmatch(attribute.key) or attribute.key in seen:
            problems.append(f"attributes[{k}].key")
        seen.add(attribute.key)
        values = list(attribute.values)
        if not values or len(values) > MAX_ATTRIBUTE_VALUES or len(set(values)) != len(values) \
                or not all(ATTRIBUTE_NAME.fullmatch(value) for value in values):
            problems.append(f"attributes[{k}].values")
    return problems


@_settings("SetVoterAttributes")
@given(data=st.data())
def test_set_voter_attributes(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("SetVoterAttributes"))
    attribute = st.builds(types_pb2.VoterAttribute, key=attribute_names,
                          values=st.lists(attribute_names, max_size=34))
    request = gw.SetVoterAttributesRequest(
        cause_id=data.draw(ids(world.sink)),
        attributes=data.draw(st.lists(attribute, max_size=10)))
    problems = syntax_problems(("cause_id", not ID.fullmatch(request.cause_id))) \
        + declaration_problems(request.attributes)
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.SetVoterAttributes(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S))
    # PRECONDITION: a well-formed declaration that drops or reorders what was declared.
    check("SetVoterAttributes", request, outcome, problems=problems,
          allowed={OK, NOT_FOUND, PRECONDITION}, role_ok=role_ok("SetVoterAttributes", role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused declaration wrote"
    else:
        assert list(outcome.reply.cause.voter_attributes) == list(request.attributes)


def declared(world: World, cause_id: str) -> dict[str, list[str]]:
    stored = world.redis.hget(keys.cause(cause_id), "voter_attributes") \
        if ID.fullmatch(cause_id) else None
    return {key: values for key, values in json.loads(stored)} if stored else {}


@_settings("SetPopulationMargins")
@given(data=st.data())
def test_set_population_margins(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("SetPopulationMargins"))
    current = declared(world, world.sink)
    keys_ = st.sampled_from(sorted(current)) if current else attribute_names
    values_ = st.sampled_from(sorted({v for vs in current.values() for v in vs})) \
        if current else attribute_names
    shares = one_choice(st.floats(0, 1), st.floats(allow_nan=True, allow_infinity=True),
                        st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.0 + 1e-9, -0.0, 1e-300]))
    margin = st.builds(gw.AttributeMargins, key=mostly(keys_, attribute_names),
                       shares=st.dictionaries(mostly(values_, attribute_names), shares,
                                              max_size=6))
    request = gw.SetPopulationMarginsRequest(
        cause_id=data.draw(ids(world.sink)), margins=data.draw(st.lists(margin, max_size=9)))
    problems = syntax_problems(("cause_id", not ID.fullmatch(request.cause_id)),
                               ("margins", len(request.margins) > MAX_ATTRIBUTES))
    seen: set[str] = set()
    for m, item in enumerate(request.margins):
        if item.key in seen:
            problems.append(f"margins[{m}].key")
        seen.add(item.key)
        values = list(item.shares.values())
        if not all(math.isfinite(v) and 0 <= v <= 1 for v in values) \
                or abs(math.fsum(values) - 1) > 1e-6:
            problems.append(f"margins[{m}].shares")
    if request.cause_id == world.sink:
        # What the cause declares decides the rest (it may have grown meanwhile: re-read).
        current = declared(world, world.sink)
        for m, item in enumerate(request.margins):
            if item.key not in current:
                problems.append(f"margins[{m}].key")
            elif set(item.shares) - set(current[item.key]):
                problems.append(f"margins[{m}].shares")
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.SetPopulationMargins(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S))
    check("SetPopulationMargins", request, outcome, problems=problems,
          allowed={OK, NOT_FOUND}, role_ok=role_ok("SetPopulationMargins", role))
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "refused margins were stored"
    else:
        assert [m.key for m in outcome.reply.margins] == [
            key for key in current if key in {m.key for m in request.margins}]


@_settings("GetPopulationMargins")
@given(data=st.data())
def test_get_population_margins(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.GetPopulationMarginsRequest, cause_id=ids(world.main, world.sink))
    for (request_, role), outcome in at_once(world.stub.GetPopulationMargins, data.draw(
            batches("GetPopulationMargins", request))):
        check("GetPopulationMargins", request_, outcome,
              problems=syntax_problems(("cause_id", not ID.fullmatch(request_.cause_id))),
              allowed={OK, NOT_FOUND}, role_ok=role_ok("GetPopulationMargins", role))
        if outcome.code == OK:
            for margin in outcome.reply.margins:
                assert math.fsum(margin.shares.values()) == pytest.approx(1, abs=1e-6)


@_settings("ListExclusionAudit")
@given(data=st.data())
def test_list_exclusion_audit(world: World, data: st.DataObject) -> None:
    cursors = st.one_of(
        st.just(""), st.sampled_from(["0-0", "1-1", f"{MAX_U64}-{MAX_U64}", f"{MAX_U64}-0",
                                      f"{MAX_U64 + 1}-0", "1", "-1-0", "1-x"]),
        st.tuples(st.integers(0, 2**65), st.integers(0, 2**65)).map(lambda t: f"{t[0]}-{t[1]}"))
    request = st.builds(gw.ListExclusionAuditRequest, cause_id=ids(world.main, world.sink),
                        after=mostly(cursors, garbage), limit=mostly(pages, numbers))
    for (request_, role), outcome in at_once(world.stub.ListExclusionAudit, data.draw(
            batches("ListExclusionAudit", request))):
        after = re.fullmatch(r"([0-9]{1,20})-([0-9]{1,20})", request_.after)
        problems = syntax_problems(
            ("cause_id", not ID.fullmatch(request_.cause_id)),
            ("after", bool(request_.after) and (
                after is None or max(map(int, after.groups())) > MAX_U64)),
            ("limit", not 0 <= request_.limit <= MAX_LIMIT))
        entries = outcome.reply.entries if outcome.code == OK else []
        check("ListExclusionAudit", request_, outcome, problems=problems,
              allowed={OK, NOT_FOUND}, role_ok=role_ok("ListExclusionAudit", role),
              texts_of_reply=[e.reason for e in entries])
        if outcome.code == OK:
            assert len(entries) <= (request_.limit or 100)


@_settings("ListCauses")
@given(data=st.data())
def test_list_causes(world: World, data: st.DataObject) -> None:
    cursors = st.one_of(
        st.just(""), st.sampled_from(["0", str(MAX_U64), str(MAX_U64 + 1), "-1", "1-0", " 1",
                                      "\u0661", "1" * 21]),
        st.integers(0, 2**65).map(str))
    request = st.builds(gw.ListCausesRequest, after=mostly(cursors, garbage),
                        limit=mostly(pages, numbers))
    for (request_, role), outcome in at_once(world.stub.ListCauses, data.draw(
            batches("ListCauses", request))):
        after = request_.after
        problems = syntax_problems(
            ("after", bool(after) and not (re.fullmatch(r"[0-9]{1,20}", after)
                                           and int(after) <= MAX_U64)),
            ("limit", not 0 <= request_.limit <= MAX_LIMIT))
        # Titles are not checked for leaks: other tests' causes hold any text a title may.
        check("ListCauses", request_, outcome, problems=problems, allowed={OK},
              role_ok=role_ok("ListCauses", role))


# --- Exports: admin-only server streams. ---------------------------------------------------

def entry_ids() -> st.SearchStrategy[str]:
    """Log entry ids ("<ms>-<seq>", each part at most 2^64 - 1), and near misses."""
    return one_choice(
        st.just(""), st.sampled_from(["0-0", "1-1", f"{MAX_U64}-{MAX_U64}", f"{MAX_U64 + 1}-0",
                                      f"0-{MAX_U64 + 1}", "9" * 20 + "-0", "1", "-1-0", "1-x",
                                      "+", "-", "$", ">"]),
        st.tuples(st.integers(0, 2**66), st.integers(0, 2**66)).map(lambda t: f"{t[0]}-{t[1]}"),
        garbage)


@_settings("Exports")
@given(data=st.data())
def test_exports(world: World, data: st.DataObject) -> None:
    rpc = data.draw(st.sampled_from(["ExportVotes", "ExportRanking"]))
    metadata, role = data.draw(auth_for(rpc))
    cause_id = data.draw(ids(world.main, world.sink))
    request: Message
    if rpc == "ExportVotes":
        request = gw.ExportVotesRequest(cause_id=cause_id, through_entry_id=data.draw(
            mostly(st.just(""), entry_ids())), raw_voter_ids=data.draw(st.booleans()))
        through = re.fullmatch(r"([0-9]{1,20})-([0-9]{1,20})", request.through_entry_id)
        bad_through = bool(request.through_entry_id) and (
            through is None or max(map(int, through.groups())) > MAX_U64)
    else:
        request, bad_through = gw.ExportRankingRequest(cause_id=cause_id), False
    problems = syntax_problems(("cause_id", not ID.fullmatch(cause_id)),
                               ("through_entry_id", bad_through))
    # The whole stream (the test's causes are small): its status comes after the last page.
    outcome = outcome_of(lambda: list(getattr(world.stub, rpc)(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S)))
    check("Exports", request, outcome, problems=problems, allowed={OK, NOT_FOUND},
          role_ok=role_ok(rpc, role))


# --- The detector's flags and automatic exclusion. -------------------------------------------

DETECTOR_REASONS = {"fit", "pace", "too_fast", "coordinated"}
_QUIET_CAUSES: set[str] = set()


def quiet_cause(world: World) -> str:
    """A cause nobody votes on, for the automatic-exclusion setting: on a cause with votes
    it would exclude voters, which other tests' fingerprints would see."""
    cause_id = f"{world.sink}-quiet"
    if cause_id not in _QUIET_CAUSES:
        world.stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="quiet"),
                               metadata=world.admin, timeout=CALL_TIMEOUT_S)
        _QUIET_CAUSES.add(cause_id)
    return cause_id


@_settings("ListFlaggedVoters")
@given(data=st.data())
def test_list_flagged_voters(world: World, data: st.DataObject) -> None:
    request = st.builds(gw.ListFlaggedVotersRequest, cause_id=ids(world.main, world.sink),
                        offset=mostly(pages, numbers), limit=mostly(pages, numbers))
    for (request_, role), outcome in at_once(world.stub.ListFlaggedVoters, data.draw(
            batches("ListFlaggedVoters", request))):
        problems = syntax_problems(
            ("cause_id", not ID.fullmatch(request_.cause_id)),
            ("offset", request_.offset < 0),
            ("limit", not 0 <= request_.limit <= MAX_LIMIT))
        listed = outcome.reply.voters if outcome.code == OK else []
        check("ListFlaggedVoters", request_, outcome, problems=problems,
              allowed={OK, NOT_FOUND}, role_ok=role_ok("ListFlaggedVoters", role),
              texts_of_reply=[v.detail for v in listed])
        if outcome.code == OK:
            assert len(listed) <= (request_.limit or 100)
            assert set(outcome.reply.auto_exclude_reasons) <= DETECTOR_REASONS


@_settings("SetAutoExclusion")
@given(data=st.data())
def test_set_auto_exclusion(world: World, data: st.DataObject) -> None:
    metadata, role = data.draw(auth_for("SetAutoExclusion"))
    quiet = quiet_cause(world)
    reasons = st.lists(st.sampled_from(sorted(DETECTOR_REASONS)), max_size=4)
    request = gw.SetAutoExclusionRequest(
        cause_id=data.draw(mostly(st.just(quiet), ids(quiet))),
        auto_exclude_reasons=data.draw(mostly(reasons, st.lists(one_choice(
            st.sampled_from(sorted(DETECTOR_REASONS)), garbage), max_size=5))))
    problems = syntax_problems(
        ("cause_id", not ID.fullmatch(request.cause_id)),
        ("auto_exclude_reasons", not set(request.auto_exclude_reasons) <= DETECTOR_REASONS))
    before = world.fingerprint(request.cause_id)
    outcome = outcome_of(lambda: world.stub.SetAutoExclusion(
        request, metadata=metadata, timeout=CALL_TIMEOUT_S))
    check("SetAutoExclusion", request, outcome, problems=problems, allowed={OK, NOT_FOUND},
          role_ok=role_ok("SetAutoExclusion", role),
          texts_of_reply=list(outcome.reply.auto_exclude_reasons) if outcome.code == OK
          else [])
    if outcome.code != OK:
        assert world.fingerprint(request.cause_id) == before, "a refused setting wrote"
    else:
        assert set(outcome.reply.auto_exclude_reasons) == set(request.auto_exclude_reasons)


# --- Bytes that are no message, and tokens that prove no role. ------------------------------

METHODS = {
    name: (method.input_type._concrete_class,
           "stream" if method.name == "ImportVotes" else
           # Server streams: the first message (or the status) is the outcome.
           "watch" if method.server_streaming else "unary")
    for name, method in gw.DESCRIPTOR.services_by_name["GatewayService"].methods_by_name.items()
}


def raw_calls(world: World, calls: Sequence[tuple[str, bytes, Any]]) -> list[Outcome]:
    """`(rpc, payload, metadata)` calls made at once, payloads sent as they are."""
    identity = bytes
    started: list[Callable[[], Any]] = []
    for rpc, payload, metadata in calls:
        path, kind = f"/pairwise.v1.GatewayService/{rpc}", METHODS[rpc][1]
        options = {"request_serializer": identity, "response_deserializer": identity}
        if kind == "stream":
            future = world.channel.stream_unary(path, **options).future(
                iter([payload]), metadata=metadata, timeout=CALL_TIMEOUT_S)
            started.append(future.result)
        elif kind == "watch":
            stream = world.channel.unary_stream(path, **options)(
                payload, metadata=metadata, timeout=CALL_TIMEOUT_S)
            started.append(lambda stream=stream: first_update(stream))
        else:
            future = world.channel.unary_unary(path, **options).future(
                payload, metadata=metadata, timeout=CALL_TIMEOUT_S)
            started.append(future.result)
    return [outcome_of(result) for result in started]


def payloads() -> st.SearchStrategy[bytes]:
    """Bytes, mostly almost a message: a string field holding invalid UTF-8, a truncated
    length, a wire type no field has, a group."""
    return st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"\x0a\x02\xff\xfe", b"\x0a\x05ab", b"\x0a", b"\x08", b"\x0b",
                         b"\x0f", b"\xff" * 11, b"\x12\x03\x0a\x01\xff",
                         b"\x12\x80\x80\x80\x80\x10", b"\x0a\x01a\x12\x01"]),
        st.tuples(st.integers(1, 15), st.binary(max_size=12)).map(
            lambda tb: bytes([(tb[0] << 3) | 2, len(tb[1])]) + tb[1]),
    )


WRITES = ("CreateCause", "AddProposals", "ImportVotes", "ModerateProposal",
          "UpdatePairSelection", "SubmitVote", "ExcludeVotes", "ReinstateVotes",
          "SetVoterAttributes", "SetPopulationMargins", "CloseCause", "ReopenCause",
          "ScheduleCause", "ArchiveCause", "SetDefaultRankingView")


def decodes(rpc: str, payload: bytes) -> bool:
    try:
        METHODS[rpc][0].FromString(payload)
    except DecodeError:
        return False
    return True


@_settings("raw bytes")
@given(data=st.data())
def test_bytes_that_are_no_message(world: World, data: st.DataObject) -> None:
    calls = []
    for _ in range(data.draw(st.integers(1, BATCH))):
        rpc, payload = data.draw(st.sampled_from(sorted(METHODS))), data.draw(payloads())
        metadata = world.admin if rpc in ADMIN_RPCS else data.draw(
            st.sampled_from([world.admin, world.platform]))
        if rpc in WRITES and decodes(rpc, payload):
            # A write that happens to decode is tried by its own test above; here it is
            # only read as that message, never written anywhere.
            metadata = (("authorization", "Bearer wrong"),)
        calls.append((rpc, payload, metadata))
    for (rpc, payload, metadata), outcome in zip(calls, raw_calls(world, calls), strict=True):
        role = {world.admin: "admin", world.platform: "platform"}.get(metadata)
        if not decodes(rpc, payload):
            check("raw bytes", payload, outcome, problems=["request"], allowed=set(),
                  role_ok=role_ok(rpc, role))
            continue
        STATUSES["raw bytes", outcome.code.name] += 1
        where = f"{rpc}({payload!r}) -> {outcome.code.name} {outcome.details!r}"
        assert outcome.code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), where
        assert not leaks(outcome.details), where
        if role is None:
            assert outcome.code == UNAUTHENTICATED, where


@_settings("authorization")
@given(data=st.data())
def test_authorization(world: World, data: st.DataObject) -> None:
    calls, requests = [], []
    for _ in range(data.draw(st.integers(1, BATCH))):
        rpc, cause_id = data.draw(st.sampled_from(sorted(METHODS))), data.draw(ids())
        metadata, role = data.draw(st.sampled_from([
            auth for auth in AUTHORIZATIONS
            if auth[1] is None or (auth[1] == "platform" and rpc in ADMIN_RPCS)]))
        message = METHODS[rpc][0]
        # A request names a cause, except ListCauses'.
        fields = {"cause_id": cause_id} if "cause_id" in message.DESCRIPTOR.fields_by_name else {}
        request = message(**fields) if rpc != "ImportVotes" else \
            gw.ImportVotesRequest(votes=[types_pb2.ImportedVote(
                vote_id="v", cause_id=world.main, voter_id="v", winner_id=MAIN_PROPOSALS[0],
                loser_id=MAIN_PROPOSALS[1])])
        calls.append((rpc, request.SerializeToString(), metadata))
        requests.append((request, role))
    before = world.fingerprint(world.main, world.sink)
    for (rpc, _, _), (request, role), outcome in zip(calls, requests, raw_calls(world, calls),
                                                     strict=True):
        check("authorization", request, outcome, problems=[], allowed=set(),
              role_ok=role_ok(rpc, role))
    assert world.fingerprint(world.main, world.sink) == before


# --- Oversized messages. --------------------------------------------------------------------

@pytest.mark.parametrize("rpc", ["CreateCause", "AddProposals", "SubmitVote", "GetCause"])
def test_a_message_over_the_size_limit_is_refused_by_name(world: World, rpc: str) -> None:
    huge = "x" * (17 * 1024 * 1024)
    request = {"CreateCause": lambda: gw.CreateCauseRequest(title=huge),
               "AddProposals": lambda: gw.AddProposalsRequest(
                   cause_id=world.sink, proposals=[types_pb2.NewProposal(text=huge)]),
               "SubmitVote": lambda: gw.SubmitVoteRequest(
                   cause_id=world.main, voter_id="v", prompt_token=huge),
               "GetCause": lambda: gw.GetCauseRequest(cause_id=huge)}[rpc]()
    before = world.fingerprint(world.main, world.sink)
    outcome = outcome_of(lambda: getattr(world.stub, rpc)(request, metadata=world.admin,
                                                          timeout=CALL_TIMEOUT_S))
    STATUSES["oversized", outcome.code.name] += 1
    assert outcome.code == EXHAUSTED, outcome
    assert not leaks(outcome.details), outcome.details
    assert world.fingerprint(world.main, world.sink) == before


def test_inputs_tried_in_one_run(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """The run tried at least MIN_INPUTS inputs, none answered UNKNOWN or INTERNAL; the count
    and the statuses are printed (without -s too)."""
    ran = {rpc for rpc, _ in STATUSES}
    if not set(EXAMPLES) <= ran:
        pytest.skip(f"only part of the module ran: {sorted(set(EXAMPLES) - ran)} did not")
    summary = summary_lines()
    with capsys.disabled():
        print("\n" + "\n".join(summary))
    assert sum(STATUSES.values()) >= MIN_INPUTS, "\n".join(summary)
    assert not {code for _, code in STATUSES} & {"UNKNOWN", "INTERNAL"}, "\n".join(summary)
