"""Client-chosen identifiers: their syntax, and generation when the client leaves them empty;
and the syntax of the Redis stream entry ids clients page and export by."""

from __future__ import annotations

import re
import uuid

from pairwise.errors import InvalidArgument

ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
VOTE_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
VOTER_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
# A stream entry id: milliseconds and a sequence number, each an unsigned 64-bit integer
# (Redis refuses a larger one with an error of its own).
_ENTRY_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_U64 = 2**64 - 1
# The largest entry id: no entry comes after it.
LAST_ENTRY_ID = f"{_MAX_U64}-{_MAX_U64}"


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


def is_entry_id(value: str) -> bool:
    """Whether `value` is a stream entry id Redis accepts ("<ms>-<seq>")."""
    match = _ENTRY_ID.fullmatch(value)
    return match is not None and max(map(int, match.groups())) <= _MAX_U64
