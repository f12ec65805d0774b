"""Few-vote items (late proposals, say): settled exactly, with everyone else held fixed.

Such items barely constrain anyone, yet their own log-likelihood is far from quadratic, so
Newton's method needs many global iterations — each a pass over every pair — to walk them to
their optimum. With everyone else's abilities held fixed, though, they form a small problem
of their own (a forest of short chains hanging off the well-measured items, typically):
`FewVoteItems.settle` solves it to convergence before each global step, over their few pairs
only, by a damped Newton method with an exact sparse solve and a backtracking line search per
connected group, so ℓ can only rise.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

from ranker.bradley_terry.graph import ComparisonGraph, sum_by
from ranker.bradley_terry.likelihood import Objective, Point, sigmoid

FEW_VOTES = 16.0
"""An item with at most this many votes counts as few-vote: at most 4 units of information
(¼ per vote), so its likelihood is far from quadratic, while such items hold a small share
of all pairs, which keeps settling them cheap."""

MAX_ITEM_STEP = 4.0
"""Largest move of one item in one step, logits: 4 takes a win probability from ½ to 0.98,
so every useful step fits, while an item with a handful of votes (so little curvature that
its Newton step can be tens of logits) cannot force its whole component's step length down."""

# Groups of few-vote items larger than this are left to the global Newton step: on early,
# sparse data they form one giant group (a random graph), whose sparse factorisation fills in
# and cost 0.4–9 s per settle at 2,000 items where the global step takes ~10–20 ms.
_GROUP_MAX = 64
# Newton on a small group converges in a handful of steps; this bounds a pathological one
# without failing the fit (the global iterations go on from wherever it stopped).
_MAX_ITER = 30
# Far below the fit's default tolerance (1e-6 logits): a settled item adds nothing to it.
_STEP_TOL = 1e-8
# 2⁻⁶⁰ of a step is below the rounding of any ability: further halvings cannot ascend.
_MAX_HALVINGS = 60
# Floor inside log σ: σ underflows to 0 past d ≈ −745, and log 0 would make ℓ −inf.
_TINY = 1e-300


