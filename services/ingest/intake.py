"""The ingest use cases: record one interactive vote, record a batch, read a cause's counters.

Validation and shaping come from `ingest.votes`, the buffer check from `ingest.backlog`, and
every Redis effect from `ingest.vote_store`; this module only puts them in order.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ingest.backlog import BacklogGate
from ingest.settings import Settings
from ingest.vote_store import VoteStore
from ingest.votes import (
    ACCEPTED,
    INVALID_ATTRIBUTES,
    NOT_OPEN,
    ImportedVoteLike,
    ImportResult,
    InteractiveVote,
    Receipt,
    Submission,
    VoteStats,
    interactive_vote,
    plan_import,
    settle,
)
from pairwise import cause_life
from pairwise.declared_attributes import MISS_REREAD_S, DeclaredAttributes
from pairwise.errors import InvalidArgument, NotFound, PairwiseError, Unavailable
from pairwise.ids import check_id
from pairwise.metrics import VOTES

# VoteError.index is an int64: a first_index whose batch would run past it is refused before
# anything is written (else the votes were recorded and the answer could not be built).
_MAX_INDEX = 2**63 - 1

logger = logging.getLogger(__name__)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


# Votes answered, for /metrics: accepted (new), duplicate (a replay, answered with its first
# receipt), rejected (invalid, expired, not found), refused (buffer full: retryable).
INTERACTIVE_PATH = {outcome: VOTES.labels("interactive", outcome)
                    for outcome in ("accepted", "duplicate", "rejected", "refused")}
VOTES_BULK_ACCEPTED = VOTES.labels("bulk", "accepted")
VOTES_BULK_DUPLICATE = VOTES.labels("bulk", "duplicate")
VOTES_BULK_REJECTED = VOTES.labels("bulk", "rejected")


def _count_outcomes(counters: dict[str, Any], outcomes: Sequence[Receipt | PairwiseError]
                    ) -> None:
    tally = {"accepted": 0, "duplicate": 0, "rejected": 0, "refused": 0}
    for outcome in outcomes:
        if isinstance(outcome, Receipt):
            tally["duplicate" if outcome.duplicate else "accepted"] += 1
        else:
            tally["refused" if isinstance(outcome, Unavailable) else "rejected"] += 1
    for name, n in tally.items():
        if n:
            counters[name].inc(n)


class Intake:
    """Ingest's behaviour, independent of gRPC; `clock_ms` is Unix time in milliseconds."""

    def __init__(self, store: VoteStore, gate: BacklogGate, settings: Settings,
                 attributes: DeclaredAttributes,
                 clock_ms: Callable[[], int] = _wall_ms) -> None:
        self._store = store
        self._attributes = attributes
        self._gate = gate
        self._settings = settings
        self._clock_ms = clock_ms

    async def record_vote(self, *, cause_id: str, voter_id: str, prompt_token: str,
                          choice: str, skip_reason: str, idempotency_key: str,
                          attributes: Mapping[str, str] | None = None,
                          skip_reason_code: int = 0) -> Receipt:
        """Verify, de-duplicate and append one interactive vote; see votes.interactive_vote
        and VoteStore.record_votes_each for the errors. Unavailable when the cause's buffer is
        full."""
        outcome = (await self.record_interactive_votes([Submission(
            cause_id=cause_id, voter_id=voter_id, prompt_token=prompt_token, choice=choice,
            skip_reason=skip_reason, idempotency_key=idempotency_key,
            attributes=attributes or {}, skip_reason_code=skip_reason_code)]))[0]
        if isinstance(outcome, PairwiseError):
            raise outcome
        return outcome

    async def record_interactive_votes(
            self, submissions: Sequence[Submission]) -> list[Receipt | PairwiseError]:
        """`record_vote` for each submission, all written in one Redis round trip: per
        submission, its receipt or the error `record_vote` would raise for it. Raises
        InvalidArgument for more than `max_batch` submissions; Redis failures raise for all."""
        if len(submissions) > self._settings.max_batch:
            raise InvalidArgument("votes", f"at most {self._settings.max_batch} votes per call, "
                                           f"got {len(submissions)}")
        now_ms = self._clock_ms()
        outcomes: list[Receipt | PairwiseError | None] = [None] * len(submissions)
        verified: list[tuple[int, InteractiveVote]] = []
        for i, s in enumerate(submissions):
            try:
                vote = interactive_vote(
                    keys=self._settings.token_keys, cause_id=s.cause_id,
                    voter_id=s.voter_id, wire_token=s.prompt_token, choice=s.choice,
                    skip_reason=s.skip_reason, idempotency_key=s.idempotency_key,
                    now_ms=now_ms, min_view_ms=self._settings.min_view_ms,
                    skip_reason_code=s.skip_reason_code)
                if s.attributes:
                    vote = dataclasses.replace(vote, attributes=await self._attributes.encode(
                        s.cause_id, s.attributes))
                verified.append((i, vote))
            except PairwiseError as exc:
                outcomes[i] = exc
        refused: dict[str, Unavailable] = {}
        for cause_id in {vote.cause_id for _, vote in verified}:
            try:
                await self._gate.admit((cause_id,))
            except Unavailable as exc:
                refused[cause_id] = exc
        writes: list[tuple[int, InteractiveVote]] = []
        for i, vote in verified:
            if vote.cause_id in refused:
                outcomes[i] = refused[vote.cause_id]
            else:
                writes.append((i, vote))
        if writes:
            written = await self._store.record_votes_each([vote for _, vote in writes])
            for (i, vote), outcome in zip(writes, written, strict=True):
                outcomes[i] = outcome
                if isinstance(outcome, Receipt) and not outcome.duplicate:
                    self._gate.added(vote.cause_id, 1)
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(submissions)
        _count_outcomes(INTERACTIVE_PATH, done)
        return done

    async def record_votes(self, votes: Sequence[ImportedVoteLike],
                           first_index: int) -> ImportResult:
        """Record a batch of trusted votes: invalid ones are rejected one by one (never the
        whole batch), the rest go to Redis in one round trip. Raises InvalidArgument for an
        oversized batch, Unavailable when a cause's buffer is full (nothing written then),
        FailedPrecondition naming the state when every cause of the batch is not OPEN and a
        vote of each is not a replay (nothing written); with another cause's votes
        recorded, those of a cause not OPEN are rejected as `cause_not_open` instead."""
        if len(votes) > self._settings.max_batch:
            raise InvalidArgument(
                "votes", f"at most {self._settings.max_batch} votes per call, got {len(votes)}")
        if not 0 <= first_index <= _MAX_INDEX - len(votes):
            raise InvalidArgument("first_index", f"must be >= 0 and leave room for the "
                                  f"indices of the call's votes (int64), got {first_index}")
        started = time.perf_counter()
        # The declarations read before (they only grow): a vote's attributes missing from
        # them may have been declared since, so those causes' are read again, once.
        plan = plan_import(votes, self._attributes.cached())
        again = {votes[r.position].cause_id for r in plan.rejections
                 if r.code == INVALID_ATTRIBUTES}
        if again:
            for cause_id in again:
                await self._attributes.get(cause_id, max_age_s=MISS_REREAD_S)
            plan = plan_import(votes, self._attributes.cached())
        if plan.causes:
            await self._gate.admit(plan.causes.keys())
        outcomes = await self._store.record_imports(list(plan.causes.values()))
        if outcomes and all(codes and codes.startswith(NOT_OPEN) for codes in outcomes.values()):
            # Nothing of the batch was written: refused as a whole, as a vote would be. With
            # another cause's votes recorded, its votes are rejected one by one (`settle`).
            cause_id, codes = next(iter(outcomes.items()))
            raise cause_life.refusal(cause_id, (codes or "")[len(NOT_OPEN):])
        for cause_id, codes in outcomes.items():
            if codes and not codes.startswith(NOT_OPEN):
                self._gate.added(cause_id, codes.count(ACCEPTED))
        result = settle(plan, outcomes, first_index)
        VOTES_BULK_ACCEPTED.inc(result.accepted)
        VOTES_BULK_DUPLICATE.inc(result.duplicates)
        VOTES_BULK_REJECTED.inc(len(result.rejections))
        logger.info("batch recorded", extra={
            "votes": len(votes), "causes": len(plan.causes), "accepted": result.accepted,
            "duplicates": result.duplicates, "rejected": len(result.rejections),
            "seconds": round(time.perf_counter() - started, 4)})
        return result

    async def vote_stats(self, cause_id: str) -> VoteStats:
        """The cause's counters; NotFound for an unknown cause."""
        check_id("cause_id", cause_id)
        stats = await self._store.stats(cause_id)
        if stats is None:
            raise NotFound(f"cause {cause_id!r} not found")
        return stats
