"""The votes each proposal received from the simulated voters (answered OK, skips aside),
and, for proposals accepted mid-run, how many votes the cause took to give them their first
few: what exposure means to the citizen who proposed one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

# Votes after which a proposal is no longer new: the gateway's default exposure threshold
# (GATEWAY_NEWCOMER_VOTES).
NEWCOMER_VOTES = 10


class ProposalVotes:
    """Tallies over `n_proposals` population indices, as the voters' answers come back OK.

    `received[k]` counts the non-skip votes on proposal k (ties included), as the ranking's
    wins + losses + ties would; `cause_votes` every vote answered OK in the cause.
    """

    def __init__(self, n_proposals: int, threshold: int = NEWCOMER_VOTES) -> None:
        self.threshold = threshold
        self.received = np.zeros(n_proposals, dtype=np.int64)
        self.cause_votes = 0
        self._accepted_at: dict[int, int] = {}
        self._reached_at: dict[int, int] = {}

    def accepted(self, indices: Iterable[int]) -> None:
        """`indices` are accepted mid-run, now (before their first possible vote)."""
        for k in indices:
            self._accepted_at[int(k)] = self.cause_votes

    def vote(self, left: int, right: int, *, skip: bool) -> None:
        """One vote answered OK on `left` vs `right`."""
        self.cause_votes += 1
        if skip:
            return
        for k in (left, right):
            self.received[k] += 1
            if self.received[k] == self.threshold and k in self._accepted_at:
                self._reached_at[k] = self.cause_votes

    def imported(self, winners: np.ndarray, losers: np.ndarray) -> None:
        """Decided votes (no skips) recorded in one ImportVotes batch: index arrays of one
        length."""
        before = {k: self.received[k] for k in self._accepted_at if k not in self._reached_at}
        self.cause_votes += len(winners)
        self.received += (np.bincount(winners, minlength=len(self.received))
                          + np.bincount(losers, minlength=len(self.received)))
        for k, had in before.items():
            if had < self.threshold <= self.received[k]:
                self._reached_at[k] = self.cause_votes

    def spread(self, indices: np.ndarray) -> dict[str, float]:
        """Min, median and max of the votes received by `indices` (e.g. the accepted)."""
        votes = self.received[indices]
        return {"min": int(votes.min()), "median": float(np.median(votes)),
                "max": int(votes.max())}

    def newcomers(self) -> list[dict[str, Any]]:
        """Per proposal accepted mid-run: the cause's votes when it was accepted, the votes
        the cause took from then until its `threshold`-th vote (None: not reached yet), and
        the votes it received."""
        return [{"index": k, "accepted_at_votes": at,
                 "votes_to_threshold": (self._reached_at[k] - at
                                        if k in self._reached_at else None),
                 "received": int(self.received[k])}
                for k, at in sorted(self._accepted_at.items())]
