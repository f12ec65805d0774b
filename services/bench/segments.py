"""What segments of voters cost the ranker: memory of their counts, and time to refit them.

    python -m bench.segments memory [--proposals 34000] [--votes 7000000] [--seed 1]
    python -m bench.segments refit [--proposals 2000] [--votes 1000000] [--seed 1]

`memory` applies simulated votes (uniform pairs, four attributes of five values each, every
voter declaring each attribute with probability `--declared` (1: the most segment votes),
one value of each attribute casting 60% of the votes) to the overall counts and the
segment counts, as the ranker does, and prints the bytes of the overall counts, of each
attribute's segments, and of the crossed cells.

`refit` builds the same counts at a refit-sized cause, adds 1% more votes, and times (CPU
seconds, comparable under load) what a refit costs the ranker: cutting each fit input out of
the counts and fitting it warm from its previous abilities, the overall one then every
segment, one after the other, in this process (run it with OPENBLAS_NUM_THREADS=1, as the fit
workers run); then the representative view, warm, both ways: from the cells raked to the four
attributes' margins (what the ranker serves) and from one attribute's segments (what it
served before cells, and serves when the cells are past their bound). The population's
margins are even (a fifth each), so the skewed value's votes weigh a third and the others
two. Prints JSON lines.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pairwise.voter_attributes import UNKNOWN_CODE
from ranker import bradley_terry, segment_views
from ranker.pair_counts import PairCounts
from ranker.ranking import Catalog, fit_input
from ranker.segment_counts import SegmentCounts

ATTRIBUTES, VALUES = 4, 5
# One value of each attribute casts this share of the votes (a skewed participation).
SKEWED_SHARE = 0.6
_BATCH = 500_000


def simulated_batch(rng: np.random.Generator, n_items: int, n_votes: int, declared: float,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`n_votes` decided votes over uniform pairs, with their voters' attribute codes (each
    attribute declared with probability `declared`)."""
    a = rng.integers(0, n_items, n_votes)
    b = (a + rng.integers(1, n_items, n_votes)) % n_items
    kinds = np.zeros(n_votes, dtype=np.uint8)
    others = (1 - SKEWED_SHARE) / (VALUES - 1)
    attributes = np.full((n_votes, 8), UNKNOWN_CODE, dtype=np.uint8)
    for attribute in range(ATTRIBUTES):
        values = rng.choice(VALUES, size=n_votes, p=[SKEWED_SHARE] + [others] * (VALUES - 1))
        given = rng.random(n_votes) < declared
        attributes[given, attribute] = values[given]
    return kinds, a, b, attributes


def build(n_items: int, n_votes: int, seed: int, declared: float,
          ) -> tuple[PairCounts, SegmentCounts, np.random.Generator]:
    rng = np.random.default_rng(seed)
    counts, segments = PairCounts(n_items), SegmentCounts()
    for start in range(0, n_votes, _BATCH):
        kinds, a, b, attributes = simulated_batch(rng, n_items, min(_BATCH, n_votes - start),
                                                  declared)
        counts.apply(kinds, a, b)
        segments.apply(kinds, a, b, attributes)
    counts.compact()
    for segment in segments.counts.values():
        segment.compact()
    return counts, segments, rng


def memory(n_items: int, n_votes: int, seed: int, declared: float) -> None:
    started = time.perf_counter()
    counts, segments, _ = build(n_items, n_votes, seed, declared)
    for attribute in range(ATTRIBUTES):
        dimension = [c for (k, _), c in segments.counts.items() if k == attribute]
        nbytes = sum(c.nbytes for c in dimension)
        print(json.dumps({
            "measure": "segment_memory", "proposals": n_items, "votes": n_votes,
            "seed": seed, "declared": declared, "attribute": attribute,
            "segments": len(dimension),
            "overall_bytes": counts.nbytes, "overall_pairs": counts.n_pairs,
            "segment_bytes": nbytes, "segment_pairs": sum(c.n_pairs for c in dimension),
            "ratio": round(nbytes / counts.nbytes, 3),
            "build_s": round(time.perf_counter() - started, 1)}))
    cells = segments.cells
    print(json.dumps({
        "measure": "cell_memory", "proposals": n_items, "votes": n_votes, "seed": seed,
        "declared": declared, "cells": len(cells.counts), "complete": cells.complete,
        "overall_bytes": counts.nbytes, "cell_bytes": cells.nbytes,
        "cell_pairs": sum(c.n_pairs for c in cells.counts.values()),
        "ratio": round(cells.nbytes / counts.nbytes, 3)}))


