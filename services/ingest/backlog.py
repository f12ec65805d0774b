"""Backpressure: a cause whose vote log the rankers have fallen far behind on takes no new votes.

Redis memory is the buffer between ingest and the rankers; refusing with a retryable error
(UNAVAILABLE) keeps a stalled ranker from turning into an out-of-memory Redis.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

from pairwise.errors import Unavailable

# Above this many remembered causes, readings older than the refresh interval are dropped.
_MAX_REMEMBERED = 10_000
# A cause's backlog is shown in the metrics this long (s) after its last reading: a scrape
# every 5-15 s sees every cause that got votes since the previous one.
_SHOWN_S = 60.0


@dataclass(slots=True)
class _Reading:
    backlog: int
    read_at: float
    # Votes this process added since the reading, so a burst within one interval counts.
    added: int = 0


class BacklogGate:
    """Admits votes for causes whose backlog is at most `max_backlog` votes.

    `read_backlogs(cause_ids)` returns each cause's uncounted votes (one Redis round trip);
    it is called for a cause at most once per `interval_s` (seconds, on `clock`), so the
    check costs nothing per vote. Between readings the estimate is the last reading plus the
    votes this process added since (other replicas' votes show up at the next reading).
    """

    def __init__(self, read_backlogs: Callable[[list[str]], Awaitable[Mapping[str, int]]],
                 max_backlog: int, interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read_backlogs
        self._max = max_backlog
        self._interval = interval_s
        self._clock = clock
        self._readings: dict[str, _Reading] = {}

    async def admit(self, cause_ids: Collection[str]) -> None:
        """Raise Unavailable ("vote buffer full") if any cause's backlog exceeds the limit."""
        now = self._clock()
        stale = [c for c in cause_ids
                 if (r := self._readings.get(c)) is None or now - r.read_at >= self._interval]
        if stale:
            fresh = await self._read(stale)
            if len(self._readings) > _MAX_REMEMBERED:
                self._readings = {c: r for c, r in self._readings.items()
                                  if now - r.read_at < self._interval}
            for c in stale:
                self._readings[c] = _Reading(fresh[c], now)
        for c in cause_ids:
            reading = self._readings[c]
            backlog = reading.backlog + reading.added
            if backlog > self._max:
                raise Unavailable(
                    f"vote buffer full: cause {c!r} has about {backlog} votes waiting for the "
                    f"ranker (limit {self._max}); retry later")

    def estimates(self) -> dict[str, float]:
        """The latest estimate of each cause read in the last `_SHOWN_S` seconds (votes): what
        /metrics shows of the causes getting votes. Safe from another thread (it reads a copy
        of the readings)."""
        now = self._clock()
        return {c: float(r.backlog + r.added) for c, r in dict(self._readings).items()
                if now - r.read_at < max(self._interval, _SHOWN_S)}

    def added(self, cause_id: str, n_votes: int) -> None:
        """Count `n_votes` just appended to the cause's log into its backlog estimate."""
        reading = self._readings.get(cause_id)
        if reading is not None:
            reading.added += n_votes
