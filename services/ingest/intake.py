"""The ingest use cases: record one interactive vote, record a batch, read a cause's counters.

Validation and shaping come from `ingest.votes`, the buffer check from `ingest.backlog`, and
every Redis effect from `ingest.vote_store`; this module only puts them in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ingest.backlog import BacklogGate
from ingest.settings import Settings
from ingest.vote_store import VoteStore
from ingest.votes import (
    ACCEPTED,
    ImportedVoteLike,
    ImportResult,
    Receipt,
    VoteStats,
    interactive_vote,
    plan_import,
    settle,
)
from pairwise.errors import InvalidArgument, NotFound
from pairwise.ids import check_id

logger = logging.getLogger(__name__)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Intake:
    """Ingest's behaviour, independent of gRPC; `clock_ms` is Unix time in milliseconds."""

    def __init__(self, store: VoteStore, gate: BacklogGate, settings: Settings,
                 clock_ms: Callable[[], int] = _wall_ms) -> None:
        self._store = store
        self._gate = gate
        self._settings = settings
        self._clock_ms = clock_ms

    async def record_vote(self, *, cause_id: str, voter_id: str, prompt_token: str,
                          choice: str, skip_reason: str, idempotency_key: str) -> Receipt:
        """Verify, de-duplicate and append one interactive vote; see votes.interactive_vote
        and VoteStore.record_vote for the errors. Unavailable when the cause's buffer is full."""
        vote = interactive_vote(
            secret=self._settings.token_secret, cause_id=cause_id, voter_id=voter_id,
            wire_token=prompt_token, choice=choice, skip_reason=skip_reason,
            idempotency_key=idempotency_key, now_ms=self._clock_ms(),
            min_view_ms=self._settings.min_view_ms)
        await self._gate.admit((vote.cause_id,))
        receipt = await self._store.record_vote(vote)
        if not receipt.duplicate:
            self._gate.added(vote.cause_id, 1)
        return receipt

    async def record_votes(self, votes: Sequence[ImportedVoteLike],
                           first_index: int) -> ImportResult:
        """Record a batch of trusted votes: invalid ones are rejected one by one (never the
        whole batch), the rest go to Redis in one round trip. Raises InvalidArgument for an
        oversized batch, Unavailable when a cause's buffer is full (nothing written then)."""
        if len(votes) > self._settings.max_batch:
            raise InvalidArgument(
                "votes", f"at most {self._settings.max_batch} votes per call, got {len(votes)}")
        if first_index < 0:
            raise InvalidArgument("first_index", f"must be >= 0, got {first_index}")
        started = time.perf_counter()
        plan = plan_import(votes)
        if plan.causes:
            await self._gate.admit(plan.causes.keys())
        outcomes = await self._store.record_imports(list(plan.causes.values()))
        for cause_id, codes in outcomes.items():
            if codes:
                self._gate.added(cause_id, codes.count(ACCEPTED))
        result = settle(plan, outcomes, first_index)
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
