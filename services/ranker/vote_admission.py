"""Which votes of a cause's log count in its official ranking: the one place that decides.

A vote counts when it was trusted at ingest (its `q` flag) and neither its voter nor its
vote id is excluded (pairwise.exclusions). The others stay in the log and are tallied here:
a vote of an excluded voter or id is *excluded*, whatever its flag; any other vote flagged
at ingest is *untrusted*. So of the votes a ranking reflects, each valid one is exactly one
of counted, untrusted or excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pairwise.exclusions import Exclusions
from pairwise.vote_log import DecodedVotes


@dataclass(frozen=True)
class LeftOut:
    """Votes of the reflected log prefix left out of the counts, and the exclusions version
    that decided which ones were excluded."""

    untrusted: int = 0
    excluded: int = 0
    exclusions_version: int = 0

    def plus(self, votes: CountedVotes) -> LeftOut:
        """These totals once `votes` were counted too."""
        return LeftOut(self.untrusted + votes.n_untrusted, self.excluded + votes.n_excluded,
                       self.exclusions_version)


@dataclass(frozen=True)
class CountedVotes:
    """The votes of a decoded batch that count (`kinds`, `a`, `b`, as `PairCounts.apply`
    takes them, and their voters' `attributes` as `SegmentCounts.apply` does), and how many
    of the others were untrusted or excluded."""

    kinds: np.ndarray
    a: np.ndarray
    b: np.ndarray
    n_untrusted: int
    n_excluded: int
    attributes: np.ndarray | None = None


def admit(batch: DecodedVotes, exclusions: Exclusions) -> CountedVotes:
    """The votes of `batch` that count under `exclusions`.

    `batch` must have been decoded with ids (`decode_entries(..., with_ids=True)`) whenever
    `exclusions` is not empty; raises ValueError otherwise.
    """
    n = len(batch.kinds)
    excluded = np.zeros(n, dtype=bool)
    if exclusions:
        if len(batch.voter_ids) != n or len(batch.vote_ids) != n:
            raise ValueError("exclusions need the votes' ids: decode with with_ids=True")
        if exclusions.voters:
            voters = exclusions.voters
            excluded |= np.fromiter((v in voters for v in batch.voter_ids), bool, n)
        if exclusions.votes:
            votes = exclusions.votes
            excluded |= np.fromiter((v in votes for v in batch.vote_ids), bool, n)
    counted = batch.trusted & ~excluded
    n_counted = int(np.count_nonzero(counted))
    if n_counted == n:
        return CountedVotes(batch.kinds, batch.a, batch.b, 0, 0, batch.attributes)
    n_excluded = int(np.count_nonzero(excluded))
    return CountedVotes(batch.kinds[counted], batch.a[counted], batch.b[counted],
                        n_untrusted=n - n_counted - n_excluded, n_excluded=n_excluded,
                        attributes=None if batch.attributes is None
                        else batch.attributes[counted])
