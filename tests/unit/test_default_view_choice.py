"""Choosing a cause's default ranking view: which choices a cause can take, what is kept, and
what a cause that never chose serves."""

from __future__ import annotations

import pytest

from gateway import default_view
from gateway.default_view import CONSENSUS, RAW, REPRESENTATIVE
from pairwise.errors import InvalidArgument
from pairwise.v1 import types_pb2

DECLARED = ("region", "age")


@pytest.mark.parametrize(("view", "attribute", "declared", "chosen"), [
    (types_pb2.RANKING_VIEW_UNSPECIFIED, "", DECLARED, (RAW, "")),
    (types_pb2.RANKING_VIEW_RAW, "", (), (RAW, "")),
    # Margins are not needed to choose it (its reads wait for them); attributes neither.
    (types_pb2.RANKING_VIEW_REPRESENTATIVE, "", (), (REPRESENTATIVE, "")),
    (types_pb2.RANKING_VIEW_REPRESENTATIVE, "age", DECLARED, (REPRESENTATIVE, "age")),
    # A consensus keeps the attribute it is taken across: the first declared by default.
    (types_pb2.RANKING_VIEW_CONSENSUS, "", DECLARED, (CONSENSUS, "region")),
    (types_pb2.RANKING_VIEW_CONSENSUS, "age", DECLARED, (CONSENSUS, "age")),
])
def test_a_choice_the_cause_can_take(view, attribute, declared, chosen):
    assert default_view.check_default_view(view, attribute, declared) == chosen


@pytest.mark.parametrize(("view", "attribute", "declared", "field", "words"), [
    (7, "", DECLARED, "view", "unknown view 7"),
    (-1, "", DECLARED, "view", "unknown view"),
    (types_pb2.RANKING_VIEW_RAW, "region", DECLARED, "view_attribute", "no attribute"),
    (types_pb2.RANKING_VIEW_UNSPECIFIED, "region", DECLARED, "view_attribute", "no attribute"),
    (types_pb2.RANKING_VIEW_CONSENSUS, "", (), "view", "declares none"),
    (types_pb2.RANKING_VIEW_CONSENSUS, "income", DECLARED, "view_attribute",
     "unknown attribute 'income': this cause declares region, age"),
    (types_pb2.RANKING_VIEW_REPRESENTATIVE, "income", (), "view_attribute",
     "this cause declares none"),
])
def test_a_choice_refused_names_its_field(view, attribute, declared, field, words):
    with pytest.raises(InvalidArgument) as refused:
        default_view.check_default_view(view, attribute, declared)
    assert refused.value.field == field and words in str(refused.value)


def test_a_cause_that_never_chose_serves_the_raw_view():
    assert default_view.stored_default_view(None, None) == (RAW, "")
    assert default_view.stored_default_view(b"CONSENSUS", b"region") == (CONSENSUS, "region")
    assert default_view.stored_default_view("REPRESENTATIVE", "") == (REPRESENTATIVE, "")
    # What no release wrote is read as raw rather than refused on every read.
    assert default_view.stored_default_view(b"WEIGHTED", b"") == (RAW, "")
    assert {default_view.TO_PROTO[name] for name in (RAW, REPRESENTATIVE, CONSENSUS)} == {
        types_pb2.RANKING_VIEW_RAW, types_pb2.RANKING_VIEW_REPRESENTATIVE,
        types_pb2.RANKING_VIEW_CONSENSUS}
