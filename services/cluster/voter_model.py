"""How a simulated voter answers a pair: Bradley-Terry on hidden abilities, with ties when
the two proposals are close and the occasional skip with a reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Answer = Literal["left", "right", "tie", "skip"]


@dataclass(frozen=True)
class Decision:
    answer: Answer
    # Only for "skip": why the voter could not decide.
    reason: str = ""


@dataclass(frozen=True)
class VoterModel:
    """P(skip) = skip_rate; else P(tie) = tie_rate * exp(-|θl - θr|); else left wins with
    probability σ(θl - θr) (Bradley-Terry)."""

    skip_rate: float = 0.04
    tie_rate: float = 0.12
    skip_reasons: tuple[str, ...] = ("je ne sais pas", "je ne comprends pas",
                                     "aucune des deux")

    def choose(self, left: float, right: float, rng: np.random.Generator) -> Decision:
        """The answer of one voter shown `left` vs `right` (hidden abilities)."""
        if rng.random() < self.skip_rate:
            return Decision("skip", str(rng.choice(self.skip_reasons)))
        diff = left - right
        if rng.random() < self.tie_rate * math.exp(-abs(diff)):
            return Decision("tie")
        return Decision("left" if rng.random() < 1.0 / (1.0 + math.exp(-diff)) else "right")

    def decided(self, first: str, second: str, truth: dict[str, float],
                rng: np.random.Generator) -> tuple[str, str, bool] | None:
        """An already-decided vote (winner_id, loser_id, tie) for `first` vs `second`, as a
        partner platform would import it; None when the voter skipped."""
        decision = self.choose(truth[first], truth[second], rng)
        if decision.answer == "skip":
            return None
        if decision.answer == "right":
            return second, first, False
        return first, second, decision.answer == "tie"
