"""The free-form fields of a SubmitVote and their limits.

Checked where a vote enters — the gateway, before concurrent votes travel to ingest in one
call (one oversized field must not fail the other voters' call), and ingest, for its own
callers — so each field is refused by name with INVALID_ARGUMENT, never by a message-size
error that names nothing.
"""

from __future__ import annotations

from pairwise import prompt_token
from pairwise.errors import InvalidArgument

MAX_SKIP_REASON = 64
MAX_IDEMPOTENCY_KEY = 128


def check_lengths(*, prompt_token_wire: str, skip_reason: str, idempotency_key: str) -> None:
    """Raise InvalidArgument naming the first field longer than its limit."""
    prompt_token.check_length(prompt_token_wire)
    if len(skip_reason) > MAX_SKIP_REASON:
        raise InvalidArgument("skip_reason", f"must be at most {MAX_SKIP_REASON} characters")
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument("idempotency_key",
                              f"must be at most {MAX_IDEMPOTENCY_KEY} characters")