def refit(n_items: int, n_votes: int, seed: int, declared: float) -> None:
    counts, segments, rng = build(n_items, n_votes, seed, declared)
    catalog = Catalog(version=1, proposal_ids=tuple(f"p{k}" for k in range(n_items)),
                      texts=("",) * n_items, accepted=np.arange(n_items))

    def fit_all(previous: dict | None) -> tuple[dict, float, float]:
        """Abilities of the overall fit (key None) and of each segment, and the CPU seconds
        of the overall fit and of the segments' fits."""
        started = time.process_time()
        abilities: dict = {}
        overall_s = 0.0
        for segment, segment_counts in [(None, counts), *sorted(segments.counts.items())]:
            inputs = fit_input("bench", catalog, segment_counts, votes_counted=0,
                               last_vote_entry_id="")
            init = None if previous is None else previous[segment]
            # Segments' errors as the ranker computes them (belief propagation).
            overall = segment is None
            fit = bradley_terry.fit(inputs.n_items, inputs.i, inputs.j, inputs.wins_ij,
                                    inputs.wins_ji, init=init, exact=None if overall else False,
                                    exact_component_max=None if overall else 1)
            abilities[segment] = fit.abilities
            if segment is None:
                overall_s = time.process_time() - started
        return abilities, overall_s, time.process_time() - started - overall_s

    margins = {k: np.full(VALUES, 1 / VALUES) for k in range(ATTRIBUTES)}

    def representatives(previous: dict | None) -> tuple[dict, dict]:
        """Abilities and CPU seconds (cutting the strata, weights and fit) of the view from
        the cells and from attribute 0's segments; and each view's weighting."""
        abilities, seconds, weighting = {}, {}, {}
        for way in ("cells", "one_attribute"):
            started = time.process_time()
            init = None if previous is None else previous[way]
            if way == "cells":
                strata, values = segment_views.cell_strata(counts, segments.cells.counts,
                                                           catalog.accepted)
                view = segment_views.cells_fit(strata, values, margins, n_items, init)
            else:
                first = {v: c for (k, v), c in segments.counts.items() if k == 0}
                strata, values = segment_views.representative_strata(counts, first,
                                                                     catalog.accepted)
                view = segment_views.representative_fit(strata, values, margins[0], n_items,
                                                        init)
            seconds[way] = time.process_time() - started
            abilities[way] = view.fit.abilities
            weighting[way] = {"method": view.weights.method,
                              "effective_votes": round(view.fit.effective_votes),
                              "trimmed_votes": view.weights.trimmed_votes,
                              "margin_gap": round(view.weights.margin_gap, 4),
                              "strata": strata.n_strata}
        return abilities, {"seconds": seconds, "weighting": weighting}

    cold, overall_cold_s, cold_s = fit_all(None)
    views_cold, _ = representatives(None)
    kinds, a, b, attributes = simulated_batch(rng, n_items, n_votes // 100, declared)
    started = time.process_time()
    counts.apply(kinds, a, b)
    overall_apply_s = time.process_time() - started
    segments.apply(kinds, a, b, attributes)
    segments.flush()  # the counting the ranker does off its event loop, counted here
    segments_apply_s = time.process_time() - started - overall_apply_s
    _, overall_warm_s, warm_s = fit_all(cold)
    _, views = representatives(views_cold)
    print(json.dumps({
        "measure": "segment_refit", "proposals": n_items, "votes": n_votes, "seed": seed,
        "declared": declared, "segments": len(segments.counts),
        "cells": len(segments.cells.counts),
        "overall_cold_cpu_s": round(overall_cold_s, 2),
        "segments_cold_cpu_s": round(cold_s, 2),
        "overall_warm_cpu_s": round(overall_warm_s, 2),
        "segments_warm_cpu_s": round(warm_s, 2),
        "representative_cells_warm_cpu_s": round(views["seconds"]["cells"], 2),
        "representative_one_attribute_warm_cpu_s": round(views["seconds"]["one_attribute"],
                                                         2),
        "apply_1pct_overall_cpu_s": round(overall_apply_s, 3),
        "apply_1pct_segments_and_cells_cpu_s": round(segments_apply_s, 3),
        "weighting": views["weighting"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("memory", "refit"))
    parser.add_argument("--proposals", type=int)
    parser.add_argument("--votes", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--declared", type=float, default=1.0,
                        help="probability that a voter declares each attribute")
    args = parser.parse_args()
    if args.what == "memory":
        memory(args.proposals or 34_000, args.votes or 7_000_000, args.seed, args.declared)
    else:
        refit(args.proposals or 2_000, args.votes or 1_000_000, args.seed, args.declared)


if __name__ == "__main__":
    main()
