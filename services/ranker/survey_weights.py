"""Vote weights that make the voters look like the population: post-stratification or
raking to the population's margins, then trimmed, with Kish's effective sample size.

Each vote carries its voter's declared attributes, coded per attribute as a value index
(`UNKNOWN` when not declared). The population is described by its share of each value of
each attribute (the margins) and, when known, by its share of each crossed cell (every
combination of one value per attribute: the joint table). Weights are per cell — every vote
of a cell weighs the same — and are scaled to a mean of 1 per vote, so that a weighted fit
sees as much data as the raw one.

A cell's weight is what makes the weighted share of the votes match the population:

    post-stratification   w_cell = population share of the cell / its share of the votes,
                          when the population's share of every crossed cell is known (one
                          attribute, or a joint table) and every cell the population holds
                          has at least `MIN_CELL_VOTES` votes;
    raking                otherwise: iterative proportional fitting, one attribute at a
                          time, until the weighted share of every value of every attribute
                          matches its margin (Deming & Stephan 1940). It keeps the sample's
                          association between attributes, which margins alone cannot tell.

Shares are shares of votes, not of voters: a segment that casts 60% of the votes while
being 20% of the population has its votes weighed down to 20% of the total, whether it got
there with more voters or with more votes per voter.

Votes whose attribute is unknown keep their share of the votes on that attribute (the known
values share the rest in the margin's proportions). A value the population holds but no vote
declares cannot be represented: the margin is renormalised over the values present and the
value is listed in `VoteWeights.unrepresented`.

Trimming bounds the weights: a cell with a handful of votes standing for a large share of
the population would get a weight that makes the ranking that handful's opinion. No vote
weighs more than `MAX_WEIGHT` times the mean; the excess is spread over the other votes,
and the weights are raked and trimmed again (a few rounds) so that the margins stay as
close as the bound allows (`VoteWeights.margin_gap` says how close).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

UNKNOWN = -1
"""Value index of an attribute a voter did not declare."""

MIN_CELL_VOTES = 100
"""Post-stratification needs at least this many votes in every crossed cell: a cell's
weight is the ratio of two shares, and its sample share's relative error is about
1/√votes — 10% at 100 votes, before the clustering of votes by voter (which only adds)."""

MAX_WEIGHT = 5.0
"""The trimming bound, in multiples of the mean vote weight: five is the usual cap in
survey practice (Potter 1990; Pew and ANES trim at 5 to 6), where the variance a larger weight
adds outweighs the bias it removes. There is no lower bound: weighing down a segment that
flooded the consultation is what the weights are for."""

# Raking stops once every weighted value share is within this of its target (absolute
# share): far below any share the population is known to.
_RAKING_TOLERANCE = 1e-10
# IPF converges linearly; a consistent problem needs tens of sweeps. A problem with no exact
# solution (the margins cannot be met on the cells the votes fill) stops here, best effort,
# and says so in `margin_gap`.
_RAKING_MAX_SWEEPS = 1000
# Rounds of raking then trimming: each round moves the trimmed weights closer to the margins;
# a few are enough for the gap to stop shrinking.
_TRIM_ROUNDS = 20
_SHARE_SUM_TOLERANCE = 1e-6

POST_STRATIFICATION = "post-stratification"
RAKING = "raking"
UNWEIGHTED = "unweighted"


@dataclass(frozen=True)
class VoteWeights:
    """Weights of a set of votes, and how they were made.

    Attributes
    ----------
    weights : ndarray of float64, shape (n_votes,)
        Each vote's weight, mean 1 (an empty array for no votes).
    cells : ndarray of int, shape (n_cells, n_attributes)
        The distinct attribute combinations the votes hold (`UNKNOWN` for undeclared).
    cell_of_vote : ndarray of intp, shape (n_votes,)
        Row of `cells` each vote belongs to.
    cell_weights : ndarray of float64, shape (n_cells,)
        The weight of each cell's votes.
    cell_votes : ndarray of int64, shape (n_cells,)
        Votes per cell.
    method : str
        `POST_STRATIFICATION`, `RAKING`, or `UNWEIGHTED` (no attribute has margins).
    trimmed_votes : int
        Votes whose weight was cut to `max_weight` (0: no trimming happened).
    max_weight : float
        The trimming bound used (multiples of the mean weight).
    effective_votes : float
        Kish's effective sample size (Σw)² / Σw²: the number of equally weighted votes that
        would give the same precision to a weighted mean (votes, not voters).
    margin_gap : float
        The largest difference between a value's weighted share of the votes and its target
        share, over all attributes and values (0 for exact margins; trimming, or margins the
        filled cells cannot meet, leave a gap).
    unrepresented : tuple of (int, int)
        (attribute, value) pairs with a population share but no vote.
    used : tuple of int
        The attributes the weights are calibrated to (those with margins and a vote of a
        value with a share), in order; empty when `UNWEIGHTED`.
    """

    weights: np.ndarray
    cells: np.ndarray
    cell_of_vote: np.ndarray
    cell_weights: np.ndarray
    cell_votes: np.ndarray
    method: str
    trimmed_votes: int
    max_weight: float
    effective_votes: float
    margin_gap: float
    unrepresented: tuple[tuple[int, int], ...]
    used: tuple[int, ...] = ()

    @property
    def design_effect(self) -> float:
        """n / n_eff: how many times larger the variance of a weighted mean is than with
        equal weights (1 for equal weights; NaN for no votes)."""
        n = self.weights.shape[0]
        return n / self.effective_votes if self.effective_votes else float("nan")

    def calibration_groups(self) -> np.ndarray | None:
        """The groups whose weighted totals the weights fix, one column per grouping, shape
        (n_votes, k), over the attributes `used` only: their crossed values for
        post-stratification, each one's value for raking (`UNKNOWN` a group of its own);
        None when unweighted. Standard errors remove the variation between these groups,
        which the weighting holds fixed (`bradley_terry.weighted`): an attribute without
        margins fixes nothing, and its groups' variation stays."""
        if not self.used:
            return None
        columns = self.cells[:, list(self.used)]
        if self.method == POST_STRATIFICATION:
            _, group_of_cell, _ = unique_rows(columns)
            return group_of_cell[self.cell_of_vote][:, None]
        return columns[self.cell_of_vote]


