"""A cause's ranking: the catalog view, the fit input cut from pair counts, the published fit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ranker import bradley_terry
from ranker.pair_counts import PairCounts
from ranker.scores import win_probability_scores
from ranker.vote_admission import LeftOut

_TALLIES = ("wins", "losses", "ties", "skips", "appearances")


@dataclass(frozen=True)
class Catalog:
    """The proposals of a cause as the ranker last read them.

    `proposal_ids[k]` and `texts[k]` belong to proposal index k (the index votes use);
    `accepted` holds the sorted indices of ACCEPTED proposals, the only ones ranked.
    `version` is the catalog version read with them (-1 when the view is known to be
    incomplete and must be read again).
    """

    version: int
    proposal_ids: tuple[str, ...]
    texts: tuple[str, ...]
    accepted: np.ndarray


@dataclass(frozen=True)
class FitInput:
    """Everything one fit needs, copied out of the live counts so they can keep changing.

    `items` are the ranked proposal indices (sorted); `catalog_ids[k]` and `catalog_texts[k]`
    belong to proposal index k (the catalog's own tuples, shared, not copied); `i`, `j`,
    `wins_ij`, `wins_ji` are the comparisons among the items re-indexed to positions in
    `items` (ties as half wins); the tallies are per item, in the order of `items`. Of the
    `votes_counted` votes reflected, `left_out` are not in the counts.
    """

    cause_id: str
    catalog_version: int
    items: np.ndarray
    catalog_ids: tuple[str, ...]
    catalog_texts: tuple[str, ...]
    i: np.ndarray
    j: np.ndarray
    wins_ij: np.ndarray
    wins_ji: np.ndarray
    wins: np.ndarray
    losses: np.ndarray
    ties: np.ndarray
    skips: np.ndarray
    appearances: np.ndarray
    votes_counted: int
    last_vote_entry_id: str
    left_out: LeftOut = LeftOut()

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_pairs(self) -> int:
        return len(self.i)


def fit_input(cause_id: str, catalog: Catalog, counts: PairCounts, *, votes_counted: int,
              last_vote_entry_id: str, left_out: LeftOut | None = None,
              with_pairs: bool = True) -> FitInput:
    """Cut the accepted proposals' comparisons and tallies out of `counts` (copies).

    With `with_pairs=False` only the tallies: `i`, `j`, `wins_ij`, `wins_ji` are empty, for a
    fit that reads the pairs elsewhere (a worker's replica of the counts, ranker.fit_pool).
    Ids and texts are not gathered per item: a Python loop over 34,000 of them held the GIL
    for ~5 ms (and ~17 ms more in `ranking_from_fit`), delaying the RPCs of the loop.
    """
    items = catalog.accepted
    if with_pairs:
        i, j, wins_ij, wins_ji = counts.subset(items)
    else:
        i = j = np.zeros(0, dtype=np.int64)
        wins_ij = wins_ji = np.zeros(0, dtype=np.float64)
    tallies = {}
    for name, per_item in counts.tallies().items():
        # Proposals newer than every vote have no row in the counts yet: zero tallies.
        padded = np.zeros(len(items), dtype=np.int64)
        known = items < len(per_item)
        padded[known] = per_item[items[known]]
        tallies[name] = padded
    return FitInput(
        cause_id=cause_id, catalog_version=catalog.version, items=items.copy(),
        catalog_ids=catalog.proposal_ids, catalog_texts=catalog.texts,
        # `subset` returns new arrays, never views of the counts: no second copy.
        i=i, j=j, wins_ij=wins_ij, wins_ji=wins_ji,
        votes_counted=votes_counted, last_vote_entry_id=last_vote_entry_id,
        left_out=left_out or LeftOut(), **tallies)


@dataclass(frozen=True)
class Ranking:
    """One published fit of a cause; every array is in rank order (rank k at position k-1).

    Entries are sorted by ability, highest first, ties broken by proposal_id. Abilities
    are centred over the ranked proposals; they, the standard errors and `ci_low`/`ci_high`
    (the 95% intervals) come from the fit (`ranker.bradley_terry`); `scores` are
    100 * mean_j sigma(ability_i - ability_j), computed here (`ranker.scores`).
    The entry at position k is proposal index `proposal_index[k]`, whose id and text are
    `catalog_ids` and `catalog_texts` at that index (`proposal_ids` / `texts` of a page).
    `fit_start` holds the abilities the fit started from, in rank order, or is None when it
    started cold: with the counted votes, what reproduces the fit exactly (the engine stops
    within its tolerance of the optimum, so a fit from another start differs by up to that).
    Of the `votes_counted` votes reflected, `left_out` are not in the fit. The ranking of a
    segment of voters (ranker.segment_counts) fits only its `segment_votes` counted votes.
    """

    cause_id: str
    votes_counted: int
    last_vote_entry_id: str
    fitted_at_ms: int
    prior_strength: float
    catalog_version: int
    iterations: int
    proposal_index: np.ndarray
    catalog_ids: tuple[str, ...]
    catalog_texts: tuple[str, ...]
    abilities: np.ndarray
    std_errors: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    scores: np.ndarray
    wins: np.ndarray
    losses: np.ndarray
    ties: np.ndarray
    skips: np.ndarray
    appearances: np.ndarray
    fit_start: np.ndarray | None = None
    left_out: LeftOut = LeftOut()
    segment: tuple[int, int] | None = None
    segment_votes: int = 0

    @property
    def total_proposals(self) -> int:
        return len(self.proposal_index)

    def proposal_ids(self, rows: range) -> list[str]:
        """Ids of the entries at positions `rows` (e.g. a `page`)."""
        return [self.catalog_ids[k] for k in self.proposal_index[rows.start:rows.stop].tolist()]

    def texts(self, rows: range) -> list[str]:
        """Texts of the entries at positions `rows`."""
        return [self.catalog_texts[k]
                for k in self.proposal_index[rows.start:rows.stop].tolist()]

    def page(self, offset: int, limit: int) -> range:
        """Positions (0-based, rank - 1) of the entries in [offset, offset + limit)."""
        start = min(offset, self.total_proposals)
        return range(start, min(start + limit, self.total_proposals))

    def abilities_for(self, items: np.ndarray) -> np.ndarray:
        """Abilities of proposal indices `items` in this ranking, 0 for the ones not in it
        (a warm start for the next fit)."""
        order = np.argsort(self.proposal_index)
        known = self.proposal_index[order]
        pos = np.clip(np.searchsorted(known, items), 0, max(len(known) - 1, 0))
        start = np.zeros(len(items), dtype=np.float64)
        if len(known):
            found = known[pos] == items
            start[found] = self.abilities[order][pos[found]]
        return start


def _rank_order(abilities: np.ndarray, proposal_id: Callable[[int], str]) -> np.ndarray:
    """Positions by ability, highest first; equal abilities (e.g. no votes yet) by the
    `proposal_id` of the position.

    Sorts numbers, then only the runs of equal abilities by id: np.lexsort over 34,000 id
    strings holds the GIL for 6–25 ms, long enough to delay every RPC of the serving process.
    """
    order = np.argsort(-abilities, kind="stable")
    ranked = abilities[order]
    tied = np.flatnonzero(ranked[1:] == ranked[:-1])
    if tied.size:
        # Starts and ends of the runs of equal abilities (each at least two long).
        starts = tied[np.r_[True, tied[1:] != tied[:-1] + 1]]
        ends = tied[np.r_[tied[1:] != tied[:-1] + 1, True]] + 2
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            order[start:end] = sorted(order[start:end].tolist(), key=proposal_id)
    return order


def ranking_from_fit(inputs: FitInput, fit: bradley_terry.BTFit | None, *,
                     prior_strength: float = bradley_terry.PRIOR_STRENGTH,
                     fit_start: np.ndarray | None = None,
                     clock: Callable[[], float] = time.time,
                     segment: tuple[int, int] | None = None,
                     segment_votes: int = 0) -> Ranking:
    """The ranking of `inputs` given their fit (None when there is no proposal to rank) and
    the abilities it started from (per item, in the order of `inputs.items`; None: cold);
    for a segment's votes, the segment and its votes."""
    n_items = inputs.n_items
    if fit is not None and n_items:
        abilities, iterations = np.asarray(fit.abilities, dtype=np.float64), fit.iterations
        columns = {"std_errors": fit.std_errors, "ci_low": fit.ci_low, "ci_high": fit.ci_high,
                   "scores": win_probability_scores(abilities)}
    else:
        abilities, iterations = np.zeros(n_items), 0
        columns = {name: np.zeros(n_items)
                   for name in ("std_errors", "ci_low", "ci_high", "scores")}
    items, ids = inputs.items, inputs.catalog_ids
    order = _rank_order(abilities, lambda position: ids[items[position]])

    def frozen(values: np.ndarray) -> np.ndarray:
        out = np.asarray(values)[order]  # fancy indexing: a new array
        out.flags.writeable = False
        return out

    return Ranking(
        cause_id=inputs.cause_id,
        votes_counted=inputs.votes_counted,
        last_vote_entry_id=inputs.last_vote_entry_id,
        fitted_at_ms=int(clock() * 1000),
        prior_strength=float(prior_strength),
        catalog_version=inputs.catalog_version,
        iterations=int(iterations),
        proposal_index=frozen(inputs.items),
        catalog_ids=inputs.catalog_ids,
        catalog_texts=inputs.catalog_texts,
        abilities=frozen(abilities),
        **{name: frozen(values) for name, values in columns.items()},
        **{name: frozen(getattr(inputs, name)) for name in _TALLIES},
        fit_start=None if fit_start is None or fit is None else frozen(fit_start),
        left_out=inputs.left_out,
        segment=segment,
        segment_votes=segment_votes,
    )
