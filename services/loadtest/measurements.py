"""What a run measures, as plain numbers: latencies per RPC, errors by status code, the
vote counters over time, freshness of sampled votes, and percentiles of all of these."""

from __future__ import annotations

import math
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def percentiles(values: np.ndarray | array[float], points: tuple[float, ...]) -> dict[str, Any]:
    """{"count", "p<q>"..., "max"} of `values` (None for each when empty)."""
    data = np.asarray(values, dtype=np.float64)
    out: dict[str, Any] = {"count": int(len(data))}
    for q in points:
        out[f"p{q:g}"] = float(np.percentile(data, q)) if len(data) else None
    out["max"] = float(data.max()) if len(data) else None
    return out


class Latencies:
    """Seconds each call took, kept whole per RPC name (8 bytes a call)."""

    def __init__(self) -> None:
        self._by_rpc: dict[str, array[float]] = defaultdict(lambda: array("d"))

    def add(self, rpc: str, seconds: float) -> None:
        self._by_rpc[rpc].append(seconds)

    def count(self, rpc: str) -> int:
        return len(self._by_rpc.get(rpc, ()))

    def samples(self, rpc: str) -> np.ndarray:
        return np.asarray(self._by_rpc.get(rpc, array("d")), dtype=np.float64)

    def rpcs(self) -> list[str]:
        return sorted(self._by_rpc)

    def summary_ms(self) -> dict[str, dict[str, Any]]:
        """Per RPC: count, p50, p95, p99 and max, in milliseconds."""
        return {rpc: {k: (v * 1000 if isinstance(v, float) else v)
                      for k, v in percentiles(self._by_rpc[rpc], (50, 95, 99)).items()}
                for rpc in self.rpcs()}


class Errors:
    """Failed calls by RPC and gRPC status code name."""

    def __init__(self) -> None:
        self.by_rpc: dict[str, Counter[str]] = defaultdict(Counter)
        # The first message seen for each (rpc, code), to tell causes apart in the report.
        self.examples: dict[str, str] = {}

    def add(self, rpc: str, code: str, details: str = "") -> None:
        self.by_rpc[rpc][code] += 1
        self.examples.setdefault(f"{rpc} {code}", details[:300])

    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_rpc.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {rpc: dict(sorted(codes.items())) for rpc, codes in sorted(self.by_rpc.items())}


@dataclass
class Tick:
    """The counters of one mode at one instant (seconds from the start of the load)."""

    t: float
    sent: int  # votes whose first submission began
    ok: int  # votes the cluster acknowledged
    counted: int  # votes_counted of the published ranking


class Freshness:
    """Time from a vote's OK until the ranking's `votes_counted` includes it.

    The vote's place in the log is not returned to clients, so each sample records an
    upper bound of it: the votes whose submission had begun when the OK arrived (every vote
    written before it began before it), less those already known to be refused. A sample is
    resolved by the first ranking read at or past that bound; the result errs on the late
    side by at most the votes in flight, and by the polling interval.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[float, int]] = []  # (ok time, bound), bounds increasing
        self.delays = array("d")

    def sample(self, ok_at: float, bound: int) -> None:
        self._pending.append((ok_at, bound))

    def observe(self, at: float, votes_counted: int) -> None:
        """A ranking read at `at` reflected `votes_counted` votes."""
        if not self._pending:
            return
        done = 0
        # Bounds are recorded in increasing order within a mode, except across concurrent
        # callers; sorting keeps resolution a prefix walk.
        self._pending.sort(key=lambda s: s[1])
        for ok_at, bound in self._pending:
            if bound > votes_counted:
                break
            self.delays.append(max(0.0, at - ok_at))
            done += 1
        del self._pending[:done]

    @property
    def unresolved(self) -> int:
        return len(self._pending)

    def summary(self) -> dict[str, Any]:
        out = percentiles(self.delays, (50, 95, 99))
        out["unresolved"] = self.unresolved
        return out


@dataclass
class ModeCounters:
    """Everything one mode tallies while it runs (the event loop is the only writer)."""

    sent: int = 0
    ok: int = 0
    # Submissions whose outcome is unknown (no OK after the retries): each may or may not
    # be in the log.
    unknown: int = 0
    # Votes refused (never written): failed submissions and votes an import rejected.
    rejected: int = 0
    unexpected_duplicates: int = 0
    voters_arrived: int = 0
    voters_done: int = 0
    # Interactive: pairs a voter was shown a second time (the gateway promises none), and
    # votes whose reply brought the voter's next pair (no NextPair call needed).
    repeated_pairs: int = 0
    next_pairs_in_reply: int = 0
    ticks: list[Tick] = field(default_factory=list)
    latencies: Latencies = field(default_factory=Latencies)
    errors: Errors = field(default_factory=Errors)
    freshness: Freshness = field(default_factory=Freshness)

    def log_bound(self) -> int:
        """An upper bound of the log entries this mode has caused so far: every submission
        begun, less those known to have been refused."""
        return self.sent - self.rejected

    def rate_series(self, window_s: float = 1.0) -> dict[str, list[float]]:
        """OK and counted votes per second over successive `window_s` windows."""
        out: dict[str, list[float]] = {"t": [], "ok_per_s": [], "counted_per_s": []}
        last: Tick | None = None
        for tick in self.ticks:
            if last is None:
                last = tick
                continue
            span = tick.t - last.t
            if span >= window_s:
                out["t"].append(round(tick.t, 3))
                out["ok_per_s"].append((tick.ok - last.ok) / span)
                out["counted_per_s"].append((tick.counted - last.counted) / span)
                last = tick
        return out


def finite(value: float | None) -> float | None:
    """`value` unless it is None or not finite (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else value
