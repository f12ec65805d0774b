"""The catalog of a cause: its proposals, their moderation status, and the rules for both."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pairwise import proposal_record
from pairwise.errors import AlreadyExists, InvalidArgument
from pairwise.ids import id_or_new
from pairwise.voter_attributes import Declaration

MAX_TITLE_CHARS = 500
MAX_TEXT_CHARS = 2000
MAX_AUTHOR_CHARS = 128
MAX_REASON_CHARS = 500
MAX_PROPOSALS_PER_CALL = 1000
# Adaptive selection sharpens the top `top_k` proposals and their order; a platform
# retains about ten, and more than a thousand is no longer "the top" of any consultation.
DEFAULT_TOP_K = 10
MAX_TOP_K = 1000
# A proposal with fewer counted votes than this is a newcomer, shown first by adaptive
# selection; Make.org's sequences favour proposals under 10 votes the same way.
DEFAULT_NEWCOMER_VOTES = 10


class Status(StrEnum):
    """Moderation status of a proposal, as stored in its Redis record."""

    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


class PairSelection(StrEnum):
    """How NextPair chooses a cause's pairs, as stored in its cause hash."""

    UNIFORM = "UNIFORM"
    ADAPTIVE = "ADAPTIVE"


@dataclass(frozen=True, slots=True)
class Cause:
    """One consultation question; the counts are proposals by status at read time.

    `pair_selection` and `top_k` say how its pairs are chosen; `newcomer_votes` is the vote
    count under which adaptive selection treats a proposal as new (fixed at creation).
    `voter_attributes` are what its voters may declare (pairwise.voter_attributes).
    `default_view` and its attribute: the ranking view served by default.
    """

    cause_id: str
    title: str
    auto_accept: bool
    created_at_ms: int
    pair_selection: PairSelection = PairSelection.UNIFORM
    top_k: int = DEFAULT_TOP_K
    newcomer_votes: int = DEFAULT_NEWCOMER_VOTES
    voter_attributes: Declaration = Declaration()
    # The ranking view served when a read leaves it unset (gateway.default_view).
    default_view: str = "RAW"
    default_view_attribute: str = ""
    accepted: int = 0
    pending: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class NewProposal:
    """A validated proposal about to be added (its id already chosen or generated)."""

    proposal_id: str
    text: str
    author_id: str


@dataclass(frozen=True, slots=True)
class Proposal:
    """A stored proposal. `index` is its position in creation order (0, 1, 2, ...), the
    integer the vote log and the ranker use for it."""

    proposal_id: str
    text: str
    author_id: str
    status: Status
    reason: str
    index: int
    created_at_ms: int

    @classmethod
    def from_record(cls, proposal_id: str, record: bytes | str) -> Proposal:
        """The proposal whose stored record (pairwise.proposal_record) is `record`."""
        return _decoded(proposal_id, record)


# Every pair shown decodes two records, and the same proposals come back again and again:
# decoding one costs ~20-40 us, finding it here under 1 us. The whole record is the key, so a
# moderated proposal (its status and reason changed) is decoded anew. ~1 KB an entry.
_DECODED_MAX = 16_384


@functools.lru_cache(maxsize=_DECODED_MAX)
def _decoded(proposal_id: str, record: bytes | str) -> Proposal:
    stored = proposal_record.decode(record)
    return Proposal(proposal_id=proposal_id, text=stored.text, author_id=stored.author_id,
                    status=Status(stored.status), reason=stored.reason, index=stored.index,
                    created_at_ms=stored.created_at_ms)


def check_title(title: str) -> str:
    """`title` if non-blank and at most MAX_TITLE_CHARS characters, else InvalidArgument."""
    if not title.strip():
        raise InvalidArgument("title", "is required")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidArgument("title", f"must be at most {MAX_TITLE_CHARS} characters, "
                                       f"got {len(title)}")
    return title


def check_top_k(top_k: int) -> int | None:
    """`top_k` if within 1..MAX_TOP_K, None for 0 (not given), else InvalidArgument."""
    if top_k == 0:
        return None
    if not 1 <= top_k <= MAX_TOP_K:
        raise InvalidArgument("top_k", f"must be between 1 and {MAX_TOP_K} (0: not given), "
                                       f"got {top_k}")
    return top_k


def check_new_proposals(items: Sequence[tuple[str, str, str]]) -> list[NewProposal]:
    """Validate `(proposal_id, text, author_id)` triples, generating empty ids.

    Raises InvalidArgument naming the offending field (e.g. ``proposals[3].text``), or, once
    every field is well-formed, AlreadyExists naming an id given twice in the request.
    """
    if not 1 <= len(items) <= MAX_PROPOSALS_PER_CALL:
        raise InvalidArgument("proposals", f"must hold 1 to {MAX_PROPOSALS_PER_CALL} "
                                           f"proposals, got {len(items)}")
    out: list[NewProposal] = []
    for i, (proposal_id, text, author_id) in enumerate(items):
        field = f"proposals[{i}]"
        proposal_id = id_or_new(f"{field}.proposal_id", proposal_id)
        if not text.strip():
            raise InvalidArgument(f"{field}.text", "is required")
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidArgument(f"{field}.text", f"must be at most {MAX_TEXT_CHARS} "
                                                   f"characters, got {len(text)}")
        if len(author_id) > MAX_AUTHOR_CHARS:
            raise InvalidArgument(f"{field}.author_id",
                                  f"must be at most {MAX_AUTHOR_CHARS} characters")
        out.append(NewProposal(proposal_id, text, author_id))
    seen: set[str] = set()
    for proposal in out:
        if proposal.proposal_id in seen:
            raise AlreadyExists(f"proposal_id {proposal.proposal_id!r} appears more than "
                                "once in the request")
        seen.add(proposal.proposal_id)
    return out


def initial_status(by_admin: bool, auto_accept: bool) -> Status:
    """Organisers' proposals are accepted at once; citizens' wait for moderation unless the
    cause auto-accepts."""
    return Status.ACCEPTED if by_admin or auto_accept else Status.PENDING


def check_moderation(status: Status | None, reason: str) -> tuple[Status, str]:
    """A moderation decision must be ACCEPTED or REJECTED, with a reason of bounded length."""
    if status not in (Status.ACCEPTED, Status.REJECTED):
        raise InvalidArgument("status", "must be PROPOSAL_STATUS_ACCEPTED or "
                                        "PROPOSAL_STATUS_REJECTED")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgument("reason", f"must be at most {MAX_REASON_CHARS} characters")
    return status, reason
