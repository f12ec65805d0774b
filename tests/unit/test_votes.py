"""Votes as ingest takes them: a SubmitVote becomes the log entry the voter meant, a retry
keeps its vote id, and an import batch is checked vote by vote, each problem reported at its
position with a code, then combined with what the store found."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ingest import votes
from ingest.votes import CauseImport, ImportPlan, Rejection, plan_import, settle
from pairwise import prompt_token
from pairwise.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from pairwise.v1 import types_pb2
from pairwise.voter_attributes import Declaration

SECRET = prompt_token.TokenKeys(b"unit-test-secret-of-at-least-32-bytes")
OTHER_KEYS = prompt_token.TokenKeys(b"another secret, also 32 bytes long")
ISSUED_MS = 1_700_000_000_000
TTL_MS = 600_000
MIN_VIEW_MS = 1_500


def token(cause_id: str = "c1", voter_id: str = "alice", left: str = "p1",
          right: str = "p2") -> tuple[str, prompt_token.PromptToken]:
    return prompt_token.issue(SECRET, cause_id, voter_id, left, right, ISSUED_MS, TTL_MS)


def submit(wire: str, choice: str, *, after_ms: int = 5_000, skip_reason: str = "",
           idempotency_key: str = "", cause_id: str = "c1", voter_id: str = "alice",
           skip_reason_code: int = 0) -> votes.InteractiveVote:
    return votes.interactive_vote(
        keys=SECRET, cause_id=cause_id, voter_id=voter_id, wire_token=wire, choice=choice,
        skip_reason=skip_reason, idempotency_key=idempotency_key,
        now_ms=ISSUED_MS + after_ms, min_view_ms=MIN_VIEW_MS,
        skip_reason_code=skip_reason_code)


# -- SubmitVote ------------------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "kind", "a_id", "b_id"), [
    ("left", "w", "p1", "p2"),    # the left proposal won
    ("right", "w", "p2", "p1"),   # the right one won: it comes first, as the winner
    ("tie", "t", "p1", "p2"),
    ("skip", "s", "p1", "p2"),
])
def test_the_choice_becomes_a_log_entry_winner_first(choice: str, kind: str, a_id: str,
                                                     b_id: str) -> None:
    wire, _ = token(left="p1", right="p2")
    vote = submit(wire, choice)
    assert (vote.kind, vote.a_id, vote.b_id) == (kind, a_id, b_id)
    assert (vote.cause_id, vote.voter_id) == ("c1", "alice")


def test_a_skip_keeps_its_reason_code_then_its_text_and_other_choices_refuse_them() -> None:
    wire, _ = token()
    cannot_decide = types_pb2.SKIP_REASON_CANNOT_DECIDE
    # The log's r field: the code, then the free text; text alone is "other", none
    # "unspecified" (pairwise.vote_log).
    for text, code, stored in (("je ne sais pas", cannot_decide, "cannot_decide je ne sais pas"),
                               ("", cannot_decide, "cannot_decide"),
                               ("je ne sais pas", 0, "other je ne sais pas"),
                               ("", 0, "unspecified")):
        assert submit(wire, "skip", skip_reason=text,
                      skip_reason_code=code).skip_reason == stored
    for text, code, named in (("je ne sais pas", 0, "skip_reason"),
                              ("", cannot_decide, "skip_reason_code")):
        with pytest.raises(InvalidArgument) as caught:
            submit(wire, "left", skip_reason=text, skip_reason_code=code)
        assert caught.value.field == named
    with pytest.raises(InvalidArgument) as caught:
        submit(wire, "skip", skip_reason_code=len(types_pb2.SkipReason.keys()))
    assert caught.value.field == "skip_reason_code"


def test_an_unspecified_or_unknown_choice_is_refused_naming_the_field() -> None:
    wire, _ = token()
    for choice in ("", "both", "LEFT"):
        with pytest.raises(InvalidArgument) as caught:
            submit(wire, choice)
        assert caught.value.field == "choice"


def test_skip_reasons_and_idempotency_keys_have_length_limits() -> None:
    wire, _ = token()
    assert submit(wire, "skip", skip_reason="x" * 64).skip_reason == "other " + "x" * 64
    with pytest.raises(InvalidArgument) as caught:
        submit(wire, "skip", skip_reason="x" * 65)
    assert caught.value.field == "skip_reason"
    submit(wire, "left", idempotency_key="k" * 128)
    with pytest.raises(InvalidArgument) as caught:
        submit(wire, "left", idempotency_key="k" * 129)
    assert caught.value.field == "idempotency_key"


@pytest.mark.parametrize(("cause_id", "voter_id", "field"), [
    ("", "alice", "cause_id"), ("c 1", "alice", "cause_id"), ("c1", "", "voter_id"),
    ("c1", "al ice", "voter_id"),
])
def test_malformed_ids_are_refused_naming_the_field(cause_id: str, voter_id: str,
                                                     field: str) -> None:
    wire, _ = token()
    with pytest.raises(InvalidArgument) as caught:
        submit(wire, "left", cause_id=cause_id, voter_id=voter_id)
    assert caught.value.field == field


def test_voter_ids_may_be_emails_or_namespaced() -> None:
    wire, _ = token(voter_id="ext:alice@example.org")
    assert submit(wire, "tie", voter_id="ext:alice@example.org").voter_id == (
        "ext:alice@example.org")


def test_the_token_must_be_the_voters_own_for_this_cause_and_still_valid() -> None:
    wire, _ = token(cause_id="c1", voter_id="alice")
    with pytest.raises(PermissionDenied):
        submit(wire, "left", voter_id="bob")
    with pytest.raises(PermissionDenied):
        submit(wire, "left", cause_id="c2")
    assert submit(wire, "left", after_ms=TTL_MS - 1).expired is None
    # Expired: the store answers the error unless the vote was recorded (a retry's receipt).
    late = submit(wire, "left", after_ms=TTL_MS)
    assert isinstance(late.expired, FailedPrecondition)
    assert "NextPair" in str(late.expired)
    assert late.vote_id == submit(wire, "left").vote_id
    forged, _ = prompt_token.issue(OTHER_KEYS, "c1", "alice", "p1", "p2", ISSUED_MS,
                                   TTL_MS)
    with pytest.raises(InvalidArgument) as caught:
        submit(forged, "left")
    assert caught.value.field == "prompt_token"


def test_a_vote_faster_than_reading_is_kept_but_not_trusted() -> None:
    wire, _ = token()
    assert not submit(wire, "left", after_ms=MIN_VIEW_MS - 1).trusted
    assert submit(wire, "left", after_ms=MIN_VIEW_MS).trusted


def test_the_nonce_stays_consumed_past_the_tokens_expiry() -> None:
    wire, issued = token()
    vote = submit(wire, "left", after_ms=10_000)
    assert vote.nonce == issued.nonce
    # Remaining lifetime (TTL - 10 s) plus a minute of grace for replicas with slower clocks.
    assert vote.nonce_ttl_ms == TTL_MS - 10_000 + 60_000


def test_a_retry_with_the_same_idempotency_key_is_the_same_vote() -> None:
    first, _ = token()
    second, _ = token()   # a fresh NextPair, e.g. after the client lost the first answer
    assert first != second
    same = {submit(first, "left", idempotency_key="k1").vote_id,
            submit(second, "left", idempotency_key="k1").vote_id}
    assert len(same) == 1
    assert submit(first, "left", idempotency_key="k2").vote_id not in same
    assert submit(first, "left", idempotency_key="k1", voter_id="alice").vote_id in same


def test_without_a_key_the_vote_id_follows_the_prompt() -> None:
    first, _ = token()
    second, _ = token()
    assert submit(first, "left").vote_id == submit(first, "right").vote_id
    assert submit(first, "left").vote_id != submit(second, "left").vote_id
    assert submit(first, "left").vote_id != submit(first, "left", idempotency_key="k").vote_id


# -- ImportVotes: validation -----------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    vote_id: str
    cause_id: str = "c1"
    voter_id: str = "u1"
    winner_id: str = "p1"
    loser_id: str = "p2"
    tie: bool = False
    attributes: dict[str, str] = field(default_factory=dict)
    skip: bool = False
    untrusted: bool = False


def test_valid_votes_are_grouped_by_cause_in_batch_order() -> None:
    plan = plan_import([
        Imported("v0"),
        Imported("v1", cause_id="c2", winner_id="a", loser_id="b", voter_id="u9"),
        Imported("v2", winner_id="p3", loser_id="p1", tie=True),
    ])
    assert plan.rejections == []
    assert list(plan.causes) == ["c1", "c2"]
    c1, c2 = plan.causes["c1"], plan.causes["c2"]
    assert c1.packed == ["v0", "u1", "p1", "p2", "w", "-", "v2", "u1", "p3", "p1", "t", "-"]
    assert c1.positions == [0, 2]
    assert c2.packed == ["v1", "u9", "a", "b", "w", "-"] and c2.positions == [1]
    assert not c1.rejected and not c2.rejected


def test_declared_attributes_are_packed_as_codes_and_undeclared_ones_rejected() -> None:
    declared = {"c1": Declaration(("region", "age"), (("north", "south"), ("young", "old")))}
    plan = plan_import([
        Imported("v0", attributes={"age": "old"}),
        Imported("v1", attributes={"region": "south", "age": "young"}),
        Imported("v2", attributes={"region": "east"}),
        Imported("v3", attributes={"gender": "f"}),
        Imported("v4", cause_id="c2", attributes={"region": "north"}),
    ], declared)
    assert plan.causes["c1"].packed[5::6] == ["-1", "10"]
    assert [(r.position, r.code) for r in plan.rejections] == [
        (2, "invalid_attributes"), (3, "invalid_attributes"), (4, "invalid_attributes")]
    assert "'region' has no value 'east': allowed are north, south" in plan.rejections[0].detail
    assert "unknown attribute 'gender': this cause declares region, age" \
        in plan.rejections[1].detail
    assert "declares none" in plan.rejections[2].detail
    assert plan.causes["c1"].rejected == {"invalid_attributes": 2}


@pytest.mark.parametrize(("vote", "code"), [
    (Imported(""), "missing_vote_id"),
    (Imported("v 1"), "invalid_vote_id"),
    (Imported("v" * 129), "invalid_vote_id"),
    (Imported("v1", voter_id=""), "missing_voter_id"),
    (Imported("v1", voter_id="u/1"), "invalid_voter_id"),
    (Imported("v1", winner_id=""), "missing_winner_id"),
    (Imported("v1", winner_id="p" * 65), "invalid_winner_id"),
    (Imported("v1", loser_id=""), "missing_loser_id"),
    (Imported("v1", loser_id="p 2"), "invalid_loser_id"),
    (Imported("v1", winner_id="p1", loser_id="p1"), "same_proposal"),
    (Imported("v1", cause_id=""), "missing_cause_id"),
    (Imported("v1", cause_id="c:1"), "invalid_cause_id"),
    (Imported("v1", tie=True, skip=True), "tie_and_skip"),
])
def test_each_problem_has_its_own_code(vote: Imported, code: str) -> None:
    plan = plan_import([Imported("ok0"), vote, Imported("ok2")])
    [rejection] = plan.rejections
    assert (rejection.position, rejection.code) == (1, code)
    assert rejection.reason.startswith(f"{code}: ")
    # The batch's other votes are unaffected.
    assert plan.causes["c1"].positions == [0, 2]


def test_skips_and_untrusted_votes_are_packed_with_their_kind_and_flag() -> None:
    plan = plan_import([Imported("v0", skip=True), Imported("v1", untrusted=True),
                        Imported("v2", tie=True, untrusted=True),
                        Imported("v3", skip=True, untrusted=True)])
    assert plan.causes["c1"].packed[4::6] == ["s", "w0", "t0", "s0"]


def test_ids_at_their_length_limits_are_accepted() -> None:
    plan = plan_import([Imported("v" * 128, cause_id="c" * 64, voter_id="u" * 128,
                                 winner_id="w" * 64, loser_id="l" * 64)])
    assert plan.rejections == [] and plan.causes["c" * 64].positions == [0]


def test_a_known_voter_and_proposals_do_not_excuse_a_bad_vote_id() -> None:
    # The second and third votes repeat ids already found valid: their own flaws still count.
    plan = plan_import([Imported("v0"), Imported("bad id"), Imported("v2", loser_id="p1")])
    assert [(r.position, r.code) for r in plan.rejections] == [
        (1, "invalid_vote_id"), (2, "same_proposal")]


def test_rejections_of_an_existing_cause_are_counted_in_its_stats() -> None:
    plan = plan_import([Imported("v0"), Imported(""), Imported("v2", voter_id=""),
                        Imported("v3", voter_id="")])
    assert plan.causes["c1"].rejected == {"missing_vote_id": 1, "missing_voter_id": 2}


def test_every_vote_of_a_malformed_cause_is_rejected_with_its_own_position() -> None:
    plan = plan_import([Imported("v0", cause_id="bad cause"), Imported("v1"),
                        Imported("v2", cause_id="bad cause")])
    assert [(r.position, r.vote_id, r.code) for r in plan.rejections] == [
        (0, "v0", "invalid_cause_id"), (2, "v2", "invalid_cause_id")]
    assert list(plan.causes) == ["c1"]


def test_a_huge_rejected_vote_id_is_echoed_shortened() -> None:
    plan = plan_import([Imported("x" * 10_000)])
    assert plan.rejections[0].vote_id == "x" * 128


# -- ImportVotes: what the store found -------------------------------------------------------


def test_store_outcomes_become_counts_and_rejections_in_batch_order() -> None:
    plan = plan_import([
        Imported("v0"),                                # accepted
        Imported("v1", cause_id="gone"),               # its cause does not exist
        Imported("v2"),                                # a duplicate
        Imported("v3", winner_id="p9"),                # winner not in the cause
        Imported("", cause_id="c1"),                   # rejected by validation
        Imported("v5", loser_id="p8"),                 # loser not in the cause
        Imported("v6", cause_id="gone"),
    ])

    result = settle(plan, {"c1": "adwl", "gone": None}, first_index=0)

    assert (result.accepted, result.duplicates) == (1, 1)
    assert [(r.position, r.vote_id, r.code) for r in result.rejections] == [
        (1, "v1", "unknown_cause"), (3, "v3", "unknown_proposal"),
        (4, "", "missing_vote_id"), (5, "v5", "unknown_proposal"),
        (6, "v6", "unknown_cause")]
    details = {r.vote_id: r.detail for r in result.rejections}
    assert "winner_id 'p9'" in details["v3"] and "'c1'" in details["v3"]
    assert "loser_id 'p8'" in details["v5"]
    assert "'gone' does not exist" in details["v1"]


def test_a_vote_id_reused_for_another_vote_is_rejected_saying_what_differs() -> None:
    plan = plan_import([Imported("v0"), Imported("v1"), Imported("v2"), Imported("v3")])
    result = settle(plan, {"c1": "dupc"}, first_index=0)
    assert (result.accepted, result.duplicates) == (0, 1)
    assert [(r.position, r.code) for r in result.rejections] == [
        (1, "vote_id_reused"), (2, "vote_id_reused"), (3, "vote_id_reused")]
    details = [r.detail for r in result.rejections]
    assert "'v1'" in details[0] and "another voter_id" in details[0]
    assert "other proposals" in details[1] and "another outcome" in details[2]
    assert all("new vote_id" in detail for detail in details)


def test_a_reused_idempotency_key_is_already_exists_naming_the_key_and_the_field() -> None:
    wire, _ = token()
    keyed = submit(wire, "left", idempotency_key="click-7")
    error = keyed.reused_error("c")
    assert isinstance(error, AlreadyExists)
    assert "idempotency_key 'click-7'" in str(error) and "another outcome" in str(error)
    assert "prompt_token" in str(submit(wire, "skip").reused_error("r"))


def test_positions_count_from_the_start_of_the_whole_stream() -> None:
    # The third message of a stream, after 500 votes in the first two.
    plan = plan_import([Imported("v0"), Imported("v1", winner_id="p9")])
    result = settle(plan, {"c1": "aw"}, first_index=500)
    assert [(r.position, r.code) for r in result.rejections] == [(501, "unknown_proposal")]


def test_an_all_accepted_batch_has_no_rejections() -> None:
    plan = ImportPlan({"c1": CauseImport("c1", ["v0", "u", "a", "b", "w"], [0])}, [])
    assert settle(plan, {"c1": "a"}, first_index=0) == votes.ImportResult(1, 0, [])
    assert settle(plan, {"c1": "d"}, first_index=7) == votes.ImportResult(0, 1, [])


def test_a_rejection_reads_as_code_then_detail() -> None:
    assert Rejection(3, "v3", "same_proposal", "both 'p1'").reason == "same_proposal: both 'p1'"
