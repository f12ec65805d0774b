"""The adaptive pair-selection rule: from the latest fit, which pair the next prompt shows.

Each prompt is one of three kinds, drawn independently per call (`AdaptiveSelection.draw`):

* **Exposure** (probability `newcomer_share`, default 0.3): try a newcomer first — the
  accepted proposal with the fewest estimated votes among those under the vote threshold,
  against a uniformly random partner (the NextPair script owns that pool). This is
  Make.org's quota (`SelectionAlgorithm.scala`: 30 % of a sequence for proposals under 10
  votes, oldest first) and All Our Ideas' catch-up idea (`catchup_prompts_weights`: pairs
  weighted min(1/(votes+1), 0.05), so new ideas come first), kept per proposal instead of per
  pair so it costs nothing at 34,000 proposals. When the pool is empty (the usual case once
  every proposal has its first votes) the prompt falls through to the kinds below, so the
  quota costs nothing then.
* **Randomness floor** (probability `uniform_share`): no candidates, so the script draws a
  uniformly random unseen pair. Every pair keeps a chance of at least `uniform_share` /
  (n(n−1)/2) per prompt, which keeps the estimate consistent whatever the data did to the
  other draws (the likelihood of adaptively chosen pairs is the same function of the
  abilities; the intervals stay honest — measured below).
* **Information** (the rest): a pair whose answer is expected to teach most about what the
  consultation reports. Arena (Chiang et al. 2024, arXiv 2403.04132, Eq. 9) samples a model
  in proportion to the drop of its estimate's standard error from one more vote,
      √(Σ/n) − √(Σ/(n+1)) ∝ s³ (s the standard error, n ∝ 1/s²);
  here each proposal i (ability μ, standard error s, fit-time rank) gets the expected drop of
  a loss made of the two things a consultation reads, per vote on it:
      top  = s² · top_weight · [P(1−P) + order_weight · swap] / k
      rank = s² · c / n
  P = P(i in the top k) under a normal approximation around the midpoint between the k-th
  and (k+1)-th abilities (the item LUCB / top-k dueling bandits would query: Mohankumar &
  Khapra 2022 report −80 % annotations to find the top system), `swap` the probability that
  a top-k proposal and a neighbour are in the wrong order, and c the share of proposals
  within ±s of μ — how many pairs i could still be misordered in, i.e. its share of Kendall
  τ's errors. The s² factor makes both terms fall as a proposal's votes grow, so the top's
  share of prompts shrinks by itself once the top is settled, and a proposal with few votes
  (a recent newcomer) weighs more, up to `weight_se_cap` (below): the catch-up again.
  Heckel, Shah, Ramchandran & Wainwright (Ann. Stat. 2019) show active sampling gains at
  most logarithmic factors for a *whole* BTL ranking but much more for a *part* of it: the
  top term is where the large saving is; the rank term only has to keep τ over all
  proposals no worse than uniform pairs (it does better: opponents of close ability answer
  with p ≈ ½, the most informative vote).
  A draw picks the top table with probability top mass / (top + rank mass). A proposal from
  the top table is paired, at `duel_share` (default ½), with a second draw from the same
  table (two proposals whose membership is uncertain: the boundary duel); otherwise, and
  when that draw repeats the first, the opponent is one of the proposals whose ability lies
  within ±`window_sd` standard errors of the first's (at least `min_window` ranks either
  side), drawn uniformly — or, at `informed_opponents` (default 0, measured below), by the
  rank table's weights restricted to that window (a draw of the first itself, or a window
  whose weights are all 0, falls back to uniform): a vote teaches about both of its
  proposals, and Arena's rule picks each side by its expected gain; it costs one more
  bisection, of a slice of the same cumulative table, but bought nothing measurable.
  The window is wide on purpose: opponents chosen from *estimated*
  abilities, if too close, let a cluster of overestimated proposals confirm each other (in
  simulation a ±1 s window inflated the abilities by ~40 % and the 95 % intervals covered
  77 %); ±5 s keeps the estimate's scale and coverage at the uniform design's.

Honest intervals all along, not only at the end. Three choices keep the 95 % intervals
covering the truth from the first few thousand votes on, each against a measured failure
of the rule without it (offline replay, 1,000 proposals, a fit every 150 votes as the
cluster's ranker does, seed 2017 unless said; z = (θ̂ − θ) / s):

* Half the top's votes go to window opponents (`duel_share` ½; it was 1). With every top
  draw a duel, the estimated top 30 at 4,000 votes sat +3.0 standard errors above the truth
  on average and 0 of them were covered (uniform pairs: +1.1 to +1.6 s, with wider
  intervals): proposals lifted by a few lucky votes then played mostly each other, so their
  standard errors shrank while their level against the field stayed the lucky one. Against
  window opponents (the whole field while s is large, nearby ranks once it is small) their
  level is checked against the rest. Without any duel (`duel_share` 0) coverage holds too
  but top-10 recall held 1.5–3× later; ½ keeps most of the duel's speed.
* Only proposals with at least `top_min_votes` (10) votes enter the top table, so two or
  three lucky answers do not buy a proposal a run of top duels before it has met the field
  (the exposure quota and the rank table still give it votes).
* Standard errors above `weight_se_cap` (1 logit) weigh as 1. Early on, the weak prior
  leaves proposals with one-sided records with standard errors of 3–6, and s² weights sent
  them most of the votes — a design driven by the first answers that left 91 % covered at
  2,000 votes on one seed; capped, every proposal that is still unknown weighs the same.

Measured offline (`python -m bench.selection_offline`, 1,000 proposals, abilities
~ N(0, 1), `cluster.voter_model` answers, voters of 10–20 votes, 20 proposals accepted
mid-run, 30,000 votes; seeds 2017 / 2018 / 2019), coverage of the 95 % intervals over the
samples from 2,000 counted votes on, minimum and median:
    previous rule (duel 1, no floor, no cap): min 87.5 / 87.3 / 88.0 %, median 93.8 / 93.0 / 92.9 %
    this rule:                                min 93.4 / 94.1 / 92.6 %, median 94.7 / 94.8 / 93.1 %
    (uniform pairs, seed 2017, 22,000 votes:  min 94.1 %, median 96.3 %)
and top-10 recall held ≥ 0.8 from 17,719 / 9,084 / beyond 30,000 votes (previous rule:
16,708 / 7,053 / 14,666; no duels at all: beyond 30,000 / 21,575 / 22,854). A quarter
duel share gave coverage as good (min 92.8 / 92.6 / 94.0 %) and recall 18,726 / 24,593 /
19,706: the difference between ¼ and ½ is within the seeds' noise.
Informed opponents (`informed_opponents` 1 against 0; the same offline replay with fits
spaced by 1 % of the votes cast and diagonal standard errors, `--refit-growth 0.01
--approx-se`; 130,000 votes, seeds 1–9): votes until Kendall τ held 0.9, over uniform
pairs' votes, 0.80 / 1.13 / 0.93 / 0.87 / 0.92 / 0.94 / 0.92 / 0.88 / 0.91 (median 0.92)
against 0.96 / 1.02 / 0.89 / 0.89 / 0.90 / 0.87 / 0.96 / 0.90 / 0.80 (median 0.90): no
better; paired differences of ±0.1 per seed, luck. The *designed* τ — each pair
misordered with probability Φ(−|θi − θj| / √(si² + sj²)), true abilities and the fit's
standard errors, free of the answers' luck — tells the designs apart on one seed and found
them equal: at 100,000 votes both were worth 0.85–0.89× uniform pairs' votes on every seed
(0.856 / 0.894 / 0.857 / 0.864 / 0.880 / 0.879 / 0.879 / 0.859 against 0.847 / 0.889 /
0.854 / 0.868 / 0.886 / 0.885 / 0.873 / 0.870, seeds 1, 3–9); a 5 % floor changed it as
little (seed 1: 0.847). Late in a consultation the proposals of one window weigh nearly
alike, so whom the weights pick changes little. So the rule keeps uniform opponents.

Cluster figures (`make selection-bench`): the README.

Cost: `build` is a handful of numpy passes plus two binary searches per proposal
(O(n log n); 13 ms of CPU at 34,000 proposals, most of it in numpy calls that release the
GIL, so the gateway's event loop keeps answering while a thread builds); `draw` is
O(log n) — a bisection of a cumulative table read through a memoryview — about 4 µs, with
no per-call array work.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from pairwise.selection_summary import FitSummary


@dataclass(frozen=True)
class Draw:
    """One prompt's plan: try a newcomer first (`exposure`), else the first usable pair of
    `candidates` (unordered pairs of proposal indices, best first), else a uniformly random
    pair — which an empty `candidates` asks for outright (the randomness floor)."""

    exposure: bool
    candidates: tuple[tuple[int, int], ...]


def _table(values: ArrayLike, dtype: type) -> memoryview:
    """A read-only table for `draw`: a memoryview over a numpy array. Indexing it and
    bisecting it give plain Python numbers with no numpy call per step, like a list, and
    making it creates no Python object per element: a list of 34,000 floats would cost
    `build` milliseconds holding the GIL, which stalls the gateway's event loop."""
    array: np.ndarray = np.ascontiguousarray(values, dtype=dtype)
    array.flags.writeable = False
    return array.data


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    # Logistic approximation of Φ (absolute error < 0.01): a weight only needs its shape,
    # and numpy has no erf.
    return 1.0 / (1.0 + np.exp(-1.702 * np.clip(z, -40.0, 40.0)))