def unique_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of an integer array (n, k), sorted; each row's index among them
    (n,); and how many rows each holds — `np.unique(values, axis=0, ...)`, computed on one
    int64 key per row (each column's codes in mixed radix). Columns of a small range
    (attribute values, voters numbered densely) are coded by offset and the keys counted
    by `bincount`, without sorting: sorting rows as records took seconds on a million."""
    values = np.asarray(values)
    n, k = values.shape
    if n == 0 or k == 0:
        rows = values[:1] if n else values[:0]
        return rows, np.zeros(n, dtype=np.intp), np.full(rows.shape[0], n, dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    for column in values.T:
        low = int(column.min())
        span = int(column.max()) - low + 1
        if span <= max(n, 1 << 16):
            codes, size = column.astype(np.int64) - low, span
        else:
            distinct, codes = np.unique(column, return_inverse=True)
            codes, size = codes.reshape(-1), distinct.shape[0]
        if radix * size >= 1 << 62:
            # Renumber the keys so far densely before they could overflow.
            _, key = np.unique(key, return_inverse=True)
            key = key.reshape(-1).astype(np.int64)
            radix = int(key.max()) + 1
        key = key * size + codes
        radix *= size
    if radix <= max(4 * n, 1 << 20):
        tally = np.bincount(key, minlength=radix)
        present = np.flatnonzero(tally)
        lookup = np.zeros(radix, dtype=np.intp)
        lookup[present] = np.arange(present.shape[0])
        inverse = lookup[key]
        first = np.empty(present.shape[0], dtype=np.intp)
        # Fancy assignment keeps the last write: reversed, that is each key's first row.
        first[inverse[::-1]] = np.arange(n - 1, -1, -1)
        return values[first], inverse, tally[present].astype(np.int64)
    _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True,
                                          return_counts=True)
    return values[first], inverse.reshape(-1), counts.astype(np.int64)


def kish_effective_size(weights: np.ndarray, counts: np.ndarray | None = None) -> float:
    """(Σw)² / Σw² for weights ≥ 0, each standing for `counts` votes (one each by
    default); 0.0 for none (or all zero)."""
    weights = np.asarray(weights, dtype=np.float64)
    counts = np.ones_like(weights) if counts is None else np.asarray(counts, np.float64)
    squares = float(np.dot(counts, weights * weights))
    return float(np.dot(counts, weights)) ** 2 / squares if squares > 0 else 0.0


def trim(weights: np.ndarray, counts: np.ndarray, max_weight: float = MAX_WEIGHT) -> np.ndarray:
    """Cell weights scaled to a mean of 1 per vote and capped at `max_weight`, the excess
    spread proportionally over the uncapped cells (repeated until none exceeds the cap).

    Parameters
    ----------
    weights : ndarray of float, shape (n_cells,)
        Weights ≥ 0, not all zero where `counts` > 0.
    counts : ndarray of int, shape (n_cells,)
        Votes per cell.
    max_weight : float
        Cap ≥ 1 in multiples of the mean vote weight.

    Returns
    -------
    ndarray of float64, shape (n_cells,)
        Σ counts·w = Σ counts, and every w ≤ max_weight (to rounding).
    """
    if max_weight < 1.0:
        raise ValueError(f"max_weight must be >= 1 (the mean weight), got {max_weight}")
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64).copy()
    total = counts.sum()
    if total == 0:
        return weights
    capped = np.zeros(weights.shape, dtype=bool)
    # Each pass caps at least one more cell or ends: at most n_cells passes.
    for _ in range(weights.shape[0] + 1):
        free_mass = float(np.dot(counts[~capped], weights[~capped]))
        room = total - max_weight * counts[capped].sum()
        if free_mass > 0:
            weights[~capped] *= room / free_mass
        over = ~capped & (weights > max_weight)
        if not over.any():
            break
        capped |= over
        weights[capped] = max_weight
    return weights


class _Raking:
    """IPF's fixed parts, worked out once for the hundreds of sweeps a weighting takes (twenty
    rounds of raking and trimming, tens of sweeps each): per attribute with margins, each
    cell's value, the cells of a known and of an unknown value, and the target shares."""

    def __init__(self, cells: np.ndarray, counts: np.ndarray,
                 margins: Sequence[np.ndarray | None],
                 present: Sequence[np.ndarray | None]) -> None:
        self.counts = counts
        votes = counts.sum()
        # Per attribute: (values of the known cells, those cells or None for all, the
        # unknown cells, target shares of the values, target share of unknown).
        self.steps: list[tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray,
                               float]] = []
        for attribute, margin in enumerate(margins):
            if margin is None:
                continue
            column = cells[:, attribute]
            known = column != UNKNOWN
            unknown_target = float(counts[~known].sum() / votes)
            seen = present[attribute]
            assert seen is not None
            kept = np.where(seen, margin, 0.0)
            targets = kept / kept.sum() * (1.0 - unknown_target)
            if known.all():
                self.steps.append((column, None, np.zeros(0, dtype=np.intp), targets,
                                   unknown_target))
            else:
                self.steps.append((column[known], np.flatnonzero(known),
                                   np.flatnonzero(~known), targets, unknown_target))

    def rake(self, weights: np.ndarray) -> np.ndarray:
        """IPF from `weights` (n_cells,): each sweep scales every attribute's values in turn
        to their target share (`UNKNOWN` to its share of the votes); stops when all are
        within `_RAKING_TOLERANCE`, or after `_RAKING_MAX_SWEEPS` (the caller measures the
        gap)."""
        weights = weights.copy()
        for _ in range(_RAKING_MAX_SWEEPS):
            if self.sweep(weights) <= _RAKING_TOLERANCE:
                break
        return weights

    def sweep(self, weights: np.ndarray, apply: bool = True) -> float:
        """One IPF sweep over the attributes, scaling `weights` in place (unless not
        `apply`); returns the largest gap between a share and its target seen on the way."""
        gap = 0.0
        for values, known, unknown, targets, unknown_target in self.steps:
            mass = self.counts * weights
            total = mass.sum()
            if known is None:
                shares = np.bincount(values, mass, targets.shape[0]) / total
                unknown_share = 0.0
            else:
                shares = np.bincount(values, mass[known], targets.shape[0]) / total
                unknown_share = float(mass[unknown].sum() / total)
            gap = max(gap, float(np.max(np.abs(shares - targets))),
                      abs(unknown_share - unknown_target))
            if not apply:
                continue
            factors = np.divide(targets, shares, out=np.ones_like(targets), where=shares > 0)
            if known is None:
                weights *= factors[values]
            else:
                weights[known] *= factors[values]
                if unknown_share > 0:
                    weights[unknown] *= unknown_target / unknown_share
        return gap

    def margin_gap(self, weights: np.ndarray) -> float:
        """The largest gap between a weighted share and its target, over every attribute."""
        return self.sweep(weights, apply=False)


