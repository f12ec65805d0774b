"""Client-chosen identifiers: their syntax, and generation when the client leaves them empty."""

from __future__ import annotations

import re
import uuid

from pairwise.errors import InvalidArgument

ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
VOTE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
VOTER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")


def check_id(field: str, value: str, *, pattern: re.Pattern[str] = ID_PATTERN) -> str:
    """Return `value` if it matches `pattern`, else raise InvalidArgument naming `field`."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not pattern.fullmatch(value):
        raise InvalidArgument(field, f"must match {pattern.pattern}, got {value[:80]!r}")
    return value


def id_or_new(field: str, value: str) -> str:
    """A client-chosen id, validated, or a fresh random one when `value` is empty."""
    return check_id(field, value) if value else uuid.uuid4().hex
