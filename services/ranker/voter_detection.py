"""Runs the detector (ranker.voter_anomaly) on one cause's votes as its consumer applies
them, records the voters it flags (pairwise.voter_flags), and excludes those flagged for a
reason the cause excludes automatically (pairwise.exclusions, authored by the detector, so
the audit trail says the exclusion was automatic).

Only interactive votes are tested (SubmitVote's, each an entry of its own): imports are the
admin's own path, and testing them (~40 µs a vote, measured on the loaded development
machine) would cost several times what the bulk path spends on a vote. Votes are tested
against the latest published fit (`offer`, after each fit). Each vote is observed once per
process: a reload re-applies pending entries, and those at or before the last entry observed
are skipped. The evidence lives in the owning ranker's memory: a hand-over or restart keeps
the flags (in Redis) but starts the evidence of voters not yet flagged afresh from their
next votes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

import numpy as np
from redis.asyncio import Redis

from pairwise import exclusions, vote_log
from pairwise.redis_scripts import ScriptRunner
from pairwise.voter_flags import DETECTOR, FlaggedVoter, VoterFlagStore
from ranker.cause_tasks import CauseTasks
from ranker.ranking import Ranking
from ranker.voter_anomaly import DetectionSettings, Flag, VoterAnomaly

logger = logging.getLogger(__name__)


class VoterDetection:
    """The detector of one cause and its Redis side. `observe` is the consumer's hook (called
    with the counts lock held, maybe in a worker thread); `offer` the fit scheduler's."""

    def __init__(self, client: Redis, cause_id: str, scripts: ScriptRunner,
                 tasks: CauseTasks, settings: DetectionSettings | None = None, *,
                 max_proposals: int = 1_000_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.cause_id = cause_id
        self._max_proposals = max_proposals
        self.anomaly = VoterAnomaly(settings, on_background_flags=self._background_flags)
        self._flags = VoterFlagStore(client)
        self._exclusions = exclusions.ExclusionStore(client, scripts)
        self._tasks = tasks
        self._clock = clock
        self._observed_id = ""
        self._pending: list[Flag] = []
        self._lock = threading.Lock()
        self._writing = False
        # The loop the flags are written on (none when built outside one: the unit tests).
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None

    def observe(self, entries: list[vote_log.RawEntry]) -> None:
        """Test the interactive votes of `entries` not observed before."""
        interactive = [(raw_id, fields) for raw_id, fields in entries
                       if fields and len(fields.get(b"k", b"")) == 1]
        if not interactive:
            return
        batch = vote_log.decode_entries(interactive, self._observed_id, self._max_proposals,
                                        with_ids=True)
        if not batch.last_id:
            return
        # An interactive vote is an entry of its own: its entry id says when it was recorded.
        at_ms = {fields.get(b"v", b"").decode(errors="replace"):
                 vote_log.entry_key(raw_id.decode() if isinstance(raw_id, bytes) else raw_id)[0]
                 for raw_id, fields in interactive}
        times = np.array([at_ms.get(vote_id, -1) for vote_id in batch.vote_ids],
                         dtype=np.int64)
        flags = self.anomaly.observe(batch.voter_ids, batch.kinds, batch.a, batch.b,
                                     batch.trusted, times)
        self._observed_id = batch.last_id
        if flags:
            with self._lock:
                self._pending += flags

    def offer(self, ranking: Ranking) -> None:
        """Test the next votes against `ranking`; write the flags raised since the last."""
        self.anomaly.use_fit(np.asarray(ranking.proposal_index), np.asarray(ranking.abilities),
                             ranking.catalog_ids)
        self._write_pending()

    def _background_flags(self) -> None:
        """Called in the thread of a check across accounts that raised flags: they are
        written from the event loop, without waiting for the next fit (there may be none)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the ranker stopped
                self._loop.call_soon_threadsafe(self._write_pending)

    def _write_pending(self) -> None:
        late = self.anomaly.late_flags()
        if late:
            with self._lock:
                self._pending += late
        if self._pending and not self._writing:
            self._writing = True
            self._tasks.spawn(self._drain(), "voter-flags")

    async def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    flags, self._pending = self._pending, []
                if not flags:
                    return
                try:
                    await self.write(flags)
                except Exception as exc:
                    logger.warning("voter flags not written; kept for the next fit",
                                   extra={"cause_id": self.cause_id, "error": repr(exc)})
                    with self._lock:
                        self._pending = flags + self._pending
                    return
        finally:
            self._writing = False

    async def write(self, flags: list[Flag]) -> None:
        """Record `flags`, excluding first the voters flagged for an automatic reason."""
        auto = set(await self._flags.auto_exclusion(self.cause_id))
        now_ms = int(self._clock() * 1000)
        excluded = [flag for flag in flags if auto & set(flag.reasons)]
        by_reasons: dict[tuple[str, ...], list[str]] = {}
        for flag in excluded:
            by_reasons.setdefault(tuple(r for r in flag.reasons if r in auto),
                                  []).append(flag.voter_id)
        for reasons, voters in by_reasons.items():
            for start in range(0, len(voters), exclusions.MAX_IDS_PER_REQUEST):
                request = exclusions.Request(
                    tuple(voters[start:start + exclusions.MAX_IDS_PER_REQUEST]), (),
                    f"automatic: flagged by the detector ({', '.join(reasons)})")
                await self._exclusions.change(self.cause_id, exclusions.EXCLUDE, request,
                                              by=DETECTOR, at_ms=now_ms)
        auto_voters = {flag.voter_id for flag in excluded}
        await self._flags.record(self.cause_id, [
            FlaggedVoter(voter_id=flag.voter_id, reasons=flag.reasons, score=flag.score,
                         detail=flag.detail, votes=flag.votes, at_ms=now_ms,
                         auto_excluded=flag.voter_id in auto_voters)
            for flag in flags])
        logger.info("voters flagged", extra={
            "cause_id": self.cause_id, "flagged": len(flags),
            "auto_excluded": len(auto_voters)})
