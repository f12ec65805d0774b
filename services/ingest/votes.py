"""Votes as ingest sees them: interactive votes shaped for the log, imported votes validated.

Pure domain code: no grpc, no redis. Errors are `pairwise.errors`; per-vote problems of an
import are `Rejection`s with a machine-readable code, never exceptions.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pairwise import cause_life, prompt_token, submitted_vote, vote_log
from pairwise.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from pairwise.ids import ID_PATTERN, VOTE_ID_PATTERN, VOTER_ID_PATTERN, check_id
from pairwise.voter_attributes import NO_ATTRIBUTES, Declaration

# A consumed prompt nonce is remembered this long past the token's expiry, so that ingest
# replicas whose clocks run slightly behind still see it as used.
NONCE_GRACE_MS = 60_000
# VoteError.vote_id echoes at most this much of a rejected, possibly huge, client value.
_ECHO_CHARS = 128

# Per-vote outcome codes of a cause's import, as the vote store reports them (one character
# per vote, in the order of CauseImport.packed), or a REUSED_AS code.
ACCEPTED = "a"
DUPLICATE = "d"
UNKNOWN_WINNER = "w"
UNKNOWN_LOSER = "l"
# The store's outcome for a cause not OPEN, before its state (nothing of it written).
NOT_OPEN = "!"
# The rejection code of an imported vote whose attributes the cause does not declare.
INVALID_ATTRIBUTES = "invalid_attributes"

# How a request reusing a vote's id differs from the vote recorded under it, as the vote
# store's one comparison (vote_store.SAME_VOTE_LUA) names it. A retry must repeat its request
# exactly, as payment APIs ask of an idempotency key: anything else is a client bug to report,
# not a duplicate to answer with another vote's receipt.
REUSED_AS = {
    "u": "another voter_id",
    "p": "other proposals",
    "c": "another outcome",
    "r": "another skip_reason",
}


@dataclass(frozen=True, slots=True)
class InteractiveVote:
    """One verified SubmitVote, ready for the log.

    `a_id`/`b_id` are proposal ids in vote-log order: winner then loser for kind "w", left then
    right for "t" and "s". `nonce_ttl_ms` is how long the token's nonce must stay consumed.
    """

    vote_id: str
    cause_id: str
    voter_id: str
    kind: vote_log.Kind
    a_id: str
    b_id: str
    skip_reason: str
    trusted: bool
    nonce: str
    nonce_ttl_ms: int
    idempotency_key: str = ""
    # The error to answer when no vote was recorded under `vote_id` (the token expired);
    # None while the token is valid. A retry of a recorded vote still gets its receipt.
    expired: FailedPrecondition | None = None
    # The voter's declared attributes as the log codes them (pairwise.voter_attributes).
    attributes: str = NO_ATTRIBUTES

    def reused_error(self, difference: str) -> AlreadyExists:
        """The error of a request whose vote_id names a different recorded vote;
        `difference` is a REUSED_AS code."""
        named = (f"idempotency_key {self.idempotency_key!r} was used" if self.idempotency_key
                 else "this prompt_token was answered")
        return AlreadyExists(
            f"{named} for a vote with {REUSED_AS.get(difference, 'other fields')}; a retry "
            "must repeat the first request exactly, a new vote needs a new idempotency_key")


@dataclass(frozen=True, slots=True)
class Submission:
    """One SubmitVote as the gateway forwards it; `choice` is one of submitted_vote.CHOICES,
    or "" when the client left it unspecified; `attributes` are the voter's declared ones
    (key -> value)."""

    cause_id: str
    voter_id: str
    prompt_token: str
    choice: str
    skip_reason: str
    idempotency_key: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    skip_reason_code: int = 0


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the client gets back: the vote's id, whether it was a replay, its log entry id."""

    vote_id: str
    duplicate: bool
    entry_id: str


def interactive_vote_id(cause_id: str, voter_id: str, idempotency_key: str, nonce: str) -> str:
    """The vote id of a SubmitVote: a function of (cause, voter, idempotency key), or of the
    prompt's nonce when the key is empty, so that a client retry maps to the same vote."""
    material = (f"k|{cause_id}|{voter_id}|{idempotency_key}" if idempotency_key
                else f"n|{cause_id}|{nonce}")
    return "sv-" + hashlib.sha256(material.encode()).hexdigest()[:32]


