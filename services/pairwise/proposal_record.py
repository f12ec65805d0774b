"""The stored record of one proposal: written by the gateway, read by the gateway and ranker.

Each cause's `keys.proposals` hash maps a proposal_id to one JSON object:
    text           the proposal as submitted
    author_id      who submitted it ("" when unknown)
    status         "PENDING", "ACCEPTED" or "REJECTED"
    reason         the moderator's reason for the last status change ("" when none)
    index          its position in creation order (0, 1, 2, ...), the integer the vote log
                   names it by
    created_at_ms  Unix time of its creation, in milliseconds

The gateway's catalog scripts assign `index` in Lua (cjson) when they store a new record, and
rewrite `status` and `reason` on moderation; every other field is written once, here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProposalRecord:
    text: str
    author_id: str
    status: str
    reason: str
    index: int
    created_at_ms: int


def encode_new(text: str, author_id: str, status: str, created_at_ms: int) -> str:
    """The JSON record of a new proposal, without `index` (the storing script adds it)."""
    return json.dumps({"text": text, "author_id": author_id, "status": status, "reason": "",
                       "created_at_ms": created_at_ms})


def decode(record: bytes | str) -> ProposalRecord:
    """The record stored for one proposal. Raises ValueError when it is not such a record."""
    try:
        fields = json.loads(record)
        return ProposalRecord(text=str(fields["text"]), author_id=str(fields["author_id"]),
                              status=str(fields["status"]), reason=str(fields["reason"]),
                              index=int(fields["index"]),
                              created_at_ms=int(fields["created_at_ms"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a proposal record: {record[:80]!r}") from exc