class AdaptiveSelection:
    """The rule built from one fit summary: immutable, cheap to draw from, shared by every
    NextPair call until the next fit.

    Tables are in fit-time rank order (0 = highest ability). `top_share` is the probability
    that an information draw comes from the top table; `window(rank)` the opponent window.
    """

    def __init__(self, items: ArrayLike, *, newcomer_share: float, uniform_share: float,
                 n_candidates: int = 1, top_share: float = 0.0, duel_share: float = 0.0,
                 top_cumulative: ArrayLike = (), rank_cumulative: ArrayLike = (),
                 window_lo: ArrayLike = (), window_size: ArrayLike = (),
                 informed_opponents: float = 0.0) -> None:
        self.items = _table(items, np.int64)
        self.newcomer_share = newcomer_share
        self.uniform_share = uniform_share if len(self.items) >= 2 else 1.0
        self.n_candidates = n_candidates
        self.top_share = top_share
        self.duel_share = duel_share
        self._top = _table(top_cumulative, np.float64)
        self._rank = _table(rank_cumulative, np.float64)
        self._window_lo = _table(window_lo, np.int64)
        self._window_size = _table(window_size, np.int64)
        self.informed_opponents = informed_opponents
        self._plain = (Draw(False, ()), Draw(True, ()))

    @classmethod
    def build(cls, summary: FitSummary | None, *, top_k: int, newcomer_share: float,
              uniform_share: float = 0.1, top_weight: float = 0.2, order_weight: float = 0.0,
              window_sd: float = 5.0, min_window: int = 2, top_vote_cap: float = 0.0,
              n_candidates: int = 2, duel_share: float = 0.5,
              top_min_votes: float = 10.0, weight_se_cap: float = 1.0,
              informed_opponents: float = 0.0) -> AdaptiveSelection:
        """The rule for `summary` (None: the cause has no fit yet — exposure or a uniform
        pair only). Non-finite abilities count as 0 and non-finite or non-positive standard
        errors as the largest finite one (the least known), so a damaged summary still
        gives pairs; an unsorted one is sorted."""
        if summary is None or len(summary.items) < 2:
            few = [] if summary is None else [int(x) for x in summary.items]
            return cls(few, newcomer_share=newcomer_share, uniform_share=1.0)
        items = np.asarray(summary.items, dtype=np.int64)
        mu = np.array(summary.abilities, dtype=np.float64)
        votes = np.array(summary.votes, dtype=np.float64)
        se = np.array(summary.std_errors, dtype=np.float64)
        n = len(items)
        if len(mu) != n or len(se) != n:
            raise ValueError(f"summary arrays differ in length: {n}, {len(mu)}, {len(se)}")
        unknown = ~np.isfinite(mu)
        mu[unknown] = 0.0
        known_se = np.isfinite(se) & (se > 0)
        se[~known_se | unknown] = float(se[known_se].max()) if known_se.any() else 1.0
        if np.any(mu[1:] > mu[:-1]):
            order = np.argsort(-mu, kind="stable")
            items, mu, se, votes = items[order], mu[order], se[order], votes[order]

        descending = -mu  # ascending, for searchsorted
        ranks = np.arange(n)

        def within(half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """[lo, hi): the ranks whose ability lies within μ ± half, per rank."""
            return (np.searchsorted(descending, -(mu + half), side="left"),
                    np.searchsorted(descending, -(mu - half), side="right"))

        close_lo, close_hi = within(se)
        confusable = (close_hi - close_lo - 1) / n
        k = min(top_k, n)
        membership = np.zeros(n)
        if 0 < k < n:
            p_top = _normal_cdf((mu - 0.5 * (mu[k - 1] + mu[k])) / se)
            membership = p_top * (1.0 - p_top)
        if order_weight > 0 and k > 0:
            swap = _normal_cdf(-(mu[:-1] - mu[1:]) / np.hypot(se[:-1], se[1:]))
            near = np.zeros(n)
            near[:-1] += swap
            near[1:] += swap
            near[k:] = 0.0
            membership = membership + order_weight * near
        if top_min_votes > 0:
            membership = membership * (votes >= top_min_votes)
        if top_vote_cap > 0:
            membership = membership * np.clip(1.0 - votes / top_vote_cap, 0.0, 1.0)
        weight_se = np.minimum(se, weight_se_cap) if weight_se_cap > 0 else se
        top = weight_se ** 2 * top_weight * membership / max(k, 1)
        rank = weight_se ** 2 * confusable / n
        top_mass, rank_mass = float(top.sum()), float(rank.sum())
        if not rank_mass > 0:  # every proposal alone in its ±s band: weigh them equally
            rank, rank_mass = np.ones(n), float(n)
        top_share = top_mass / (top_mass + rank_mass) if top_mass > 0 else 0.0

        lo, hi = within(window_sd * se)
        lo = np.minimum(lo, np.maximum(ranks - min_window, 0))
        hi = np.maximum(hi, np.minimum(ranks + min_window + 1, n))
        return cls(items, newcomer_share=newcomer_share,
                   uniform_share=uniform_share, n_candidates=n_candidates,
                   top_share=top_share, duel_share=duel_share,
                   top_cumulative=np.cumsum(top) / top_mass if top_share else (),
                   rank_cumulative=np.cumsum(rank) / rank_mass,
                   window_lo=lo, window_size=hi - lo, informed_opponents=informed_opponents)

    def draw(self, rng: random.Random) -> Draw:
        """One prompt's plan, from `rng` alone: O(log n), no array work."""
        uniform = rng.random
        exposure = uniform() < self.newcomer_share
        if uniform() < self.uniform_share:
            return self._plain[exposure]
        return Draw(exposure, tuple([self._pair(uniform) for _ in range(self.n_candidates)]))

    def _pair(self, uniform: Callable[[], float]) -> tuple[int, int]:
        items, last = self.items, len(self.items) - 1
        u = uniform()
        if u < self.top_share:
            # u / top_share is again uniform on [0, 1): one draw chooses table and proposal.
            first = min(bisect.bisect_right(self._top, u / self.top_share), last)
            if self.duel_share >= 1.0 or uniform() < self.duel_share:
                second = min(bisect.bisect_right(self._top, uniform()), last)
                if second != first:
                    return items[first], items[second]
        else:
            u = (u - self.top_share) / (1.0 - self.top_share)
            first = min(bisect.bisect_right(self._rank, u), last)
        lo = self._window_lo[first]
        size = self._window_size[first]
        if self.informed_opponents and uniform() < self.informed_opponents:
            # The opponent drawn by the rank table's weights restricted to the window: a
            # slice of the cumulative table, so one bisection still.
            rank = self._rank
            base = rank[lo - 1] if lo else 0.0
            mass = rank[lo + size - 1] - base
            if mass > 0:
                second = min(bisect.bisect_right(rank, base + uniform() * mass, lo, lo + size),
                             lo + size - 1)
                if second != first:
                    return items[first], items[second]
        second = lo + int(uniform() * (size - 1))
        if second >= first:
            second += 1
        return items[first], items[second]

    # Read-only views, for tests and diagnostics.

    def top_probabilities(self) -> np.ndarray:
        """P(first proposal = rank r) of a top-table draw (zeros when top_share is 0)."""
        return np.diff(self._top, prepend=0.0) if self._top else np.zeros(len(self.items))

    def rank_probabilities(self) -> np.ndarray:
        """P(first proposal = rank r) of a rank-table draw."""
        return np.diff(self._rank, prepend=0.0) if self._rank else np.zeros(len(self.items))

    def window(self, rank: int) -> range:
        """The ranks an opponent of `rank` is drawn from (uniformly, `rank` itself excluded)."""
        lo = self._window_lo[rank]
        return range(lo, lo + self._window_size[rank])
