"""The simulated consultation: proposals with hidden true abilities, voters arriving over
time, and their answers drawn from the shared voter model (cluster.voter_model)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cluster.voter_model import RIGHT, SKIP, TIE, VoterModel

# A few words of policy so proposals read like a consultation's; the number makes each unique.
_THEMES = ("Former les agents d'accueil", "Créer un numéro d'aide", "Financer les associations",
           "Ouvrir des lieux d'écoute", "Sensibiliser dans les écoles", "Simplifier les plaintes",
           "Protéger les témoins", "Publier les chiffres chaque année")


@dataclass(frozen=True)
class DecidedVotes:
    """Already-decided votes (skips removed), as a partner platform would import them:
    indices into the population's proposals and voters, arrays of one length."""

    winners: np.ndarray  # int64 proposal index
    losers: np.ndarray  # int64 proposal index
    ties: np.ndarray  # bool
    voters: np.ndarray  # int64 voter number


class Population:
    """`n_seed` organisers' proposals, `n_new` citizens' proposals added mid-run, and
    `n_voters` voters, with hidden abilities ~ N(0, spread^2) reproducible from `seed`.

    Proposal k has id `proposal_id(k)`; seed proposals are 0 .. n_seed-1, then the new ones.
    """

    def __init__(self, n_seed: int, n_new: int, n_voters: int, model: VoterModel, *,
                 seed: int, spread: float = 1.0) -> None:
        self.n_seed = n_seed
        self.n_new = n_new
        self.n_voters = n_voters
        self.model = model
        self.abilities = np.random.default_rng(seed).normal(0.0, spread, n_seed + n_new)
        self._ids = [f"p{k:05d}" for k in range(n_seed + n_new)]
        self._index = {pid: k for k, pid in enumerate(self._ids)}

    def proposal_id(self, k: int) -> str:
        return self._ids[k]

    def index_of(self, proposal_id: str) -> int:
        """KeyError for an id this population did not create."""
        return self._index[proposal_id]

    def text(self, k: int) -> str:
        return f"{_THEMES[k % len(_THEMES)]} (proposition n° {k + 1})"

    def truth(self, proposal_ids: list[str]) -> np.ndarray:
        """Hidden abilities of `proposal_ids` (KeyError for an unknown one)."""
        return self.abilities[[self._index[pid] for pid in proposal_ids]]

    def decided_votes(self, n: int, accepted: np.ndarray, arrived_voters: int,
                      rng: np.random.Generator) -> DecidedVotes:
        """Up to `n` votes on uniformly random pairs of `accepted` proposal indices
        (sorted, at least two) by voters among the first `arrived_voters`; skips are dropped, so
        fewer than `n` may come back (about skip_rate fewer)."""
        first = accepted[rng.integers(0, len(accepted), n)]
        other = rng.integers(0, len(accepted) - 1, n)
        # Shift past the first's position: a uniform pair of distinct proposals.
        other += other >= np.searchsorted(accepted, first)
        second = accepted[other]
        answers = self.model.choose_many(self.abilities[first], self.abilities[second], rng)
        keep = answers != SKIP
        first, second, answers = first[keep], second[keep], answers[keep]
        # "right" means the second won: swap so winners come first.
        swap = answers == RIGHT
        winners = np.where(swap, second, first)
        losers = np.where(swap, first, second)
        voters = rng.integers(0, max(1, min(arrived_voters, self.n_voters)), len(winners))
        return DecidedVotes(winners, losers, answers == TIE, voters)
