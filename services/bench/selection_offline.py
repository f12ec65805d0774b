"""Offline replay of pair selection: uniform against adaptive pairs on hidden abilities.

    python -m bench.selection_offline [--seeds 1,2,3] [--out results/selection-offline.json]

No server, no Redis: the real rule (`gateway.adaptive_selection`), the real fit
(`ranker.bradley_terry`) and the shared voter model (`cluster.voter_model`: ties, skips), with
the NextPair script's choices modelled in Python — exposure of the newcomer pool's
lowest-score member against a uniform partner, else the first usable candidate, else a
uniform unseen pair; one voter never sees a pair twice. Voters cast 10–20 votes each; the
ranker refits every `--refit-every` votes cast and the pool is reset from the fit's counts
then, as the ranker does; `--new` proposals are accepted at random times mid-run.

Reported per strategy and seed, on the fits the cluster benchmark would have sampled (its
schedule: every 1,000 counted votes or 2 % of them, whichever is more): counted votes until
top-k recall ≥ 0.8 and until Kendall τ (over every accepted proposal) ≥ 0.9, first reached
and "held" (from where the running median of 5 samples stays at the goal to the end, as
`loadtest.selection.metrics` judges the goals); the 95 % interval coverage (|θ̂ − θ| ≤ 1.96 s
with the truth centred over the ranked proposals, as `loadtest.accuracy` measures it) over
the whole curve — its minimum and median over the samples from 2,000 counted votes on, and
its value at 2k / 5k / 10k / 20k votes and at the end; and the votes cast between a mid-run
proposal's acceptance and its 10th counted vote. The cluster's ranker refits every 0.5 s
plus the fit's own time, about 150 votes of one cause at the benchmark's rate; the default
`--refit-every` is that. Each run takes seconds to minutes (a fit every refit).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr
from scipy.stats import kendalltau

from cluster.voter_model import RIGHT, SKIP, TIE, VoterModel
from gateway.adaptive_selection import AdaptiveSelection
from loadtest.selection.metrics import held_from
from pairwise.selection_summary import FitSummary
from ranker import bradley_terry

RECALL_GOAL = 0.8
TAU_GOAL = 0.9
COVERAGE_FROM = 2_000  # counted votes: coverage is judged on every sample from here on
COVERAGE_AT = (2_000, 5_000, 10_000, 20_000)
# The cluster benchmark's sampling schedule (loadtest.selection.plan's defaults).
SAMPLE_STEP = 1_000
SAMPLE_GROWTH = 0.02


@dataclass(frozen=True)
class Scenario:
    seed: int
    adaptive: bool
    n_seed: int = 1000
    n_new: int = 20
    new_from: int = 10_000  # votes cast
    new_to: int = 100_000
    spread: float = 1.0  # hidden abilities ~ N(0, spread²), as loadtest.population draws them
    max_votes: int = 200_000
    refit_every: int = 150
    refit_growth: float = 0.0  # fits at least this share of the votes cast apart
    # Diagonal standard errors except at the fits the cluster benchmark would sample (whose
    # coverage is measured): ~30× cheaper fits in between, for exploring rules.
    approx_se: bool = False
    top_k: int = 10
    newcomer_share: float = 0.3
    newcomer_votes: int = 10
    knobs: dict[str, Any] = field(default_factory=dict)


class NewcomerPool:
    """The pool as the NextPair script and the ranker keep it: score = counted votes at the
    last fit + times shown since; the lowest score under the threshold is shown first."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.scores: dict[int, int] = {}
        self._heap: list[tuple[int, int]] = []

    def add(self, item: int) -> None:
        self.scores[item] = 0
        heapq.heappush(self._heap, (0, item))

    def take(self) -> int | None:
        while self._heap:
            score, item = self._heap[0]
            if self.scores.get(item) != score:
                heapq.heappop(self._heap)  # stale entry
                continue
            if score >= self.threshold:
                return None
            heapq.heapreplace(self._heap, (score + 1, item))
            self.scores[item] = score + 1
            return item
        return None

    def refit(self, counted: np.ndarray) -> None:
        self.scores = {item: int(counted[item]) for item in self.scores
                       if counted[item] < self.threshold}
        self._heap = [(score, item) for item, score in self.scores.items()]
        heapq.heapify(self._heap)


