"""One seed of the simulation: draw the population and the votes, fit the raw, weighted and
consensus rankings, and compare each with the population's true ranking."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from loadtest.accuracy import TOP_RETAINED
from loadtest.representative.population import (
    AGE_BANDS,
    REGIONS,
    SegmentedPopulation,
    Votes,
)
from pairwise.voter_attributes import MAX_KEYS, UNKNOWN_CODE
from ranker import bradley_terry as bt
from ranker import segment_views, survey_weights
from ranker.bradley_terry.weighted import fit_weighted
from ranker.cell_counts import CellCounts
from ranker.consensus import consensus
from ranker.pair_counts import TIE, WIN, PairCounts
from ranker.scores import win_probability_scores

# Segment fits' standard errors by belief propagation, as the cost of many segments allows
# (within 0.3% of the exact ones on random pairs: ranker.bradley_terry.standard_errors).
SEGMENT_EXACT = False


def top_recall(estimate: np.ndarray, truth: np.ndarray, k: int = TOP_RETAINED) -> float:
    """Share of the true top k found in the estimated top k (higher is better in both)."""
    top_estimate = np.argsort(-estimate, kind="stable")[:k]
    top_truth = np.argsort(-truth, kind="stable")[:k]
    return len(set(top_estimate.tolist()) & set(top_truth.tolist())) / k


def _compare(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"kendall_tau": float(kendalltau(estimate, truth).statistic),
            "top10_recall": top_recall(estimate, truth)}


def _coverage(low: np.ndarray, high: np.ndarray, truth: np.ndarray) -> float:
    centred = truth - truth.mean()
    return float(np.mean((low <= centred) & (centred <= high)))


def _raw_fit(n: int, votes: Votes) -> bt.BTFit:
    """The ranking the cluster serves today: every vote counts once."""
    won = np.where(votes.ties, 0.5, 1.0)
    return bt.fit(n, votes.winners, votes.losers, won, 1.0 - won)


def _served(n: int, votes: Votes, region_shares: np.ndarray,
            age_shares: np.ndarray) -> segment_views.Representative:
    """The representative view as the ranker computes it from its counts: the crossed
    cells' counts raked to both attributes' margins, errors with votes taken as independent
    within a cell."""
    kinds = np.where(votes.ties, TIE, WIN).astype(np.uint8)
    overall = PairCounts(n)
    overall.apply(kinds, votes.winners, votes.losers)
    attributes = np.full((kinds.shape[0], MAX_KEYS), UNKNOWN_CODE, dtype=np.uint8)
    attributes[:, 0], attributes[:, 1] = votes.region, votes.age
    cells = CellCounts()
    cells.apply(kinds, votes.winners, votes.losers, attributes)
    strata, values = segment_views.cell_strata(overall, cells.counts, np.arange(n))
    return segment_views.cells_fit(strata, values, {0: region_shares, 1: age_shares}, n)


def run_seed(seed: int, n_proposals: int, n_votes: int,
             mean_votes_per_voter: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The figures of one seed, and the arrays its picture needs."""
    population = SegmentedPopulation.draw(n_proposals, seed)
    rng = np.random.default_rng(seed + 1_000_003)
    votes = population.votes(n_votes, mean_votes_per_voter, rng)
    truth = population.true_abilities()
    n = n_proposals
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    raw = _raw_fit(n, votes)
    seconds["raw_fit"] = time.perf_counter() - start

    start = time.perf_counter()
    weights = survey_weights.vote_weights(
        np.column_stack([votes.region, votes.age]),
        [population.region_shares, population.age_shares])
    seconds["weights"] = time.perf_counter() - start
    start = time.perf_counter()
    weighted = fit_weighted(n, votes.winners, votes.losers, votes.ties, weights.weights,
                            votes.voters, groups=weights.calibration_groups(),
                            with_model_std_errors=True)
    seconds["weighted_fit"] = time.perf_counter() - start
    assert weighted.model_std_errors is not None
    model_errors = weighted.model_std_errors

    start = time.perf_counter()
    served = _served(n, votes, population.region_shares, population.age_shares)
    seconds["served_fit"] = time.perf_counter() - start

    start = time.perf_counter()
    segment_fits = []
    for region in range(len(REGIONS)):
        mine = votes.region == region
        won = np.where(votes.ties[mine], 0.5, 1.0)
        segment_fits.append(bt.fit(n, votes.winners[mine], votes.losers[mine], won, 1 - won,
                                   exact=SEGMENT_EXACT, exact_component_max=1))
    agreed = consensus([f.abilities for f in segment_fits], [f.std_errors for f in segment_fits])
    seconds["segment_fits_and_consensus"] = time.perf_counter() - start

    region_truths = [population.true_abilities(region) for region in range(len(REGIONS))]
    true_consensus = np.min([win_probability_scores(t) for t in region_truths], axis=0)

    campaign_share = float(np.mean(votes.region == 0))
    figures: dict[str, Any] = {
        "seed": seed,
        "votes": int(votes.winners.shape[0]),
        "voters": int(np.unique(votes.voters).shape[0]),
        "campaign_vote_share": campaign_share,
        "age_vote_shares": (np.bincount(votes.age, minlength=len(AGE_BANDS))
                            / votes.age.shape[0]).round(4).tolist(),
        "ties": float(np.mean(votes.ties)),
        "raw": {**_compare(raw.abilities, truth),
                "coverage": _coverage(raw.ci_low, raw.ci_high, truth)},
        "weighted": {**_compare(weighted.abilities, truth),
                     "coverage": _coverage(weighted.ci_low, weighted.ci_high, truth),
                     "coverage_model_errors": _coverage(
                         weighted.abilities - 1.96 * model_errors,
                         weighted.abilities + 1.96 * model_errors, truth),
                     "exact_std_errors": weighted.exact_std_errors,
                     "median_std_error": float(np.median(weighted.std_errors)),
                     "median_std_error_raw": float(np.median(raw.std_errors))},
        "served": {**_compare(served.fit.abilities, truth),
                   "coverage": _coverage(served.fit.ci_low, served.fit.ci_high, truth),
                   "effective_votes": served.fit.effective_votes,
                   "method": served.weights.method,
                   "margin_gap": served.weights.margin_gap,
                   "trimmed_votes": served.weights.trimmed_votes},
        "consensus": {**_compare(agreed.scores, truth),
                      "top10_recall_of_true_consensus": top_recall(agreed.scores,
                                                                   true_consensus),
                      "kendall_tau_to_true_consensus": float(
                          kendalltau(agreed.scores, true_consensus).statistic)},
        "weights": {"method": weights.method,
                    "effective_votes": weights.effective_votes,
                    "effective_share": weights.effective_votes / max(1, votes.winners.shape[0]),
                    "design_effect": weights.design_effect,
                    "trimmed_votes": weights.trimmed_votes,
                    "margin_gap": weights.margin_gap,
                    "campaign_weight": float(np.mean(weights.weights[votes.region == 0])),
                    "other_weight": float(np.mean(weights.weights[votes.region != 0]))},
        "seconds_loaded": {k: round(v, 3) for k, v in seconds.items()},
    }
    arrays = {"truth": truth, "raw": raw.abilities, "weighted": weighted.abilities,
              "weighted_low": weighted.ci_low, "weighted_high": weighted.ci_high,
              "consensus": agreed.scores, "campaign_truth": region_truths[0]}
    return figures, arrays