class FewVoteItems:
    """The items with at most `FEW_VOTES` votes (in groups of ≤ `_GROUP_MAX`) and every pair
    they are in."""

    def __init__(self, graph: ComparisonGraph) -> None:
        votes = graph.sums_over_lo(graph.totals) + graph.sums_over_hi(graph.totals)
        weak = (votes > 0) & (votes <= FEW_VOTES)
        # Only small groups: when most items have few votes (early, sparse data) the weak
        # items form one giant group, which is the whole problem again — and its sparse
        # factorisation fills in (a random graph is an expander), costing more than a dense
        # one. The global Newton step handles such items well enough.
        candidates = np.flatnonzero(weak)
        if candidates.shape[0]:
            on_lo, on_hi = graph.repeat_over_lo(weak), weak[graph.j]
            among = np.flatnonzero(on_lo & on_hi)
        else:
            among = np.zeros(0, dtype=np.intp)
        if among.shape[0]:
            _, group = scipy.sparse.csgraph.connected_components(
                scipy.sparse.coo_matrix(
                    (np.ones(among.shape[0]), (graph.i[among], graph.j[among])),
                    shape=(graph.n, graph.n)),
                directed=False)
            sizes = np.bincount(group[candidates])
            too_large = candidates[sizes[group[candidates]] > _GROUP_MAX]
            if too_large.shape[0]:
                weak[too_large] = False
                on_lo, on_hi = graph.repeat_over_lo(weak), weak[graph.j]
        self.items = np.flatnonzero(weak)
        m = self.items.shape[0]
        self.edges = np.flatnonzero(on_lo | on_hi) if m else np.zeros(0, dtype=np.intp)
        lo, hi = graph.i[self.edges], graph.j[self.edges]
        local = np.full(graph.n, -1, dtype=np.int64)
        local[self.items] = np.arange(m)
        self.lo_local, self.hi_local = local[lo], local[hi]
        self.lo, self.hi = lo, hi
        self.wins_lo, self.wins_hi = graph.wins_ij[self.edges], graph.wins_ji[self.edges]
        both = (self.lo_local >= 0) & (self.hi_local >= 0)
        coupled = scipy.sparse.coo_matrix(
            (np.ones(int(both.sum())), (self.lo_local[both], self.hi_local[both])), shape=(m, m)
        ).tocsr()
        self.groups, self.group = scipy.sparse.csgraph.connected_components(
            coupled, directed=False
        )
        # Each pair's ℓ counts toward the group of its weak side (both sides share one).
        self.edge_group = self.group[np.where(self.lo_local >= 0, self.lo_local, self.hi_local)]
        self.both = both

    def _terms(self, abilities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pair (lo→hi): residual ∂ℓ/∂θ_lo, information, and log-likelihood."""
        diff = abilities[self.lo] - abilities[self.hi]
        p_lo = sigmoid(diff, np.empty_like(diff))
        p_hi = sigmoid(-diff, np.empty_like(diff))
        residual = self.wins_lo * p_hi - self.wins_hi * p_lo
        information = (self.wins_lo + self.wins_hi) * p_lo * p_hi
        log_likelihood = self.wins_lo * np.log(np.maximum(p_lo, _TINY)) + self.wins_hi * (
            np.log(np.maximum(p_hi, _TINY)))
        return residual, information, log_likelihood

    def _objectives(self, abilities: np.ndarray, lam: float) -> np.ndarray:
        """ℓ restricted to the weak items' pairs and priors, per group, (groups,)."""
        _, _, log_likelihood = self._terms(abilities)
        values = abilities[self.items]
        return sum_by(self.edge_group, log_likelihood, self.groups) - 0.5 * lam * sum_by(
            self.group, values * values, self.groups)

    def _side_sums(self, values: np.ndarray, sign_hi: float) -> np.ndarray:
        """Σ per weak item of per-pair `values` (times `sign_hi` on the hi side), (m,)."""
        m = self.items.shape[0]
        on_lo = self.lo_local >= 0
        on_hi = self.hi_local >= 0
        return sum_by(self.lo_local[on_lo], values[on_lo], m) + sign_hi * sum_by(
            self.hi_local[on_hi], values[on_hi], m)

    def settle(self, objective: Objective, point: Point) -> Point:
        """The point with the weak items at their optimum given the others (ℓ never falls).

        The gradient, Hessian diagonal, per-pair information (in `objective`) and ℓ of the
        returned point are updated for the weak items' pairs only. Returns `point` itself
        when there is no few-vote item.
        """
        m = self.items.shape[0]
        if m == 0:
            return point
        graph = objective.graph
        lam = graph.prior_strength
        before = point.abilities
        abilities = before.copy()
        current = self._objectives(abilities, lam)
        for _ in range(_MAX_ITER):
            residual, information, _ = self._terms(abilities)
            values = abilities[self.items]
            grad = self._side_sums(residual, -1.0) - lam * values
            diagonal = self._side_sums(information, 1.0) + lam
            coupling = information[self.both]
            hessian = scipy.sparse.coo_matrix(
                (np.concatenate([diagonal, -coupling, -coupling]),
                 (np.concatenate([np.arange(m), self.lo_local[self.both],
                                  self.hi_local[self.both]]),
                  np.concatenate([np.arange(m), self.hi_local[self.both],
                                  self.lo_local[self.both]]))),
                shape=(m, m)).tocsc()
            step = np.clip(scipy.sparse.linalg.spsolve(hessian, grad), -MAX_ITEM_STEP,
                           MAX_ITEM_STEP)
            slopes = sum_by(self.group, grad * step, self.groups)
            if not np.all(slopes > 0):
                # Clipping can cost a group its ascent; the scaled gradient never does.
                scaled = np.clip(grad / diagonal, -MAX_ITEM_STEP, MAX_ITEM_STEP)
                step = np.where((slopes > 0)[self.group], step, scaled)
            if float(np.max(np.abs(step))) <= _STEP_TOL:
                break
            steps = np.ones(self.groups)
            slack = 1e-12 * (1.0 + np.abs(current))  # rounding, not a worse point
            for _ in range(_MAX_HALVINGS):
                trial = abilities.copy()
                trial[self.items] = values + steps[self.group] * step
                objectives = self._objectives(trial, lam)
                worse = objectives < current - slack
                if not worse.any():
                    break
                steps[worse] *= 0.5
            else:
                # Rounding-level changes only: leave those groups where they are.
                steps[worse] = 0.0
                trial[self.items] = values + steps[self.group] * step
                objectives = self._objectives(trial, lam)
            abilities = trial
            current = objectives
            if float(np.max(np.abs(steps[self.group] * step))) <= _STEP_TOL:
                break
        old = self._terms(before)
        new = self._terms(abilities)
        n = graph.n
        residual_change = new[0] - old[0]
        gradient = point.gradient + sum_by(self.lo, residual_change, n) - sum_by(
            self.hi, residual_change, n)
        gradient -= lam * (abilities - before)
        information_change = new[1] - old[1]
        diagonal = point.diagonal + sum_by(self.lo, information_change, n) + sum_by(
            self.hi, information_change, n)
        objective.information[self.edges] = new[1]
        count, labels, _ = graph.components()
        change = sum_by(labels[np.where(self.lo_local >= 0, self.lo, self.hi)],
                        new[2] - old[2], count)
        change -= 0.5 * lam * sum_by(labels[self.items],
                                     abilities[self.items] ** 2 - before[self.items] ** 2,
                                     count)
        settled_objectives = None if point.objectives is None else point.objectives + change
        return Point(abilities, settled_objectives, gradient, diagonal)
