"""What a published fit depends on besides its votes: the engine, its settings and its start.

An export records these beside the votes so that anyone can run the same fit again
(`python -m pairwise rank`) and get the served abilities, not merely close ones: the engine
stops within `TOLERANCE` of the optimum, and where within depends on the start.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy

from ranker import bradley_terry
from ranker.ranking import Ranking

ENGINE = "ranker.bradley_terry"
# A tie counts half a win to each side (docs/semantics.md).
TIES = "half_win"
# Which votes of the counted log prefix enter the counts: the trusted ones whose voter and
# vote id are not excluded (ranker.vote_admission; skips only in the tallies). The recompute
# (publishing.recompute) applies the same rule, with the exclusions of the manifest.
COUNTED_VOTES = "trusted"


@dataclass(frozen=True)
class FitSettings:
    """How one ranking's fit ran (`tolerance` in logits; `iterations` Newton steps taken)."""

    engine: dict[str, str]
    prior_strength: float
    tolerance: float
    max_iterations: int
    ties: str
    counted_votes: str
    warm_start: bool
    catalog_version: int
    iterations: int


@cache
def engine_versions() -> dict[str, str]:
    """The engine's name and the versions of what it computes with, in this process."""
    try:
        version = importlib.metadata.version("pairwise")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"engine": ENGINE, "pairwise": version, "numpy": np.__version__,
            "scipy": scipy.__version__}


def settings_of(ranking: Ranking) -> FitSettings:
    """The settings `ranking` was fitted with (the scheduler's: ranker.fit_scheduler)."""
    return FitSettings(
        engine=engine_versions(), prior_strength=ranking.prior_strength,
        tolerance=bradley_terry.TOLERANCE, max_iterations=bradley_terry.MAX_ITERATIONS,
        ties=TIES, counted_votes=COUNTED_VOTES, warm_start=ranking.fit_start is not None,
        catalog_version=ranking.catalog_version, iterations=ranking.iterations)
