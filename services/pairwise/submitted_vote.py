"""The fields of a SubmitVote that need no lookup to judge, and their limits.

Checked where a vote enters — the gateway, before concurrent votes travel to ingest in one
call (one oversized field must not fail the other voters' call, and a malformed vote is
INVALID_ARGUMENT whatever its cause), and ingest, for its own callers — so each field is
refused by name with INVALID_ARGUMENT, never by a message-size error that names nothing.
"""

from __future__ import annotations

from typing import Literal

from pairwise import prompt_token, vote_log
from pairwise.errors import InvalidArgument
from pairwise.v1 import types_pb2

MAX_SKIP_REASON = 64
MAX_IDEMPOTENCY_KEY = 128

Choice = Literal["left", "right", "tie", "skip"]
CHOICES: tuple[Choice, ...] = ("left", "right", "tie", "skip")
# The wire's Choice enum by name; CHOICE_UNSPECIFIED (and unknown values) map to "".
CHOICE_NAMES: dict[int, Choice] = {
    types_pb2.CHOICE_LEFT: "left",
    types_pb2.CHOICE_RIGHT: "right",
    types_pb2.CHOICE_TIE: "tie",
    types_pb2.CHOICE_SKIP: "skip",
}


# The wire's SkipReason enum, by value, as the vote log names it.
SKIP_REASON_CODES: dict[int, str] = dict(enumerate(vote_log.SKIP_REASON_CODES))
# ... and back: the vote log's codes by the enum's full names (proto fields take those).
SKIP_REASON_NAMES: dict[str, str] = {code: types_pb2.SkipReason.Name(value)
                                     for value, code in SKIP_REASON_CODES.items()}


def skip_reason_code(code: int, text: str) -> str:
    """The vote-log code of a skip's reason: the enum's, else "other" for free text alone,
    else "unspecified"."""
    if code == types_pb2.SKIP_REASON_UNSPECIFIED and text:
        return "other"
    return SKIP_REASON_CODES[code]


def check_fields(*, choice: str, skip_reason: str, idempotency_key: str,
                 prompt_token_wire: str, skip_reason_code: int = 0) -> None:
    """Raise InvalidArgument naming the first malformed field. `choice` is one of CHOICES,
    or "" when the client left it unspecified (CHOICE_NAMES.get(enum, ""));
    `skip_reason_code` a SkipReason value."""
    if choice not in CHOICES:
        raise InvalidArgument(
            "choice", "is required: CHOICE_LEFT, CHOICE_RIGHT, CHOICE_TIE or CHOICE_SKIP")
    if skip_reason_code not in SKIP_REASON_CODES:
        raise InvalidArgument("skip_reason_code", f"is not a SkipReason ({skip_reason_code})")
    if skip_reason_code and choice != "skip":
        raise InvalidArgument("skip_reason_code", "is only allowed with choice CHOICE_SKIP")
    if skip_reason and choice != "skip":
        raise InvalidArgument("skip_reason", "is only allowed with choice CHOICE_SKIP")
    if len(skip_reason) > MAX_SKIP_REASON:
        raise InvalidArgument("skip_reason", f"must be at most {MAX_SKIP_REASON} characters")
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument("idempotency_key",
                              f"must be at most {MAX_IDEMPOTENCY_KEY} characters")
    if not prompt_token_wire:
        raise InvalidArgument("prompt_token", "is required")
    prompt_token.check_length(prompt_token_wire)