def _check_shares(shares: np.ndarray, name: str) -> np.ndarray:
    shares = np.asarray(shares, dtype=np.float64)
    if shares.ndim < 1 or not np.all(np.isfinite(shares)) or np.any(shares < 0):
        raise ValueError(f"{name} must hold finite shares >= 0")
    if abs(float(shares.sum()) - 1.0) > _SHARE_SUM_TOLERANCE:
        raise ValueError(f"{name} must sum to 1, got {float(shares.sum()):.6g}")
    return shares


def vote_weights(
    values: np.ndarray,
    margins: Sequence[np.ndarray | None],
    *,
    joint: np.ndarray | None = None,
    min_cell_votes: int = MIN_CELL_VOTES,
    max_weight: float = MAX_WEIGHT,
    counts: np.ndarray | None = None,
) -> VoteWeights:
    """Weights that make each vote's attributes match the population's shares.

    Parameters
    ----------
    values : ndarray of int, shape (n_votes, n_attributes)
        Each vote's value index per attribute, in [0, len(margins[a])), or `UNKNOWN`.
    margins : sequence of ndarray of float or None, one per attribute
        The population's share of each value (≥ 0, summing to 1); None for an attribute
        the population is not described on (it plays no part in the weights).
    joint : ndarray of float, shape (len(margins[0]), len(margins[1]), ...), optional
        The population's share of each crossed cell (summing to 1), when known; enables
        post-stratification on several attributes. Its margins should be `margins`.
    min_cell_votes : int
        Post-stratification needs this many votes in each cell the population holds.
    max_weight : float
        Trimming bound in multiples of the mean weight (≥ 1).
    counts : ndarray of int, shape (n_rows,), optional
        When given, each row of `values` stands for this many votes (e.g. one row per
        segment, from counts kept per segment), and the result's per-vote arrays
        (`weights`, `cell_of_vote`) are per row.

    Returns
    -------
    VoteWeights

    Raises
    ------
    ValueError
        Shapes disagree, a value index is out of range, or shares are negative, not
        finite or do not sum to 1.
    """
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != len(margins):
        raise ValueError(f"values must have shape (n_votes, {len(margins)}), "
                         f"got {values.shape}")
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError("values must be integer value indices")
    checked = [None if m is None else _check_shares(m, f"margins[{a}]")
               for a, m in enumerate(margins)]
    for attribute, margin in enumerate(checked):
        if margin is None:
            continue
        column = values[:, attribute]
        if column.size and (column.min() < UNKNOWN or column.max() >= margin.shape[0]):
            raise ValueError(f"values[:, {attribute}] must lie in [{UNKNOWN}, "
                             f"{margin.shape[0]})")
    cells, cell_of_vote, cell_votes = unique_rows(values)
    if counts is not None:
        counts = np.asarray(counts)
        if counts.shape != (values.shape[0],) or (counts.size and counts.min() < 0):
            raise ValueError("counts must hold one count >= 0 per row of values")
        cell_votes = np.bincount(cell_of_vote, counts, cells.shape[0]).astype(np.int64)
    n_votes = int(cell_votes.sum())
    used = [a for a, m in enumerate(checked) if m is not None]
    if n_votes == 0 or not used:
        weights = np.ones(cells.shape[0])
        return _result(weights, cells, cell_of_vote, cell_votes, UNWEIGHTED, 0, max_weight,
                       0.0, ())
    present: list[np.ndarray | None] = []
    unrepresented: list[tuple[int, int]] = []
    for attribute, margin in enumerate(checked):
        if margin is None:
            present.append(None)
            continue
        column = cells[:, attribute]
        seen = np.bincount(column[column != UNKNOWN], minlength=margin.shape[0]) > 0
        present.append(seen)
        unrepresented += [(attribute, int(v)) for v in np.flatnonzero((margin > 0) & ~seen)]
        if not (margin * seen).any():
            # Nothing to rake this attribute to: every vote is of an unknown or a
            # zero-share value.
            present[-1] = None
            checked[attribute] = None
    votes = cell_votes.astype(np.float64)
    method = RAKING
    weights = np.ones(cells.shape[0])
    used = [a for a, m in enumerate(checked) if m is not None]
    groups, group_of_cell, _ = unique_rows(cells[:, used])
    group_votes = np.bincount(group_of_cell, votes, groups.shape[0])
    population = _group_shares(groups, [checked[a] for a in used], joint)
    if population is not None and not unrepresented:
        known = population >= 0
        held = known & (population > 0)
        cross = checked[used[0]] if len(used) == 1 else joint
        assert cross is not None  # a population share per group needs one or the other
        expected = int(np.count_nonzero(cross))
        if np.all(group_votes[held] >= min_cell_votes) and np.count_nonzero(held) == expected:
            method = POST_STRATIFICATION
            unknown_share = group_votes[~known].sum() / n_votes
            sample = group_votes / n_votes
            group_weights = np.where(known, population * (1.0 - unknown_share) / sample, 1.0)
            weights = group_weights[group_of_cell]
    raking = _Raking(cells, votes, checked, present)
    if method == RAKING:
        weights = raking.rake(weights)
    weights *= n_votes / float(np.dot(votes, weights))
    trimmed = trim(weights, votes, max_weight)
    was_trimmed = bool(np.any(weights > max_weight * (1 + 1e-9)))
    for _ in range(_TRIM_ROUNDS if was_trimmed else 0):
        # Rake the trimmed weights back towards the margins, and trim again: the capped
        # cells stay at the cap, the others absorb what the cap took.
        trimmed = trim(raking.rake(trimmed), votes, max_weight)
    capped = trimmed >= max_weight * (1 - 1e-9)
    trimmed_votes = int(cell_votes[capped].sum()) if was_trimmed else 0
    gap = raking.margin_gap(trimmed)
    return _result(trimmed, cells, cell_of_vote, cell_votes, method, trimmed_votes,
                   max_weight, gap, tuple(unrepresented), tuple(used))