def interactive_vote(*, keys: prompt_token.TokenKeys, cause_id: str, voter_id: str, wire_token: str,
                     choice: str, skip_reason: str, idempotency_key: str, now_ms: int,
                     min_view_ms: int, attributes: str = NO_ATTRIBUTES,
                     skip_reason_code: int = 0) -> InteractiveVote:
    """Validate a SubmitVote and verify its prompt token (`now_ms`: Unix ms).

    `choice` is one of submitted_vote.CHOICES ("" when the client left it unspecified). Raises
    InvalidArgument naming the field (or a forged token), PermissionDenied (token of another
    voter or cause). An expired token is the vote's `expired` error, which the store answers
    only when no vote was recorded under its id. Single use is the store's job.
    """
    check_id("cause_id", cause_id)
    check_id("voter_id", voter_id, pattern=VOTER_ID_PATTERN)
    submitted_vote.check_fields(choice=choice, skip_reason=skip_reason,
                                idempotency_key=idempotency_key, prompt_token_wire=wire_token,
                                skip_reason_code=skip_reason_code)
    token = prompt_token.verify_signed(keys, wire_token, cause_id, voter_id)
    kind: vote_log.Kind
    a_id, b_id = token.left_id, token.right_id
    if choice == "left":
        kind = vote_log.WIN
    elif choice == "right":
        kind, a_id, b_id = vote_log.WIN, token.right_id, token.left_id
    elif choice == "tie":
        kind = vote_log.TIE
    else:
        kind = vote_log.SKIP
    return InteractiveVote(
        vote_id=interactive_vote_id(cause_id, voter_id, idempotency_key, token.nonce),
        cause_id=cause_id, voter_id=voter_id, kind=kind, a_id=a_id, b_id=b_id,
        # A skip's reason code, then its free text: counted by the code alone.
        skip_reason=(vote_log.skip_reason_field(
            submitted_vote.skip_reason_code(skip_reason_code, skip_reason), skip_reason)
                     if kind == vote_log.SKIP else ""),
        # Faster than a human can read two proposals: kept, but flagged for later audit.
        trusted=now_ms - token.issued_ms >= min_view_ms,
        nonce=token.nonce,
        nonce_ttl_ms=max(1, token.expires_ms - now_ms) + NONCE_GRACE_MS,
        idempotency_key=idempotency_key,
        expired=prompt_token.expiry_error(token, now_ms),
        attributes=attributes,
    )


