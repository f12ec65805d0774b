"""Voter attributes: declarations only grow, votes are coded by position, margins are
checked against the declaration, and the log's g field decodes (or is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from pairwise import vote_log
from pairwise.errors import FailedPrecondition, InvalidArgument
from pairwise.voter_attributes import (
    UNKNOWN_CODE,
    Declaration,
    check_declaration,
    check_margins,
    decode_codes,
)

DECLARED = Declaration(("region", "age"), (("north", "south", "east"), ("young", "old")))


def test_attributes_are_coded_by_position_and_unknown_ones_by_a_dash() -> None:
    assert DECLARED.encode({}) == "-"
    assert DECLARED.encode({"region": "east"}) == "2"
    assert DECLARED.encode({"age": "old"}) == "-1"
    assert DECLARED.encode({"age": "young", "region": "south"}) == "10"
    rows = decode_codes([b"-", b"2", b"-1", b"10", b"zz"])
    assert rows.shape == (5, 8)
    assert rows[:, :2].tolist() == [[255, 255], [2, 255], [255, 1], [1, 0], [255, 255]]
    assert (rows[:, 2:] == UNKNOWN_CODE).all()


@pytest.mark.parametrize(("attributes", "message"), [
    ({"planet": "mars"}, "attributes: unknown attribute 'planet': this cause declares "
                         "region, age"),
    ({"region": "west"}, "attributes: attribute 'region' has no value 'west': allowed are "
                         "north, south, east"),
    ({f"k{k}": "v" for k in range(9)}, "attributes: at most 8 attributes, got 9"),
])
def test_undeclared_attributes_are_refused_by_name(attributes: dict[str, str],
                                                   message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        DECLARED.encode(attributes)
    assert str(info.value) == message


def test_a_declaration_may_grow_but_never_lose_or_reorder() -> None:
    grown = check_declaration([("region", ["north", "south", "east", "west"]),
                               ("age", ["young", "old"]), ("gender", ["f", "m"])], DECLARED)
    assert grown.position("region", "west") == (0, 3)
    assert grown.encode({"region": "south"}) == DECLARED.encode({"region": "south"})
    for shrunk in ([("region", ["north", "south", "east"])],
                   [("region", ["south", "north", "east"]), ("age", ["young", "old"])],
                   [("age", ["young", "old"]), ("region", ["north", "south", "east"])]):
        with pytest.raises(FailedPrecondition):
            check_declaration(shrunk, DECLARED)
    assert Declaration.from_json(grown.to_json()) == grown


@pytest.mark.parametrize(("pairs", "field"), [
    ([("bad key", ["a"])], "attributes[0].key"),
    ([("k", [])], "attributes[0].values"),
    ([("k", ["a", "a"])], "attributes[0].values"),
    ([("k", [f"v{n}" for n in range(33)])], "attributes[0].values"),
    ([("k", ["a"]), ("k", ["b"])], "attributes[1].key"),
    ([("k", ["x" * 33])], "attributes[0].values"),
    ([(f"k{n}", ["a"]) for n in range(9)], "attributes"),
])
def test_malformed_declarations_name_their_field(pairs: list, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_declaration(pairs, Declaration())
    assert info.value.field == field


def test_margins_list_every_declared_value_and_must_sum_to_one() -> None:
    margins = check_margins([("region", {"north": 0.5, "south": 0.5})], DECLARED)
    assert margins == {"region": {"north": 0.5, "south": 0.5, "east": 0.0}}
    assert check_margins([("age", {"young": 0.3, "old": 0.7 + 5e-7})], DECLARED)
    for pairs, words in [
        ([("region", {"north": 0.6, "south": 0.6})], "must sum to 1"),
        ([("region", {"north": float("nan"), "south": 1.0})], "must be in [0, 1]"),
        ([("region", {"north": -0.1, "south": 1.1})], "must be in [0, 1]"),
        ([("region", {"north": 1.0, "mars": 0.0})], "has no value 'mars'"),
        ([("income", {"low": 1.0})], "unknown attribute 'income'"),
        ([("age", {"young": 1.0}), ("age", {"old": 1.0})], "given twice"),
    ]:
        with pytest.raises(InvalidArgument) as info:
            check_margins(pairs, DECLARED)
        assert words in str(info.value), pairs


def test_entries_decode_their_attributes_and_old_entries_have_none() -> None:
    old = vote_log.batch_fields("wt", [0, 1], [1, 2], ["v1", "v2"], ["u", "u"])
    new = dict(vote_log.batch_fields("ww", [2, 3], [3, 4], ["v3", "v4"], ["u", "w"]),
               g="1 -0")
    entries = [(b"1-0", {k.encode(): v.encode() for k, v in old.items()}),
               (b"2-0", {k.encode(): v.encode() for k, v in new.items()})]
    assert vote_log.decode_entries(entries[:1], "", 10).attributes is None
    decoded = vote_log.decode_entries(entries, "", 10)
    assert decoded.attributes is not None
    assert decoded.attributes[:, :2].tolist() == [[255, 255], [255, 255], [1, 255], [255, 0]]
    assert [v.attributes for v in vote_log.votes_of(entries[1][1])] == ["1", "-0"]
    # A vote dropped as malformed takes its attributes with it.
    bad = dict(new, a="2 9")
    decoded = vote_log.decode_entries([(b"3-0", {k.encode(): v.encode()
                                                 for k, v in bad.items()})], "", 5)
    assert len(decoded.kinds) == 1 and decoded.attributes is not None
    assert decoded.attributes[:, :2].tolist() == [[1, 255]]
    assert np.array_equal(decoded.a, [2])
