"""The representative and consensus views of a cause, from the counts the ranker keeps: the
overall pair counts, one `PairCounts` per segment of voters (attribute, value) and one per
crossed cell (ranker.cell_counts).

The representative view is weighted to the population's margins of every attribute that has
some, from the cells: each cell's votes are one stratum, the votes of voters who declared
nothing one more (the overall counts less every cell); the cells' shares of the votes are
raked to the margins, or post-stratified when one attribute has margins and each of its
values has enough votes (`survey_weights.vote_weights`), then trimmed. The fit is
`bradley_terry.weighted.fit_weighted_strata` over the cells: votes are taken as independent
within a cell (the counts do not say who cast them), and the sandwich takes out the spread
between the calibration groups the weighting holds fixed (each attribute's values when
raked). Errors clustered by voter need the votes themselves (`fit_weighted`).

When the cells are not complete (more than `cell_counts.MAX_CELLS` were opened), the view
is weighted by one attribute, from its segments, as its `View.attributes` says.

The consensus view of an attribute reads its segments' fits (`ranker.consensus`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pairwise.voter_attributes import MAX_KEYS, UNKNOWN_CODE
from ranker import survey_weights
from ranker.bradley_terry import PRIOR_STRENGTH, BTFit
from ranker.bradley_terry.pair_strata import PairStrata, Stratum
from ranker.bradley_terry.weighted import WeightedFit, fit_weighted_strata
from ranker.cell_counts import Cell, all_unknown
from ranker.consensus import Consensus, consensus
from ranker.pair_counts import PairCounts
from ranker.ranking import FitInput, Ranking, ranking_from_fit

# The views, numbered as the contract's RankingView.
REPRESENTATIVE = 2
CONSENSUS = 3


@dataclass(frozen=True)
class View:
    """What a view's ranking says about itself beyond the ranking: how the representative
    weights were made ("" for consensus), the effective votes, the trimming, the largest
    gap left to a margin, and the attributes (positions) the weights are calibrated to."""

    weighting: str = ""
    effective_votes: float = 0.0
    trimmed_votes: int = 0
    margin_gap: float = 0.0
    attributes: tuple[int, ...] = ()


def _keys(counts: PairCounts) -> np.ndarray:
    return (counts.pair_lo.astype(np.int64) << 32) | counts.pair_hi.astype(np.int64)


def stratum(counts: PairCounts, items: np.ndarray,
            minus: tuple[PairCounts, ...] = ()) -> Stratum:
    """(i, j, wins_ij, wins_ji, ties) of `counts` over `items` (positions in `items`; pairs
    with an item outside left out), less the votes of `minus` (counts of some of the same
    votes: a segment's votes are also in the overall counts)."""
    lo = counts.pair_lo.astype(np.int64)
    hi = counts.pair_hi.astype(np.int64)
    wins_lo = counts.wins_lo.astype(np.float64)
    wins_hi = counts.wins_hi.astype(np.float64)
    ties = counts.ties_pair.astype(np.float64)
    if minus:
        keys = _keys(counts)
        for part in minus:
            where = np.searchsorted(keys, _keys(part))
            if part.n_pairs and (where.max() >= keys.shape[0]
                                 or not np.array_equal(keys[where], _keys(part))):
                raise ValueError("a segment holds a pair the overall counts do not")
            wins_lo[where] -= part.wins_lo
            wins_hi[where] -= part.wins_hi
            ties[where] -= part.ties_pair
    n_known = max(counts.n_items, int(items.max()) + 1 if items.size else 0)
    position = np.full(n_known, -1, dtype=np.int64)
    position[items] = np.arange(items.shape[0])
    pos_lo, pos_hi = position[lo], position[hi]
    keep = (pos_lo >= 0) & (pos_hi >= 0) & ((wins_lo > 0) | (wins_hi > 0) | (ties > 0))
    return pos_lo[keep], pos_hi[keep], wins_lo[keep], wins_hi[keep], ties[keep]


@dataclass(frozen=True)
class Representative:
    """The representative fit over `items` and how its weights were made.

    `values` are the attribute's value positions of the strata weighted (UNKNOWN for the
    votes of voters who did not declare it), `stratum_votes` their votes and
    `stratum_weights` the weight of each of their votes."""

    fit: WeightedFit
    weights: survey_weights.VoteWeights
    values: np.ndarray
    stratum_votes: np.ndarray
    stratum_weights: np.ndarray


def representative_strata(overall: PairCounts, segments: Mapping[int, PairCounts],
                          items: np.ndarray) -> tuple[PairStrata, np.ndarray]:
    """The strata of one attribute over `items` (copies, so the counts may change after):
    each value's votes, then those of voters who did not declare it (when there are some);
    and each stratum's value position (`survey_weights.UNKNOWN` for the last)."""
    values = sorted(segments)
    strata = [stratum(segments[v], items) for v in values]
    unknown = stratum(overall, items, tuple(segments[v] for v in values))
    rows = list(values)
    if np.sum(unknown[2]) + np.sum(unknown[3]) + np.sum(unknown[4]) > 0:
        strata.append(unknown)
        rows.append(survey_weights.UNKNOWN)
    return PairStrata.of(items.shape[0], strata), np.array(rows, dtype=np.int64)


def representative_fit(strata: PairStrata, values: np.ndarray, margin: np.ndarray,
                       n_items: int, init: np.ndarray | None = None) -> Representative:
    """The fit of `representative_strata`'s strata weighted to the attribute's `margin`."""
    votes = np.rint(strata.votes()).astype(np.int64)
    weights = survey_weights.vote_weights(values[:, None],
                                          [np.asarray(margin, dtype=np.float64)],
                                          counts=votes)
    fit = fit_weighted_strata(n_items, strata, weights.weights, init=init)
    return Representative(fit, weights, values, votes, weights.weights)


Margins = Mapping[int, np.ndarray]
"""The population's share of each value (in value order), by attribute position; the
attributes without margins left out."""


# Up to this many possible pairs (n² for n proposals: 2,896 of them), a pair's place among the
# overall counts' is read from a table of them all (4 bytes each, 32 MB at most, for the
# moment of one cut): a million cells' pairs are found in a third of the time a sort and a
# search take.
_PAIR_TABLE_MAX = 1 << 23


def _positions_of(overall_keys: np.ndarray, keys: np.ndarray, n_items: int) -> np.ndarray:
    """Where each of `keys` (pair keys) is in the sorted `overall_keys` (intp, shape of
    `keys`). ValueError when one is not there."""
    if not keys.size:
        return np.zeros(0, dtype=np.intp)
    hi = keys & 0xFFFFFFFF
    if int(hi.max()) < n_items and n_items * n_items <= _PAIR_TABLE_MAX \
            and overall_keys.shape[0] < np.iinfo(np.int32).max:
        table = np.full(n_items * n_items, -1, dtype=np.int32)
        table[(overall_keys >> 32) * n_items + (overall_keys & 0xFFFFFFFF)] = \
            np.arange(overall_keys.shape[0], dtype=np.int32)
        where = table[(keys >> 32) * n_items + hi].astype(np.intp)
        if where.min() < 0:
            raise ValueError("a cell holds a pair the overall counts do not")
        return where
    # Sorted first: a search of sorted keys walks the overall keys in order, several times
    # faster than a million random searches; a stable sort merges the cells' sorted runs.
    order = np.argsort(keys, kind="stable")
    where = np.empty_like(order)
    where[order] = np.searchsorted(overall_keys, keys[order])
    if where.max() >= overall_keys.shape[0] or not np.array_equal(overall_keys[where], keys):
        raise ValueError("a cell holds a pair the overall counts do not")
    return where


def cell_strata(overall: PairCounts, cells: Mapping[Cell, PairCounts],
                items: np.ndarray) -> tuple[PairStrata, np.ndarray]:
    """The strata of the cells over `items` (copies, so the counts may change after): each
    cell's votes, then those of voters who declared nothing (when there are some), laid out
    over the overall counts' pairs (`PairStrata`); and each stratum's value position per
    attribute, shape (n_strata, MAX_KEYS) (`survey_weights.UNKNOWN` where unknown). One pass
    over the cells' pairs together (hundreds of cells, each a few arrays)."""
    keys = sorted(cells)
    parts = [cells[cell] for cell in keys]
    sizes = np.array([part.n_pairs for part in parts], dtype=np.int64)

    def joined(arrays: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]) if arrays \
            else np.zeros(0, dtype=dtype)

    pair_keys = joined([part.pair_keys for part in parts], np.int64)
    wins_lo = joined([part.wins_lo for part in parts], np.float64)
    wins_hi = joined([part.wins_hi for part in parts], np.float64)
    ties = joined([part.ties_pair for part in parts], np.float64)
    cell_of = np.repeat(np.arange(len(parts)), sizes)
    overall_keys = overall.pair_keys
    where = _positions_of(overall_keys, pair_keys, overall.n_items)
    # The votes of voters who declared nothing: the overall counts less every cell's.
    n_overall = overall_keys.shape[0]
    rest = tuple(np.asarray(total, dtype=np.float64) - np.bincount(where, part, n_overall)
                 for total, part in ((overall.wins_lo, wins_lo), (overall.wins_hi, wins_hi),
                                     (overall.ties_pair, ties)))
    n_known = max(overall.n_items, int(items.max()) + 1 if items.size else 0)
    position = np.full(n_known, -1, dtype=np.int64)
    position[items] = np.arange(items.shape[0])
    pos_lo, pos_hi = position[overall_keys >> 32], position[overall_keys & 0xFFFFFFFF]
    pair_kept = (pos_lo >= 0) & (pos_hi >= 0)
    kept_index = np.cumsum(pair_kept) - 1
    row_kept = pair_kept[where]
    rest_rows = np.flatnonzero(pair_kept & ((rest[0] > 0) | (rest[1] > 0) | (rest[2] > 0)))
    codes = [np.frombuffer(cell, dtype=np.uint8) for cell in keys]
    if rest_rows.size:
        codes.append(np.frombuffer(all_unknown(), dtype=np.uint8))
    strata = PairStrata(
        n_items=items.shape[0], n_strata=len(codes),
        i=pos_lo[pair_kept].astype(np.intp), j=pos_hi[pair_kept].astype(np.intp),
        row_pair=np.concatenate([kept_index[where[row_kept]],
                                 kept_index[rest_rows]]).astype(np.intp),
        row_stratum=np.concatenate([cell_of[row_kept],
                                    np.full(rest_rows.shape[0], len(parts))]).astype(np.intp),
        wins_ij=np.concatenate([wins_lo[row_kept], rest[0][rest_rows]]),
        wins_ji=np.concatenate([wins_hi[row_kept], rest[1][rest_rows]]),
        ties=np.concatenate([ties[row_kept], rest[2][rest_rows]]))
    values = np.array(codes, dtype=np.int64).reshape(len(codes), MAX_KEYS)
    values[values == UNKNOWN_CODE] = survey_weights.UNKNOWN
    return strata, values


