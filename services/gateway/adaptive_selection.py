"""Adaptive pair selection: structures built per fit summary, a plan drawn per NextPair.

Placeholder rule while the tuned one is measured: newcomers first for `newcomer_share` of the
prompts, a uniform pair for `uniform_share`, else an item from the top 2k or from all,
paired with a neighbour within `window` ranks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pairwise.selection_summary import FitSummary


@dataclass(frozen=True)
class Draw:
    """One NextPair's plan: show a newcomer first when `exposure`, else the first usable of
    `candidates` (proposal-index pairs, best first); empty candidates = a uniform pair."""

    exposure: bool
    candidates: tuple[tuple[int, int], ...]


class AdaptiveSelection:
    """Immutable; `draw` is O(1)."""

    def __init__(self, items: list[int], top: int, *, newcomer_share: float,
                 uniform_share: float, window: int) -> None:
        self._items = items
        self._top = top
        self._newcomer_share = newcomer_share
        self._uniform_share = uniform_share
        self._window = window

    @classmethod
    def build(cls, summary: FitSummary | None, *, top_k: int, newcomer_share: float = 0.3,
              uniform_share: float = 0.1, window: int = 10) -> AdaptiveSelection:
        items = [] if summary is None else summary.items.tolist()
        return cls(items, min(len(items), 2 * top_k), newcomer_share=newcomer_share,
                   uniform_share=uniform_share, window=window)

    def draw(self, rng: random.Random) -> Draw:
        exposure = rng.random() < self._newcomer_share
        n = len(self._items)
        if n < 2 or rng.random() < self._uniform_share:
            return Draw(exposure, ())
        position = rng.randrange(self._top if rng.random() < 0.5 and self._top else n)
        other = position + rng.choice((-1, 1)) * rng.randint(1, self._window)
        other = min(max(other, 0), n - 1)
        if other == position:
            other = position + 1 if position + 1 < n else position - 1
        return Draw(exposure, ((self._items[position], self._items[other]),))
