"""A cause's default ranking view: the view GetRanking and WatchRanking serve when a request
leaves `view` unset.

It is kept in the cause's hash as two fields, `default_view` ("RAW", "REPRESENTATIVE" or
"CONSENSUS"; absent: RAW) and `default_view_attribute` (a declared key, or empty). The raw
view stays the default until the admin chooses another. Attributes are never removed or
reordered once declared, so an attribute valid when chosen stays valid. A representative
default may be chosen before the population margins are set: its reads are then refused as
an explicit representative read is (FAILED_PRECONDITION, naming what is missing).
"""

from __future__ import annotations

from collections.abc import Sequence

from pairwise.errors import InvalidArgument
from pairwise.v1 import types_pb2

FIELD = "default_view"
ATTRIBUTE_FIELD = "default_view_attribute"

RAW, REPRESENTATIVE, CONSENSUS = "RAW", "REPRESENTATIVE", "CONSENSUS"
_FROM_PROTO: dict[int, str] = {
    types_pb2.RANKING_VIEW_UNSPECIFIED: RAW, types_pb2.RANKING_VIEW_RAW: RAW,
    types_pb2.RANKING_VIEW_REPRESENTATIVE: REPRESENTATIVE,
    types_pb2.RANKING_VIEW_CONSENSUS: CONSENSUS}
TO_PROTO: dict[str, types_pb2.RankingView] = {
    RAW: types_pb2.RANKING_VIEW_RAW, REPRESENTATIVE: types_pb2.RANKING_VIEW_REPRESENTATIVE,
    CONSENSUS: types_pb2.RANKING_VIEW_CONSENSUS}


def check_syntax(view: int, attribute: str) -> None:
    """InvalidArgument for a request's view that no cause could take: an unknown view, or an
    attribute with the raw view (checked before the cause is looked up)."""
    name = _FROM_PROTO.get(view)
    if name is None:
        raise InvalidArgument("view", f"unknown view {view}")
    if name == RAW and attribute:
        raise InvalidArgument("view_attribute", "the raw view takes no attribute")


def check_default_view(view: int, attribute: str, declared_keys: Sequence[str],
                       ) -> tuple[str, str]:
    """The default view (name, attribute) that `view` and `attribute` choose, for a cause
    declaring `declared_keys`. A consensus names its attribute (the first declared when
    `attribute` is empty). InvalidArgument for an unknown view, an attribute with the raw
    view, an undeclared attribute, or a consensus on a cause declaring none."""
    check_syntax(view, attribute)
    name = _FROM_PROTO[view]
    if name == RAW:
        return RAW, ""
    if attribute and attribute not in declared_keys:
        raise InvalidArgument("view_attribute", f"unknown attribute {attribute[:40]!r}: this "
                              f"cause declares {', '.join(declared_keys) or 'none'}")
    if name == CONSENSUS:
        if not declared_keys:
            raise InvalidArgument("view", "a consensus is taken across a declared attribute: "
                                  "this cause declares none yet (SetVoterAttributes)")
        return CONSENSUS, attribute or declared_keys[0]
    return REPRESENTATIVE, attribute


def stored_default_view(view: bytes | str | None, attribute: bytes | str | None,
                        ) -> tuple[str, str]:
    """The default view kept in the cause's hash fields (RAW when none was chosen)."""
    name = _text(view) or RAW
    return (name if name in TO_PROTO else RAW), _text(attribute)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