def cells_fit(strata: PairStrata, values: np.ndarray, margins: Margins, n_items: int,
              init: np.ndarray | None = None) -> Representative:
    """The fit of `cell_strata`'s strata weighted to every attribute's `margins`.

    Raises
    ------
    ValueError
        A margin that is not shares summing to 1, or a value position beyond it.
    """
    votes = np.rint(strata.votes()).astype(np.int64)
    # An attribute without margins (None) plays no part in the weights.
    columns: list[np.ndarray | None] = [None] * values.shape[1]
    for key, margin in margins.items():
        if not 0 <= key < values.shape[1]:
            raise ValueError(f"no attribute at position {key}")
        columns[key] = np.asarray(margin, dtype=np.float64)
    weights = survey_weights.vote_weights(values, columns, counts=votes)
    fit = fit_weighted_strata(n_items, strata, weights.weights, init=init,
                              groups=weights.calibration_groups())
    return Representative(fit, weights, values, votes, weights.weights)


def representative(overall: PairCounts, segments: Mapping[int, PairCounts],
                   margin: np.ndarray, items: np.ndarray,
                   init: np.ndarray | None = None) -> Representative:
    """The fit of the votes on `items` weighted to one attribute's population `margin`.

    Parameters
    ----------
    overall : PairCounts
        Every counted vote.
    segments : mapping of value position -> PairCounts
        The counted votes of each value of the attribute that has some.
    margin : ndarray of float, shape (n_values,)
        The population's share of each value (summing to 1).
    items : ndarray of int
        The proposal indices ranked (sorted).
    init : ndarray of float, optional
        Warm start (abilities per position in `items`).

    Raises
    ------
    ValueError
        A margin that is not shares summing to 1, or a value position beyond it.
    """
    strata, values = representative_strata(overall, segments, items)
    return representative_fit(strata, values, margin, items.shape[0], init)


