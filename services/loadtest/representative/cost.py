"""What a refit of every segment view costs: 20 segment fits (4 attributes × 5 values), the
weighted fit and the consensus, at 2,000 proposals and 1,000,000 votes, after new votes.

The segment fits read their pair counts as the ranker keeps them (`SegmentCounts`: one
`SegmentPairCounts` per segment, cut with `fit_input` in the serving process) and stop at the
ranker's segment tolerance (`fit_scheduler.SEGMENT_TOLERANCE`; also timed at the overall
fits' default, for comparison). The weighted fit is timed three ways: as the ranker serves
it, from its counts per crossed cell (625 cells) raked to all four attributes' margins
(`segment_views.cell_strata` then `cells_fit`: the cut in the serving process, the weights
and the fit in the fit worker); raked to the same margins from the votes themselves (errors
clustered by voter); and post-stratified to one attribute from that attribute's segments,
what the ranker serves when its cells are past their bound. Every fit is warm-started from
the previous one, as the ranker's refits are. The votes' counting in the segments and cells,
which waits until they are read (`ranker.segment_counts`), is done before each refit and
timed apart. The unweighted fit of all votes, refitted the same way in the same run, is the
reference: on a shared machine its time says how loaded the run was.

Those stages run one after the other in this process (CPU seconds). `layout` then times the
wall seconds of a refit of every view as the ranker lays it out (`ranker.fit_pool`): the
overall fit in the fit worker while the segments are fitted one after the other in the
segment worker, then the representative fit in the fit worker; beside it, the overall fit
alone through the same worker, the reference.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from scipy.special import expit

from loadtest.representative.run import SEGMENT_EXACT
from pairwise import vote_log
from pairwise.voter_attributes import MAX_KEYS, UNKNOWN_CODE
from ranker import bradley_terry as bt
from ranker import segment_views, survey_weights
from ranker.bradley_terry.weighted import fit_weighted
from ranker.consensus import consensus
from ranker.fit_pool import FitPool
from ranker.fit_scheduler import SEGMENT_TOLERANCE
from ranker.pair_counts import PairCounts
from ranker.ranking import Catalog, FitInput, fit_input
from ranker.segment_counts import SegmentCounts
from ranker.sparse_pair_counts import SegmentPairCounts

WIN, TIE = vote_log.WIN_CODE, vote_log.TIE_CODE
_T = TypeVar("_T")


def _votes(rng: np.random.Generator, n_proposals: int, n_votes: int, n_attributes: int,
           n_values: int, first_voter: int) -> dict[str, np.ndarray]:
    """Votes on uniformly random pairs by voters casting 10 votes on average, each voter's
    value of each attribute drawn from a skewed participation (the same in every call)."""
    abilities = np.random.default_rng(0).normal(0, 1, n_proposals)
    participation = np.random.default_rng(1).dirichlet(np.full(n_values, 2.0), n_attributes)
    per_voter = rng.geometric(0.1, n_votes // 5)
    per_voter = per_voter[: int(np.searchsorted(np.cumsum(per_voter), n_votes)) + 1]
    voters = np.repeat(np.arange(per_voter.shape[0]), per_voter)[:n_votes]
    values = np.column_stack([rng.choice(n_values, per_voter.shape[0], p=p)
                              for p in participation])[voters]
    a = rng.integers(0, n_proposals, n_votes)
    b = (a + rng.integers(1, n_proposals, n_votes)) % n_proposals
    a_wins = rng.random(n_votes) < expit(abilities[a] - abilities[b])
    ties = rng.random(n_votes) < 0.05
    return {"winners": np.where(a_wins, a, b), "losers": np.where(a_wins, b, a),
            "ties": ties, "voters": voters + first_voter, "values": values}


class _Views:
    """Every view of one cause, refitted warm from the previous round."""

    def __init__(self, n_proposals: int, n_attributes: int, n_values: int) -> None:
        self.n = n_proposals
        self.items = np.arange(n_proposals)
        self.overall = PairCounts(n_proposals)
        self.counts = SegmentCounts()
        self.catalog = Catalog(1, tuple(f"p{k}" for k in range(n_proposals)),
                               ("",) * n_proposals, self.items)
        self.votes: dict[str, np.ndarray] = {}
        self.previous: dict[Any, np.ndarray] = {}
        self.margins = [np.full(n_values, 1.0 / n_values)] * n_attributes

    @property
    def segments(self) -> dict[tuple[int, int], SegmentPairCounts]:
        return self.counts.counts

    def apply(self, votes: dict[str, np.ndarray]) -> float:
        """Count `votes` as the ranker does; the CPU seconds of counting them in their
        segments and cells (`SegmentCounts.flush`, which the ranker runs off its event
        loop)."""
        kinds = np.where(votes["ties"], TIE, WIN).astype(np.uint8)
        self.overall.apply(kinds, votes["winners"], votes["losers"])
        attributes = np.full((kinds.shape[0], MAX_KEYS), UNKNOWN_CODE, dtype=np.uint8)
        attributes[:, :votes["values"].shape[1]] = votes["values"]
        self.counts.apply(kinds, votes["winners"], votes["losers"], attributes)
        started = time.process_time()
        self.counts.flush()
        self.votes = votes if not self.votes else {
            name: np.concatenate([self.votes[name], votes[name]]) for name in votes}
        return time.process_time() - started

    def refit(self) -> dict[str, dict[str, float]]:
        """Wall and CPU seconds of each stage of one refit of every view."""
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}

        def timed(stage: str, work: Callable[[], _T]) -> _T:
            start, start_cpu = time.perf_counter(), time.process_time()
            result = work()
            wall[stage] = time.perf_counter() - start
            cpu[stage] = time.process_time() - start_cpu
            return result

        overall = timed("reference: overall fit", lambda: bt.fit(
            self.n, *self.overall.subset(self.items), init=self.previous.get("overall")))
        self.previous["overall"] = overall.abilities

        inputs = timed("20 segment cuts", self.segment_inputs)

        def segment_fits(tol: float, keep: bool) -> dict[tuple[int, int], bt.BTFit]:
            fits = {}
            for segment, cut in inputs.items():
                fits[segment] = bt.fit(self.n, cut.i, cut.j, cut.wins_ij, cut.wins_ji,
                                       init=self.previous.get(segment), exact=SEGMENT_EXACT,
                                       exact_component_max=1, tol=tol)
            if keep:
                self.previous.update({k: f.abilities for k, f in fits.items()})
            return fits

        timed("20 segment fits at the overall tolerance",
              lambda: segment_fits(bt.TOLERANCE, keep=False))
        fits = timed("20 segment fits", lambda: segment_fits(SEGMENT_TOLERANCE, keep=True))
        weights = timed("weights (raking)", lambda: survey_weights.vote_weights(
            self.votes["values"], self.margins))
        weighted = timed("weighted fit + sandwich", lambda: fit_weighted(
            self.n, self.votes["winners"], self.votes["losers"], self.votes["ties"],
            weights.weights, self.votes["voters"], groups=weights.calibration_groups(),
            init=self.previous.get("weighted")))
        self.previous["weighted"] = weighted.abilities
        strata, values = timed("served: the cells' strata cut from counts", lambda: (
            segment_views.cell_strata(self.overall, self.counts.cells.counts, self.items)))
        served = timed("served: the cells raked to 4 attributes (weights + fit)", lambda: (
            segment_views.cells_fit(strata, values, dict(enumerate(self.margins)), self.n,
                                    self.previous.get("served"))))
        self.previous["served"] = served.fit.abilities
        one = timed("one attribute from its segments (cut + weights + fit)", lambda: (
            segment_views.representative(
                self.overall, {v: self.segments[(0, v)] for v in range(len(self.margins[0]))},
                self.margins[0], self.items, init=self.previous.get("one attribute"))))
        self.previous["one attribute"] = one.fit.abilities
        first = [fits[(0, v)] for v in range(len(self.margins[0]))]
        timed("consensus", lambda: consensus([f.abilities for f in first],
                                             [f.std_errors for f in first]))
        out: dict[str, Any] = {}
        for name, seconds in (("wall_s", wall), ("cpu_s", cpu)):
            seconds["views, raking the votes (segments, weights, weighted, consensus)"] = sum(
                seconds[k] for k in ("20 segment fits", "weights (raking)",
                                     "weighted fit + sandwich", "consensus"))
            seconds["views as served (segment cuts and fits, cells, consensus)"] = sum(
                seconds[k] for k in ("20 segment cuts", "20 segment fits",
                                     "served: the cells' strata cut from counts",
                                     "served: the cells raked to 4 attributes (weights + fit)",
                                     "consensus"))
            seconds["whole refit as served (overall fit and every view)"] = (
                seconds["reference: overall fit"]
                + seconds["views as served (segment cuts and fits, cells, consensus)"])
            out[name] = {k: round(v, 3) for k, v in seconds.items()}
        out["representative"] = {
            "method": served.weights.method, "trimmed_votes": served.weights.trimmed_votes,
            "margin_gap": round(served.weights.margin_gap, 4),
            "effective_votes": round(served.fit.effective_votes),
            "strata": int(values.shape[0]), "iterations": served.fit.iterations}
        return out


    def segment_inputs(self) -> dict[tuple[int, int], FitInput]:
        return {segment: fit_input("cost", self.catalog, counts, votes_counted=0,
                                   last_vote_entry_id="")
                for segment, counts in self.segments.items()}

    async def layout(self, pool: FitPool) -> dict[str, float]:
        """Wall seconds of the overall fit alone through `pool` (the reference), and of a
        refit of every view as the ranker lays it out (see the module docstring)."""
        overall = self.overall.subset(self.items)
        inputs = self.segment_inputs()
        strata, values = segment_views.cell_strata(self.overall, self.counts.cells.counts,
                                                   self.items)

        async def overall_fit() -> bt.BTFit:
            return await pool.fit(self.n, *overall, prior_strength=bt.PRIOR_STRENGTH,
                                  init=self.previous.get("overall"))

        async def segment_fits() -> None:
            for segment, cut in inputs.items():
                await pool.fit(self.n, cut.i, cut.j, cut.wins_ij, cut.wins_ji,
                               prior_strength=bt.PRIOR_STRENGTH,
                               init=self.previous.get(segment), approximate_errors=True,
                               tol=SEGMENT_TOLERANCE, segment=True)

        async def overall_then_representative() -> None:
            await overall_fit()
            await pool.call(segment_views.cells_fit, strata, values,
                            dict(enumerate(self.margins)), self.n, self.previous.get("served"))

        start = time.perf_counter()
        await overall_fit()
        reference = time.perf_counter() - start
        start = time.perf_counter()
        await asyncio.gather(overall_then_representative(), segment_fits())
        return {"reference: overall fit alone": round(reference, 3),
                "every view as served, in the fit and segment workers":
                    round(time.perf_counter() - start, 3)}


async def _layouts(views: _Views, rounds: int) -> list[dict[str, float]]:
    # The benchmark's own niceness (19): the workers may not raise their priority above it.
    pool = FitPool(1, nice=19, segment_workers=1)
    try:
        await views.layout(pool)  # starts both workers
        return [await views.layout(pool) for _ in range(rounds)]
    finally:
        await pool.close()


def measure(n_proposals: int = 2_000, n_votes: int = 1_000_000, n_attributes: int = 4,
            n_values: int = 5, new_votes: int = 10_000, rounds: int = 3,
            seed: int = 1) -> dict[str, Any]:
    """Seconds per stage of `rounds` refits, each after `new_votes` more votes, following a
    first (cold) fit of `n_votes`."""
    rng = np.random.default_rng(seed)
    views = _Views(n_proposals, n_attributes, n_values)
    views.apply(_votes(rng, n_proposals, n_votes, n_attributes, n_values, 0))
    cold = views.refit()
    refits = []
    for r in range(rounds):
        flush_s = views.apply(_votes(rng, n_proposals, new_votes, n_attributes, n_values,
                                     10_000_000 * (r + 1)))
        refits.append({**views.refit(), "segments_count_cpu_s": round(flush_s, 3)})
    return {"n_proposals": n_proposals, "n_votes": n_votes, "segments": n_attributes * n_values,
            "new_votes_per_refit": new_votes, "cold": cold, "refits": refits,
            "layout_wall_s": asyncio.run(_layouts(views, rounds))}
