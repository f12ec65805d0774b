"""A segmented population: voters in cells (one value per attribute), each cell with its own
hidden abilities, an uneven participation, and the population's true abilities.

Every cell's abilities are its region's plus its age band's deviation. Four regions share a
common taste (each with its own small deviations); the campaign region's taste mostly differs
from theirs (correlation `campaign_correlation` with the common one). Participation is
uneven: the campaign region casts `campaign_vote_share` of the votes while being
`campaign_population_share` of the population, and the youngest age bands vote more than
their share. Votes fall on uniformly random pairs; each answer follows the shared voter
model (`cluster.voter_model`: Bradley–Terry with ties when close, skips dropped).

The population's true abilities are the Bradley–Terry abilities that best describe the
whole population's answers: the fit to every pair's expected outcome, each cell weighing as
its share of the population (ties as half a win, as the ranking counts them). That is the
quantity a representative fit estimates as votes accumulate, so its intervals' coverage is
measured against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cluster.voter_model import RIGHT, SKIP, TIE, VoterModel
from ranker import bradley_terry as bt

REGIONS = ("campaign", "north", "south", "east", "west")
AGE_BANDS = ("18-29", "30-44", "45-64", "65+")
# Each region is a fifth of the population; the age bands as a census might have them.
REGION_SHARES = np.full(5, 0.2)
AGE_SHARES = np.array([0.2, 0.3, 0.3, 0.2])
# Who votes: the campaign region (index 0) casts 60% of the votes; the young vote more.
REGION_PARTICIPATION = np.array([0.6, 0.1, 0.1, 0.1, 0.1])
AGE_PARTICIPATION = np.array([0.4, 0.3, 0.2, 0.1])
# The expected outcome of each pair is scaled to this many votes in the truth's fit, so the
# prior (0.04 of a vote) moves the true abilities by ~1e-6 logits.
_TRUTH_VOTES_PER_PAIR = 10_000.0


@dataclass(frozen=True)
class Votes:
    """Decided votes (skips dropped), one entry per vote: winner first, a tie in either
    order; each voter's region and age band indices."""

    winners: np.ndarray
    losers: np.ndarray
    ties: np.ndarray
    voters: np.ndarray
    region: np.ndarray
    age: np.ndarray


@dataclass(frozen=True)
class SegmentedPopulation:
    """Hidden abilities per cell, shape (regions, age bands, proposals), and the shares."""

    cell_abilities: np.ndarray
    region_shares: np.ndarray
    age_shares: np.ndarray
    region_participation: np.ndarray
    age_participation: np.ndarray
    model: VoterModel

    @classmethod
    def draw(cls, n_proposals: int, seed: int, *, campaign_correlation: float = 0.2,
             region_spread: float = 0.3, age_spread: float = 0.2,
             model: VoterModel | None = None) -> SegmentedPopulation:
        """Abilities ~ N(0, 1) for the common taste; every region's own deviations
        N(0, region_spread²); the campaign region's taste correlated `campaign_correlation`
        with the common one; every age band's deviations N(0, age_spread²)."""
        rng = np.random.default_rng(seed)
        common = rng.normal(0.0, 1.0, n_proposals)
        regions = common + rng.normal(0.0, region_spread, (len(REGIONS), n_proposals))
        own = rng.normal(0.0, 1.0, n_proposals)
        regions[0] = (campaign_correlation * common
                      + np.sqrt(1.0 - campaign_correlation**2) * own)
        ages = rng.normal(0.0, age_spread, (len(AGE_BANDS), n_proposals))
        cells = regions[:, None, :] + ages[None, :, :]
        return cls(cells, REGION_SHARES, AGE_SHARES, REGION_PARTICIPATION,
                   AGE_PARTICIPATION, model or VoterModel())

    @property
    def n_proposals(self) -> int:
        return int(self.cell_abilities.shape[2])

    def votes(self, n_votes: int, mean_votes_per_voter: float,
              rng: np.random.Generator) -> Votes:
        """`n_votes` decided votes from voters drawn by participation, each answering a
        geometric number of uniformly random pairs (mean `mean_votes_per_voter`); skips are
        dropped, and the answers beyond `n_votes` decided ones are not used."""
        # Enough answers that, skips dropped, n_votes remain (8 standard deviations spare).
        n_answers = int(n_votes / (1 - self.model.skip_rate) + 8 * np.sqrt(n_votes)) + 100
        per_voter = rng.geometric(1.0 / mean_votes_per_voter,
                                  int(2 * n_answers / mean_votes_per_voter) + 100)
        per_voter = per_voter[: int(np.searchsorted(np.cumsum(per_voter), n_answers)) + 1]
        n_voters = per_voter.shape[0]
        voter_region = np.asarray(rng.choice(len(REGIONS), size=n_voters,
                                             p=self.region_participation))
        voter_age = np.asarray(rng.choice(len(AGE_BANDS), size=n_voters,
                                          p=self.age_participation))
        voters = np.repeat(np.arange(n_voters), per_voter)[:n_answers]
        region, age = voter_region[voters], voter_age[voters]
        n = self.n_proposals
        first = rng.integers(0, n, n_answers)
        second = (first + rng.integers(1, n, n_answers)) % n
        cells = self.cell_abilities
        answers = self.model.choose_many(cells[region, age, first], cells[region, age, second],
                                         rng)
        keep = np.flatnonzero(answers != SKIP)[:n_votes]
        swap = answers == RIGHT
        winners = np.where(swap, second, first)[keep]
        losers = np.where(swap, first, second)[keep]
        return Votes(winners, losers, (answers == TIE)[keep], voters[keep], region[keep],
                     age[keep])

    def true_abilities(self, region: int | None = None) -> np.ndarray:
        """The Bradley–Terry abilities of the population (or of one region's people): the
        fit to every pair's expected outcome, cells weighing as their population shares;
        centred, shape (n_proposals,)."""
        shares = self.region_shares[:, None] * self.age_shares[None, :]
        if region is not None:
            shares = np.zeros_like(shares)
            shares[region] = self.age_shares
        shares = shares / shares.sum()
        n = self.n_proposals
        i, j = np.triu_indices(n, 1)
        won = np.zeros(i.shape[0])
        for r, a in zip(*np.nonzero(shares), strict=True):
            theta = self.cell_abilities[r, a]
            won += shares[r, a] * self._win_share(theta[i] - theta[j])
        fit = bt.fit(n, i, j, _TRUTH_VOTES_PER_PAIR * won, _TRUTH_VOTES_PER_PAIR * (1 - won),
                     with_std_errors=False)
        return fit.abilities

    def _win_share(self, difference: np.ndarray) -> np.ndarray:
        """P(first wins) + ½ P(tie) given no skip, under the voter model."""
        tie = self.model.tie_rate * np.exp(-np.abs(difference))
        return (1.0 - tie) / (1.0 + np.exp(-difference)) + 0.5 * tie
