"""A cause's catalog rules: which ids, titles and proposal texts are accepted, what status a
new proposal gets, what a moderation decision may say, which top_k a cause may have."""

from __future__ import annotations

import re

import pytest

from gateway.catalog import (
    NewProposal,
    Status,
    check_moderation,
    check_new_proposals,
    check_title,
    check_top_k,
    initial_status,
)
from pairwise.errors import AlreadyExists, InvalidArgument
from pairwise.ids import check_id

GOOD_IDS = ["p1", "A", "proposition-12", "v2.0_final", ".", "-", "_", "x" * 64]
BAD_IDS = ["x" * 65, "p 1", "p/1", "p:1", "p|1", "p@1", "é", "p\n", " p"]


def field_of(exc: pytest.ExceptionInfo[InvalidArgument]) -> str:
    return exc.value.field


@pytest.mark.parametrize("proposal_id", GOOD_IDS)
def test_ids_of_letters_digits_dot_dash_underscore_up_to_64_are_accepted(
        proposal_id: str) -> None:
    assert check_id("cause_id", proposal_id) == proposal_id
    [new] = check_new_proposals([(proposal_id, "texte", "")])
    assert new.proposal_id == proposal_id


@pytest.mark.parametrize("proposal_id", BAD_IDS)
def test_other_ids_are_refused_naming_the_field_and_the_rule(proposal_id: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_id("cause_id", proposal_id)
    assert field_of(caught) == "cause_id"
    assert "[A-Za-z0-9_.-]{1,64}" in str(caught.value)
    with pytest.raises(InvalidArgument) as caught:
        check_new_proposals([("ok", "texte", ""), (proposal_id, "texte", "")])
    assert field_of(caught) == "proposals[1].proposal_id"


def test_an_empty_cause_id_is_required() -> None:
    with pytest.raises(InvalidArgument, match="cause_id: is required"):
        check_id("cause_id", "")


def test_proposals_without_an_id_get_distinct_valid_ones() -> None:
    made = check_new_proposals([("", "un", ""), ("", "deux", ""), ("mine", "trois", "")])
    ids = [p.proposal_id for p in made]
    assert ids[2] == "mine" and len(set(ids)) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", i) for i in ids)


def test_an_id_given_twice_in_one_request_already_exists() -> None:
    with pytest.raises(AlreadyExists, match="'p1' appears more than once"):
        check_new_proposals([("p1", "un", ""), ("p2", "deux", ""), ("p1", "trois", "")])


def test_a_malformed_field_is_named_before_an_id_given_twice() -> None:
    """Every field is checked first: the request is malformed whatever ids it repeats."""
    with pytest.raises(InvalidArgument, match=r"^proposals\[1\]\.text: "):
        check_new_proposals([("p1", "a", ""), ("p1", " ", "")])


def test_proposal_texts_are_required_and_bounded() -> None:
    assert check_new_proposals([("p", "é" * 2000, "")])[0].text == "é" * 2000
    for text in ("", "   \n\t"):
        with pytest.raises(InvalidArgument) as caught:
            check_new_proposals([("p0", "ok", ""), ("p1", text, "")])
        assert field_of(caught) == "proposals[1].text"
    with pytest.raises(InvalidArgument, match="at most 2000 characters, got 2001") as caught:
        check_new_proposals([("p", "x" * 2001, "")])
    assert field_of(caught) == "proposals[0].text"


def test_authors_are_optional_and_bounded() -> None:
    assert check_new_proposals([("p", "t", "")]) == [NewProposal("p", "t", "")]
    assert check_new_proposals([("p", "t", "a" * 128)])[0].author_id == "a" * 128
    with pytest.raises(InvalidArgument) as caught:
        check_new_proposals([("p", "t", "a" * 129)])
    assert field_of(caught) == "proposals[0].author_id"


def test_a_request_adds_1_to_1000_proposals() -> None:
    assert len(check_new_proposals([(f"p{i}", "t", "") for i in range(1000)])) == 1000
    for n in (0, 1001):
        with pytest.raises(InvalidArgument, match=f"1 to 1000 proposals, got {n}") as caught:
            check_new_proposals([(f"p{i}", "t", "") for i in range(n)])
        assert field_of(caught) == "proposals"


def test_titles_are_required_and_bounded() -> None:
    assert check_title("Comment lutter contre les violences ?") == (
        "Comment lutter contre les violences ?")
    assert check_title("x" * 500) == "x" * 500
    for title in ("", "  "):
        with pytest.raises(InvalidArgument, match="title: is required"):
            check_title(title)
    with pytest.raises(InvalidArgument, match="at most 500 characters, got 501"):
        check_title("x" * 501)


@pytest.mark.parametrize(("by_admin", "auto_accept", "status"), [
    (True, False, Status.ACCEPTED),    # organisers' proposals need no moderation
    (True, True, Status.ACCEPTED),
    (False, True, Status.ACCEPTED),    # a cause that trusts citizens' proposals
    (False, False, Status.PENDING),    # otherwise they wait for a moderator
])
def test_the_status_of_a_new_proposal(by_admin: bool, auto_accept: bool,
                                      status: Status) -> None:
    assert initial_status(by_admin, auto_accept) is status


def test_a_moderation_decision_accepts_or_rejects_with_a_bounded_reason() -> None:
    assert check_moderation(Status.ACCEPTED, "") == (Status.ACCEPTED, "")
    assert check_moderation(Status.REJECTED, "hors sujet" + "!" * 490) == (
        Status.REJECTED, "hors sujet" + "!" * 490)
    for status in (Status.PENDING, None):
        with pytest.raises(InvalidArgument) as caught:
            check_moderation(status, "")
        assert field_of(caught) == "status"
    with pytest.raises(InvalidArgument) as caught:
        check_moderation(Status.REJECTED, "x" * 501)
    assert field_of(caught) == "reason"


@pytest.mark.parametrize("top_k", [1, 10, 999, 1000])
def test_top_k_from_1_to_1000_is_kept(top_k: int) -> None:
    assert check_top_k(top_k) == top_k


def test_top_k_0_means_not_given() -> None:
    assert check_top_k(0) is None


@pytest.mark.parametrize("top_k", [-1, 1001, 34_000, -(2**63)])
def test_other_top_k_are_refused_naming_the_field(top_k: int) -> None:
    with pytest.raises(InvalidArgument) as exc:
        check_top_k(top_k)
    assert field_of(exc) == "top_k"
    assert "between 1 and 1000" in str(exc.value)