def consensus_of(abilities: Mapping[int, np.ndarray],
                 std_errors: Mapping[int, np.ndarray]) -> Consensus:
    """`ranker.consensus.consensus` over one attribute's segments, given each value's fit
    aligned to the same items; segments in value order."""
    values = sorted(abilities)
    return consensus([abilities[v] for v in values], [std_errors[v] for v in values])


def representative_ranking(inputs: FitInput, view: Representative,
                           fit_start: np.ndarray | None = None) -> Ranking:
    """The published form of a representative fit over `inputs.items` (tallies are the raw
    counts: how many votes each proposal had, not their weight)."""
    fit = view.fit
    return ranking_from_fit(inputs, BTFit(
        abilities=fit.abilities, std_errors=fit.std_errors, ci_low=fit.ci_low,
        ci_high=fit.ci_high, iterations=fit.iterations, log_posterior=float("nan"),
        exact_std_errors=fit.exact_std_errors), fit_start=fit_start)


def _aligned(ranking: Ranking, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`ranking`'s abilities and standard errors for proposal indices `items`; a proposal it
    does not rank (not in its catalog yet) gets the prior's: ability 0, error 1/√λ."""
    order = np.argsort(ranking.proposal_index)
    known = ranking.proposal_index[order]
    where = np.clip(np.searchsorted(known, items), 0, max(known.shape[0] - 1, 0))
    found = known[where] == items if known.size else np.zeros(items.shape[0], dtype=bool)
    abilities = np.zeros(items.shape[0])
    errors = np.full(items.shape[0], 1.0 / np.sqrt(PRIOR_STRENGTH))
    abilities[found] = ranking.abilities[order][where[found]]
    errors[found] = ranking.std_errors[order][where[found]]
    return abilities, errors


def consensus_ranking(overall: Ranking,
                      segments: Mapping[int, Ranking]) -> tuple[Ranking, Consensus]:
    """The overall ranking's proposals in consensus order over one attribute's `segments`
    (value position -> that segment's ranking, at least one); with the `Consensus`, whose
    segment indices follow the value positions in increasing order.

    Each entry's score is its consensus score; its ability and interval are those of the
    segment that set it (the one that likes it least); the tallies are the overall ones. It
    reflects the votes the least recent segment ranking reflects (segments are refitted
    after the overall ranking).
    """
    items = overall.proposal_index
    fits = {value: _aligned(ranking, items) for value, ranking in segments.items()}
    agreed = consensus_of({v: f[0] for v, f in fits.items()}, {v: f[1] for v, f in fits.items()})
    order = agreed.order
    values = sorted(fits)
    abilities = np.array([fits[v][0] for v in values])[agreed.weakest_segment,
                                                        np.arange(items.shape[0])]
    errors = np.array([fits[v][1] for v in values])[agreed.weakest_segment,
                                                    np.arange(items.shape[0])]

    def frozen(values: np.ndarray) -> np.ndarray:
        out = np.asarray(values)[order]
        out.flags.writeable = False
        return out

    oldest = min(segments.values(), key=lambda ranking: ranking.votes_counted)
    ranking = dataclasses.replace(
        overall, votes_counted=oldest.votes_counted,
        last_vote_entry_id=oldest.last_vote_entry_id, proposal_index=frozen(items),
        abilities=frozen(abilities),
        std_errors=frozen(errors), ci_low=frozen(abilities - 1.96 * errors),
        ci_high=frozen(abilities + 1.96 * errors), scores=frozen(agreed.scores),
        wins=frozen(overall.wins), losses=frozen(overall.losses), ties=frozen(overall.ties),
        skips=frozen(overall.skips), appearances=frozen(overall.appearances), fit_start=None)
    return ranking, agreed


def representative_view(inputs: FitInput, fitted: Representative) -> tuple[Ranking, View]:
    """`representative_ranking` and its `View` figures."""
    weights = fitted.weights
    return representative_ranking(inputs, fitted), View(
        weighting=weights.method, effective_votes=fitted.fit.effective_votes,
        trimmed_votes=weights.trimmed_votes, margin_gap=weights.margin_gap,
        attributes=weights.used)


def consensus_view(overall: Ranking, segments: Mapping[int, Ranking]) -> tuple[Ranking, View]:
    """`consensus_ranking` and its (empty) `View` figures."""
    return consensus_ranking(overall, segments)[0], View()