def run(scenario: Scenario) -> dict[str, Any]:
    """One consultation; returns its curve (one point per fit) and its newcomers' delays."""
    s = scenario
    answers_rng = np.random.default_rng(s.seed)
    truth = np.random.default_rng(10_000 + s.seed).normal(0.0, s.spread, s.n_seed + s.n_new)
    rng = random.Random(s.seed * 7 + 1)
    model = VoterModel()
    n_all = s.n_seed + s.n_new
    wins = np.zeros((n_all, n_all))
    counted = np.zeros(n_all, dtype=np.int64)
    accepted = list(range(s.n_seed))
    arrivals = sorted(answers_rng.integers(s.new_from, s.new_to, s.n_new).tolist())
    accepted_at: dict[int, int] = {}
    tenth_at: dict[int, int] = {}
    pool = NewcomerPool(s.newcomer_votes)
    for item in accepted:
        pool.add(item)
    knobs = {"newcomer_share": s.newcomer_share, **s.knobs}
    rule = AdaptiveSelection.build(None, top_k=s.top_k, **knobs)
    cast = counted_total = votes_left = 0
    seen: set[tuple[int, int]] = set()
    curve: list[dict[str, float]] = []
    previous: np.ndarray | None = None
    sample_at = SAMPLE_STEP
    while cast < s.max_votes:
        block = min(max(s.refit_every, int(s.refit_growth * cast)), s.max_votes - cast)
        pairs = np.empty((block, 2), dtype=np.int64)
        for v in range(block):
            while arrivals and arrivals[0] <= cast:
                arrivals.pop(0)
                item = s.n_seed + len(accepted_at)
                accepted_at[item] = cast
                accepted.append(item)
                pool.add(item)
            if votes_left == 0:
                votes_left, seen = rng.randint(10, 20), set()
            votes_left -= 1
            pair = _choose(rule, pool, accepted, seen, rng) if s.adaptive else None
            while pair is None:
                pair = _unseen(accepted[int(rng.random() * len(accepted))],
                               accepted[int(rng.random() * len(accepted))], seen)
            seen.add(pair)
            pairs[v] = pair
            cast += 1
        answers = model.choose_many(truth[pairs[:, 0]], truth[pairs[:, 1]], answers_rng)
        kept = answers != SKIP
        left, right, answers = pairs[kept, 0], pairs[kept, 1], answers[kept]
        tie = answers == TIE
        winner = np.where(answers == RIGHT, right, left)
        loser = np.where(answers == RIGHT, left, right)
        np.add.at(wins, (winner[~tie], loser[~tie]), 1.0)
        np.add.at(wins, (left[tie], right[tie]), 0.5)
        np.add.at(wins, (right[tie], left[tie]), 0.5)
        when = cast - block + np.nonzero(kept)[0]
        np.add.at(counted, left, 1)
        np.add.at(counted, right, 1)
        counted_total += int(kept.sum())
        for item in accepted_at:
            if item not in tenth_at and counted[item] >= s.newcomer_votes:
                hits = np.sort(np.concatenate([when[left == item], when[right == item]]))
                before = counted[item] - len(hits)
                tenth_at[item] = int(hits[s.newcomer_votes - 1 - before]) + 1
        items = np.array(accepted)
        sampling = counted_total >= sample_at
        if sampling:
            sample_at = max(counted_total + SAMPLE_STEP, int(counted_total * (1 + SAMPLE_GROWTH)))
        fit = _fit(wins, items, previous, approx_se=s.approx_se and not sampling)
        previous = fit.abilities
        curve.append(_measure(fit, truth[items], s.top_k) | {"cast": cast,
                                                              "counted": counted_total})
        pool.refit(counted)
        if s.adaptive:
            order = np.argsort(-fit.abilities, kind="stable")
            rule = AdaptiveSelection.build(
                FitSummary(len(curve), items[order], fit.abilities[order],
                           fit.std_errors[order], counted[items][order]),
                top_k=s.top_k, **knobs)
    return {"seed": s.seed, "strategy": "adaptive" if s.adaptive else "uniform",
            "curve": curve,
            "newcomer_delays": [tenth_at[i] - accepted_at[i] if i in tenth_at else None
                                for i in accepted_at],
            "fewest_votes_at_end": int(counted[accepted].min())}


