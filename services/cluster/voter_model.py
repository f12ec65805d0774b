"""How a simulated voter answers a pair: Bradley-Terry on hidden abilities, with ties when
the two proposals are close and the occasional skip with a reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Answer = Literal["left", "right", "tie", "skip"]
# Answer codes of `VoterModel.choose_many` (uint8), and the answer each code stands for.
LEFT, RIGHT, TIE, SKIP = 0, 1, 2, 3
ANSWERS: tuple[Answer, ...] = ("left", "right", "tie", "skip")


@dataclass(frozen=True)
class Decision:
    answer: Answer
    # Only for "skip": why the voter could not decide, as a vote-log reason code
    # (pairwise.vote_log.SKIP_REASON_CODES), and in the voter's words.
    reason_code: str = ""
    reason: str = ""


@dataclass(frozen=True)
class VoterModel:
    """P(skip) = skip_rate; else P(tie) = tie_rate * exp(-|θl - θr|); else left wins with
    probability σ(θl - θr) (Bradley-Terry)."""

    skip_rate: float = 0.04
    tie_rate: float = 0.12
    skip_reasons: tuple[tuple[str, str], ...] = (
        ("cannot_decide", "je ne sais pas"), ("unfamiliar_both", "je ne comprends pas"),
        ("like_neither", "aucune des deux"))

    def choose(self, left: float, right: float, rng: np.random.Generator) -> Decision:
        """The answer of one voter shown `left` vs `right` (hidden abilities)."""
        if rng.random() < self.skip_rate:
            code, words = self.skip_reasons[int(rng.choice(len(self.skip_reasons)))]
            return Decision("skip", code, words)
        diff = left - right
        if rng.random() < self.tie_rate * math.exp(-abs(diff)):
            return Decision("tie")
        return Decision("left" if rng.random() < 1.0 / (1.0 + math.exp(-diff)) else "right")

    def choose_many(self, left: np.ndarray, right: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
        """The answers of len(left) independent voters, each shown left[k] vs right[k]
        (hidden abilities, float arrays of one shape): the same distribution as `choose`,
        vectorised for load generation. Returns uint8 codes LEFT, RIGHT, TIE or SKIP."""
        diff = np.asarray(left, dtype=np.float64) - np.asarray(right, dtype=np.float64)
        draws = rng.random((3, *diff.shape))
        answers = np.where(draws[2] < 1.0 / (1.0 + np.exp(-diff)), LEFT, RIGHT)
        answers[draws[1] < self.tie_rate * np.exp(-np.abs(diff))] = TIE
        answers[draws[0] < self.skip_rate] = SKIP
        return answers.astype(np.uint8)

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