class ImportedVoteLike(Protocol):
    """The fields of a pairwise.v1.ImportedVote (the message itself satisfies this)."""

    @property
    def vote_id(self) -> str: ...
    @property
    def cause_id(self) -> str: ...
    @property
    def voter_id(self) -> str: ...
    @property
    def winner_id(self) -> str: ...
    @property
    def loser_id(self) -> str: ...
    @property
    def tie(self) -> bool: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...
    @property
    def skip(self) -> bool: ...
    @property
    def untrusted(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    """One imported vote that was not recorded; `position` is its index in the batch."""

    position: int
    vote_id: str
    code: str
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


PACKED_FIELDS = 6


@dataclass(slots=True)
class CauseImport:
    """The valid votes of one cause in a batch, packed for one round trip to the store.

    `packed` is flat: vote_id, voter_id, winner_id, loser_id, kind, attribute code
    (pairwise.voter_attributes) per vote (PACKED_FIELDS strings), in batch order; the kind is
    "w", "t" or "s" (pairwise.vote_log), followed by "0" for a vote flagged untrusted. None
    of these strings contains whitespace (their syntax was checked).
    `positions[i]` is the batch position of packed vote i. `rejected` counts, by code, this
    cause's votes already rejected by validation (the store adds them to the cause's stats).
    """

    cause_id: str
    packed: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class ImportPlan:
    causes: dict[str, CauseImport]
    rejections: list[Rejection]


@dataclass(frozen=True, slots=True)
class ImportResult:
    accepted: int
    duplicates: int
    rejections: list[Rejection]


def _problem(vote_id: str, voter_id: str, winner_id: str, loser_id: str,
             known_ids: set[str], known_voters: set[str]) -> tuple[str, str] | None:
    """The first problem of one imported vote as (code, detail), or None if it is valid.
    Proposal and voter ids found well-formed are added to `known_ids` / `known_voters`."""
    if not vote_id:
        return "missing_vote_id", "vote_id is required"
    if not VOTE_ID_PATTERN.fullmatch(vote_id):
        return "invalid_vote_id", f"vote_id must match {VOTE_ID_PATTERN.pattern}"
    if not voter_id:
        return "missing_voter_id", "voter_id is required"
    if voter_id not in known_voters:
        if not VOTER_ID_PATTERN.fullmatch(voter_id):
            return "invalid_voter_id", f"voter_id must match {VOTER_ID_PATTERN.pattern}"
        known_voters.add(voter_id)
    for name, value in (("winner_id", winner_id), ("loser_id", loser_id)):
        if not value:
            return f"missing_{name}", f"{name} is required"
        if value not in known_ids:
            if not ID_PATTERN.fullmatch(value):
                return f"invalid_{name}", f"{name} must match {ID_PATTERN.pattern}"
            known_ids.add(value)
    if winner_id == loser_id:
        return "same_proposal", f"winner_id and loser_id are both {winner_id!r}"
    return None


def _kind(vote: ImportedVoteLike) -> str | None:
    """The packed kind of a vote (CauseImport), or None when it is both a tie and a skip."""
    if vote.skip:
        kind = None if vote.tie else vote_log.SKIP
    else:
        kind = vote_log.TIE if vote.tie else vote_log.WIN
    return kind and kind + ("0" if vote.untrusted else "")


def plan_import(votes: Iterable[ImportedVoteLike],
                declarations: Mapping[str, Declaration] | None = None) -> ImportPlan:
    """Validate a batch and group its valid votes by cause, keeping batch order.

    Codes: missing_/invalid_ cause_id, vote_id, voter_id, winner_id, loser_id; same_proposal;
    tie_and_skip; invalid_attributes (a key or value the cause does not declare, in
    `declarations` by cause id: none declared when absent).
    Whether the cause and proposals exist, and duplicates, are decided by the store.
    Cost is a few set lookups and one regex match per valid vote.
    """
    causes: dict[str, CauseImport] = {}
    bad_causes: dict[str, tuple[str, str]] = {}
    # Proposal and voter ids repeat across a batch: check each one's syntax once.
    known_ids: set[str] = set()
    known_voters: set[str] = set()
    rejections: list[Rejection] = []
    vote_id_ok = VOTE_ID_PATTERN.fullmatch
    voter_id_ok = VOTER_ID_PATTERN.fullmatch
    tie_kind, win_kind = vote_log.TIE, vote_log.WIN
    # Batches are usually one cause: keep its lists' methods at hand while it repeats.
    current: CauseImport | None = None
    current_cause = None
    for position, vote in enumerate(votes):
        cause_id = vote.cause_id
        if cause_id != current_cause:
            batch = causes.get(cause_id)
            if batch is None:
                problem = bad_causes.get(cause_id)
                if problem is None:
                    if not cause_id:
                        problem = ("missing_cause_id", "cause_id is required")
                    elif not ID_PATTERN.fullmatch(cause_id):
                        problem = ("invalid_cause_id",
                                   f"cause_id must match {ID_PATTERN.pattern}")
                    else:
                        batch = causes[cause_id] = CauseImport(cause_id)
                    if problem is not None:
                        bad_causes[cause_id] = problem
                if batch is None:
                    assert problem is not None
                    rejections.append(Rejection(position, vote.vote_id[:_ECHO_CHARS], *problem))
                    continue
            current, current_cause = batch, cause_id
            extend, append = batch.packed.extend, batch.positions.append
        vote_id, voter_id = vote.vote_id, vote.voter_id
        winner_id, loser_id = vote.winner_id, vote.loser_id
        if voter_id not in known_voters and voter_id_ok(voter_id):
            known_voters.add(voter_id)
        if not (winner_id in known_ids and loser_id in known_ids and winner_id != loser_id
                and voter_id in known_voters and vote_id_ok(vote_id)):
            problem = _problem(vote_id, voter_id, winner_id, loser_id, known_ids, known_voters)
            if problem is not None:
                rejections.append(Rejection(position, vote_id[:_ECHO_CHARS], *problem))
                assert current is not None
                current.rejected[problem[0]] += 1
                continue
        if vote.skip or vote.untrusted:
            kind = _kind(vote)
            if kind is None:
                rejections.append(Rejection(position, vote_id[:_ECHO_CHARS], "tie_and_skip",
                                            "a vote is a tie or a skip, not both"))
                assert current is not None
                current.rejected["tie_and_skip"] += 1
                continue
        else:
            kind = tie_kind if vote.tie else win_kind
        code = NO_ATTRIBUTES
        if vote.attributes:
            try:
                code = (declarations or {}).get(cause_id, Declaration()).encode(
                    vote.attributes)
            except InvalidArgument as exc:
                rejections.append(Rejection(position, vote_id[:_ECHO_CHARS],
                                            INVALID_ATTRIBUTES, str(exc)))
                assert current is not None
                current.rejected[INVALID_ATTRIBUTES] += 1
                continue
        extend((vote_id, voter_id, winner_id, loser_id, kind, code))
        append(position)
    return ImportPlan(causes, rejections)


def settle(plan: ImportPlan, outcomes: Mapping[str, str | None], first_index: int) -> ImportResult:
    """Combine validation with what the store did for each cause.

    `outcomes[cause_id]` is one outcome code per packed vote (ACCEPTED, DUPLICATE,
    UNKNOWN_WINNER, UNKNOWN_LOSER, or a REUSED_AS code: rejected as `vote_id_reused`),
    None when the cause does not exist, or NOT_OPEN and its state when the cause takes no
    votes (each of its votes rejected as `cause_not_open`). Rejections come
    back ordered by batch position, with `position` shifted by `first_index`.
    """
    accepted = duplicates = 0
    rejections = list(plan.rejections)
    for cause_id, batch in plan.causes.items():
        codes = outcomes[cause_id]
        packed = batch.packed
        if codes is None:
            detail = f"cause {cause_id!r} does not exist"
            rejections.extend(Rejection(position, packed[PACKED_FIELDS * i], "unknown_cause",
                                        detail)
                              for i, position in enumerate(batch.positions))
            continue
        if codes.startswith(NOT_OPEN):
            detail = cause_life.not_open(cause_id, codes[len(NOT_OPEN):])
            rejections.extend(Rejection(position, packed[PACKED_FIELDS * i], "cause_not_open",
                                        detail)
                              for i, position in enumerate(batch.positions))
            continue
        n_accepted, n_duplicates = codes.count(ACCEPTED), codes.count(DUPLICATE)
        accepted += n_accepted
        duplicates += n_duplicates
        if n_accepted + n_duplicates == len(codes):
            continue
        for i, code in enumerate(codes):
            if code == ACCEPTED or code == DUPLICATE:
                continue
            vote_id = packed[PACKED_FIELDS * i]
            if code in REUSED_AS:
                rejections.append(Rejection(
                    batch.positions[i], vote_id, "vote_id_reused",
                    f"vote_id {vote_id!r} was recorded for a vote with {REUSED_AS[code]}; a "
                    "retry must resend the same vote, a new vote needs a new vote_id"))
                continue
            name, proposal_id = (("winner_id", packed[PACKED_FIELDS * i + 2])
                                 if code == UNKNOWN_WINNER
                                 else ("loser_id", packed[PACKED_FIELDS * i + 3]))
            rejections.append(Rejection(
                batch.positions[i], vote_id, "unknown_proposal",
                f"{name} {proposal_id!r} is not a proposal of cause {cause_id!r}"))
    rejections.sort(key=lambda r: r.position)
    if first_index:
        rejections = [Rejection(r.position + first_index, r.vote_id, r.code, r.detail)
                      for r in rejections]
    return ImportResult(accepted, duplicates, rejections)


@dataclass(frozen=True, slots=True)
class VoteStats:
    """A cause's ingest counters since it was created."""

    accepted: int
    duplicates: int
    ties: int
    skips: int
    voters: int
    rejected_by_reason: dict[str, int]
    skip_reasons: dict[str, int]