def _unseen(a: int, b: int, seen: set[tuple[int, int]]) -> tuple[int, int] | None:
    pair = (a, b) if a < b else (b, a)
    return pair if a != b and pair not in seen else None


def _choose(rule: AdaptiveSelection, pool: NewcomerPool, accepted: list[int],
            seen: set[tuple[int, int]], rng: random.Random) -> tuple[int, int] | None:
    draw = rule.draw(rng)
    if draw.exposure:
        newcomer = pool.take()
        if newcomer is not None:
            for _ in range(20):
                pair = _unseen(newcomer, accepted[int(rng.random() * len(accepted))], seen)
                if pair is not None:
                    return pair
    for a, b in draw.candidates:
        pair = _unseen(a, b, seen)
        if pair is not None:
            return pair
    return None


def _fit(wins: np.ndarray, items: np.ndarray, previous: np.ndarray | None, *,
         approx_se: bool = False) -> bradley_terry.BTFit:
    sub = wins[np.ix_(items, items)]
    i, j = np.triu_indices(len(items), 1)
    compared = (sub[i, j] + sub[j, i]) > 0
    i, j = i[compared], j[compared]
    init = None
    if previous is not None:
        init = np.zeros(len(items))
        init[:len(previous)] = previous
    fit = bradley_terry.fit(len(items), i, j, sub[i, j], sub[j, i],
                            prior_strength=bradley_terry.PRIOR_STRENGTH, init=init,
                            with_std_errors=not approx_se)
    if not approx_se:
        return fit
    # The information matrix's diagonal alone: close to the exact errors once every proposal
    # has met many others (the off-diagonal terms are O(1/n)), far cheaper than inverting it.
    mu = fit.abilities
    p = 1.0 / (1.0 + np.exp(-(mu[i] - mu[j])))
    info = (sub[i, j] + sub[j, i]) * p * (1.0 - p)
    diagonal = np.full(len(items), bradley_terry.PRIOR_STRENGTH)
    np.add.at(diagonal, i, info)
    np.add.at(diagonal, j, info)
    errors = 1.0 / np.sqrt(diagonal)
    return bradley_terry.BTFit.with_intervals(mu, errors, fit.iterations, fit.log_posterior,
                                              exact_std_errors=False)


def _measure(fit: bradley_terry.BTFit, truth: np.ndarray, top_k: int) -> dict[str, float]:
    k = min(top_k, len(truth))
    estimated = set(np.argsort(-fit.abilities, kind="stable")[:k].tolist())
    true_top = set(np.argsort(-truth, kind="stable")[:k].tolist())
    centred = truth - truth.mean()
    covered = np.abs(fit.abilities - centred) <= 1.96 * fit.std_errors
    # Kendall τ as the design promises it: each pair misordered with probability
    # Φ(−|θi − θj| / √(si² + sj²)) (true abilities, the fit's standard errors). Free of the
    # answers' luck that moves a measured τ by ~5 % of the votes from seed to seed, it tells
    # two rules' designs apart on one seed.
    i, j = np.triu_indices(len(truth), 1)
    misordered = ndtr(-np.abs(truth[i] - truth[j])
                      / np.hypot(fit.std_errors[i], fit.std_errors[j]))
    return {"recall": len(estimated & true_top) / k,
            "tau": float(kendalltau(fit.abilities, truth).statistic),
            "tau_design": float(1.0 - 2.0 * misordered.mean()),
            "coverage": float(covered.mean())}


def votes_to(curve: list[dict[str, float]], metric: str, goal: float) -> int | None:
    """Counted votes at the first fit whose `metric` reached `goal` (None: never)."""
    return next((int(p["counted"]) for p in curve if p[metric] >= goal), None)