def _group_shares(groups: np.ndarray, margins: Sequence[np.ndarray | None],
                  joint: np.ndarray | None) -> np.ndarray | None:
    """Population share of each group (a combination of values of the attributes with
    margins; −1 for groups with an unknown value) when every crossed cell's share is known:
    one attribute, or a joint table. None otherwise."""
    if len(margins) == 1 and joint is None:
        margin = margins[0]
        assert margin is not None
        column = groups[:, 0]
        return np.where(column == UNKNOWN, -1.0, margin[np.maximum(column, 0)])
    if joint is None:
        return None
    joint = _check_shares(joint, "joint")
    expected = tuple(m.shape[0] for m in margins if m is not None)
    if joint.shape != expected:
        raise ValueError(f"joint must have shape {expected}, got {joint.shape}")
    known = np.all(groups != UNKNOWN, axis=1)
    shares = np.full(groups.shape[0], -1.0)
    shares[known] = joint[tuple(groups[known].T)]
    return shares


def _result(weights: np.ndarray, cells: np.ndarray, cell_of_vote: np.ndarray,
            cell_votes: np.ndarray, method: str, trimmed_votes: int, max_weight: float,
            gap: float, unrepresented: tuple[tuple[int, int], ...],
            used: tuple[int, ...] = ()) -> VoteWeights:
    per_vote = weights[cell_of_vote] if cell_of_vote.size else np.zeros(0)
    return VoteWeights(
        weights=per_vote, cells=cells, cell_of_vote=cell_of_vote, cell_weights=weights,
        cell_votes=cell_votes, method=method, trimmed_votes=trimmed_votes,
        max_weight=max_weight, effective_votes=kish_effective_size(weights, cell_votes),
        margin_gap=gap, unrepresented=unrepresented, used=used)