def sampled(curve: list[dict[str, float]]) -> list[dict[str, float]]:
    """The fits the cluster benchmark would have read: the first at or after each of its
    sampling points."""
    out, next_at = [], SAMPLE_STEP
    for point in curve:
        if point["counted"] >= next_at:
            out.append(point)
            next_at = max(int(point["counted"]) + SAMPLE_STEP,
                          int(point["counted"] * (1 + SAMPLE_GROWTH)))
    return out


def held(curve: list[dict[str, float]], metric: str, goal: float) -> int | None:
    """Counted votes from which `metric` stays at `goal` to the end, as the cluster
    benchmark judges it (running median of its samples; None: it ends below)."""
    return held_from([{"votes_counted": int(p["counted"]), metric: p[metric]}
                      for p in curve], metric, goal)


def coverage_at(curve: list[dict[str, float]], votes: int) -> float | None:
    """Coverage of the first sample at or after `votes` counted votes."""
    after = [p["coverage"] for p in curve if p["counted"] >= votes]
    return round(after[0], 4) if after else None


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    curve = sampled(result["curve"])
    late = [p["coverage"] for p in curve if p["counted"] >= COVERAGE_FROM]
    delays = [d for d in result["newcomer_delays"] if d is not None]
    return {"seed": result["seed"], "strategy": result["strategy"],
            "votes_to_recall": votes_to(curve, "recall", RECALL_GOAL),
            "votes_to_recall_held": held(curve, "recall", RECALL_GOAL),
            "votes_to_tau": votes_to(curve, "tau", TAU_GOAL),
            "votes_to_tau_held": held(curve, "tau", TAU_GOAL),
            "votes_to_tau_design": votes_to(curve, "tau_design", TAU_GOAL),
            "coverage_min": round(min(late), 4) if late else None,
            "coverage_median": round(statistics.median(late), 4) if late else None,
            **{f"coverage_{v // 1000}k": coverage_at(curve, v) for v in COVERAGE_AT},
            "coverage_end": round(curve[-1]["coverage"], 4) if curve else None,
            "newcomer_delay_median": statistics.median(delays) if delays else None,
            "newcomer_delay_max": max(delays) if delays else None,
            "newcomers_short_of_10": sum(d is None for d in result["newcomer_delays"]),
            "fewest_votes_at_end": result["fewest_votes_at_end"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--proposals", type=int, default=1000)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--uniform-votes", type=int, default=200_000)
    parser.add_argument("--adaptive-votes", type=int, default=125_000)
    parser.add_argument("--refit-every", type=int, default=150,
                        help="votes cast between fits (the cluster: ~150)")
    parser.add_argument("--refit-growth", type=float, default=0.0,
                        help="fits at least this share of the votes cast apart (faster)")
    parser.add_argument("--approx-se", action="store_true",
                        help="diagonal standard errors between the sampled fits: "
                             "exploration only, ~10x faster")
    parser.add_argument("--strategies", default="uniform,adaptive")
    parser.add_argument("--knobs", default="{}", help="JSON of AdaptiveSelection.build knobs")
    parser.add_argument("--out", type=Path, default=Path("results/selection-offline.json"))
    args = parser.parse_args()
    rows = []
    for seed in [int(x) for x in args.seeds.split(",")]:
        for adaptive, votes in ((False, args.uniform_votes), (True, args.adaptive_votes)):
            if ("adaptive" if adaptive else "uniform") not in args.strategies.split(","):
                continue
            started = time.monotonic()
            result = run(Scenario(seed, adaptive, n_seed=args.proposals, n_new=args.new,
                                  max_votes=votes, refit_every=args.refit_every,
                                  refit_growth=args.refit_growth, approx_se=args.approx_se,
                                  knobs=json.loads(args.knobs)))
            row = summarise(result) | {"seconds": round(time.monotonic() - started, 1)}
            print(json.dumps(row), flush=True)
            rows.append(row | {"curve": result["curve"]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows))


if __name__ == "__main__":
    main()
