"""A test across accounts: groups of voters whose choices on the same proposals go one way far
beyond the ranking's odds, and the accounts in such a group that made it so.

A per-voter test (ranker.voter_anomaly's ``fit``) cannot see an attacker spread over many
accounts of a few strong upsets each: every account alone looks like an honest voter with a
taste of their own. Summed over the accounts, the same votes are glaring: a proposal that
never loses among them, or favourites that always lose. The test sums them over *cohorts*:
accounts with about the same number of votes (1, 2–3, 4–7, ..., 1,024 and more: powers of
two). Honest tastes do not depend on how much one votes, so, under the ranking's fit, every
cohort's choices on every proposal follow the fit's odds, whatever tastes its members have
(a faction of like-minded voters spreads over every cohort); an attacker's accounts, opened
together and used alike, fill a cohort of their own.

For each cohort c and proposal p, over the cohort's decisive votes involving p:
``losses`` L (votes p lost) and ``expected`` μ = Σ P(p loses). p is *pushed* in c when L is
improbably low (Poisson lower tail P(X ≤ L | μ) below `alpha`), *sunk* when improbably high
(upper tail). The same is tested of the fit's top k proposals together (k in `BANDS`): an
attacker moving its target up through BT's coupling (Min et al.'s "omnipresent" strategy)
votes down the proposals above it, each a little. The Poisson tails are larger than the
exact Poisson-binomial ones (they err on the side of flagging less).

The fit counts the cohort's own votes, which pull p towards what the cohort says; so each
cohort is tested against p's ability from the *other* cohorts' votes (one Newton step from
the fit), taken at the end of its 95 % interval nearest the fit. Cohorts are found one at a
time, the most anomalous first, and each one found leaves the others' reference; an attack
drags the fit, against which the honest cohorts then look the other way: a group going
against the way found groups drag its proposals is not one. A cohort holding half the
accounts or more is the reference and never a group (an attacker has fewer accounts than
the people it would outvote). A group must stay anomalous without its `drop` accounts that
contribute most, and have `min_accounts` accounts at least: a few voters with strong tastes
of their own, alone in a cohort of heavy voters, are not a group (one account is the
per-voter test's business).

Each account of a cohort with groups is then judged by its own votes on their proposals, in
a two-class model: an honest vote goes the group's way (p wins when pushed, loses when sunk)
with the chance h it was tested against; an attacker's vote goes it, or, a share `cover` of
the time, is cast as an honest one would be (the pairs its strategy does not use, or
camouflage): chance 1 − cover + cover·h. The prior share of attackers in the cohort is
estimated from the groups' excess (f = 1 − L/μ for a pushed p, (L − μ)/(n − μ) for a sunk
one; the median over the cohort's groups, or the largest share of the groups the account
voted on when higher); an account is flagged when its posterior of being an attacker
reaches `posterior`. So among the accounts flagged, about 1 − `posterior` at
most are honest ones who happened to vote the group's way, and in a cohort that is mostly
honest (f small) one account's few votes never reach it.

What it does not see: accounts that vote as little as honest voters do (a cohort of many
honest accounts dilutes the attack's share below detection), and attackers whose votes on
the target follow the fit's odds often enough. Pure code: no Redis, no gRPC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.special

# Cohorts by the voter's decisive votes: 1, 2–3, 4–7, ..., and all from 2**MAX_COHORT.
MAX_COHORT = 10
# The top-k sets of proposals tested together.
BANDS = (5, 10, 20, 50, 100, 200, 500)


@dataclass(frozen=True)
class CoordinationSettings:
    """Thresholds of the test across accounts (see the module docstring)."""

    # A group (cohort, proposal) is anomalous below this p-value. About 11 cohorts × 2 tails
    # × n proposals are tested at each check, and checks repeat on mostly the same votes:
    # 1e-9 keeps a false group at 1,000 proposals near 1 in 10,000 checks.
    alpha: float = 1e-9
    # A band's accounts are judged on the band's proposals that lose beyond the odds in
    # their cohort below this p-value by themselves (all of them when none does).
    band_proposal_alpha: float = 0.01
    # Accounts that voted on the proposal in the cohort, at least.
    min_accounts: int = 5
    # The group must stay anomalous without its accounts contributing most, this many.
    drop: int = 3
    # An attacker's votes on the group's proposals cast as an honest voter's, this share: at
    # one half, a vote against the group's way halves the odds of being an attacker, and
    # accounts of a strategy that serves it only on some pairs are still recognised.
    cover: float = 0.5
    # An account is flagged at this posterior chance of being one of the group's attackers.
    posterior: float = 0.9
    # Checked when the stored votes grew by this many, or by 1 % (each check reads them all:
    # ~0.1 s at 200,000 votes, so a check costs about what testing each vote does).
    check_every: int = 2_000
    # No check before this many kept votes per ranked proposal: on fewer, the fit's top are
    # proposals that won by luck and then lose more than it says, in every cohort alike
    # (measured: a false group of 24 honest accounts at 4 votes a proposal).
    min_votes_per_proposal: int = 20
    # Decisive interactive votes kept (12 bytes each); past it the oldest are dropped.
    max_votes: int = 2_000_000

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0 < self.band_proposal_alpha <= 1:
            raise ValueError("band_proposal_alpha must be in (0, 1], got "
                             f"{self.band_proposal_alpha}")
        if not 0 < self.cover < 1:
            raise ValueError(f"cover must be in (0, 1), got {self.cover}")
        if not 0.5 <= self.posterior < 1:
            raise ValueError(f"posterior must be in [0.5, 1), got {self.posterior}")
        if self.min_accounts < 2 or self.check_every < 1 or self.max_votes < 1 \
                or self.min_votes_per_proposal < 0:
            raise ValueError("min_accounts must be >= 2, check_every and max_votes >= 1, "
                             "min_votes_per_proposal >= 0")


@dataclass(frozen=True)
class Group:
    """An anomalous group: proposal `proposal` (index; -1 for the fit's top `band`)
    `pushed` (True) or sunk in the cohort of accounts with `cohort_low`..`cohort_high`
    decisive votes; its votes, losses, expected losses, accounts, −log10 p-value (without
    its `drop` accounts contributing most) and estimated share of attackers."""

    cohort: int
    proposal: int
    band: int
    pushed: bool
    votes: int
    losses: int
    expected: float
    accounts: int
    score: float
    attacker_share: float

    @property
    def cohort_low(self) -> int:
        return 1 << self.cohort

    @property
    def cohort_high(self) -> int | None:
        return None if self.cohort >= MAX_COHORT else (2 << self.cohort) - 1


@dataclass(frozen=True)
class Suspect:
    """An account judged one of a group's attackers: its posterior, its votes on the groups'
    proposals and how many went the groups' way, and the groups (of its cohort)."""

    voter: int
    posterior: float
    votes: int
    with_group: int
    groups: tuple[Group, ...]


class CoordinationCheck:
    """The decisive interactive votes of one cause (winner, loser, voter number) and the test
    across accounts on them. Not thread-safe: its owner serialises calls."""

    def __init__(self, settings: CoordinationSettings | None = None) -> None:
        self.settings = settings or CoordinationSettings()
        self._winners = np.zeros(1024, dtype=np.int32)
        self._losers = np.zeros(1024, dtype=np.int32)
        self._voters = np.zeros(1024, dtype=np.int32)
        self._size = 0
        self._checked_at = 0

    def __len__(self) -> int:
        return self._size

    def copy(self) -> CoordinationCheck:
        twin = CoordinationCheck(self.settings)
        twin._winners = self._winners.copy()
        twin._losers = self._losers.copy()
        twin._voters = self._voters.copy()
        twin._size, twin._checked_at = self._size, self._checked_at
        return twin

    def snapshot(self) -> CoordinationCheck:
        """A copy to check elsewhere (a thread); this one counts from now to its next check."""
        twin = self.copy()
        self._checked_at = self._size
        return twin

    def add(self, winners: np.ndarray, losers: np.ndarray, voters: np.ndarray) -> None:
        """Keep decisive votes (proposal indices, the voter's number), in log order."""
        n = len(winners)
        if n == 0:
            return
        need = self._size + n
        if need > len(self._winners):
            capacity = max(need, 2 * len(self._winners))
            for name in ("_winners", "_losers", "_voters"):
                grown = np.zeros(capacity, dtype=np.int32)
                grown[:self._size] = getattr(self, name)[:self._size]
                setattr(self, name, grown)
        self._winners[self._size:need] = winners
        self._losers[self._size:need] = losers
        self._voters[self._size:need] = voters
        self._size = need
        excess = self._size - self.settings.max_votes
        if excess > 0:
            for name in ("_winners", "_losers", "_voters"):
                array = getattr(self, name)
                array[:self._size - excess] = array[excess:self._size]
            self._size -= excess
            self._checked_at = max(0, self._checked_at - excess)

    def due(self) -> bool:
        """Whether enough votes arrived since the last check."""
        grown = self._size - self._checked_at
        return grown >= max(self.settings.check_every, self._checked_at // 100)

    def check(self, abilities: np.ndarray) -> tuple[list[Group], list[Suspect]]:
        """The anomalous groups under `abilities` (by proposal index, NaN: not ranked) and
        the accounts judged their attackers.

        Cohorts are found one at a time, the most anomalous first, and each one found is
        left out of the reference of the others: an attack that drags the fit makes the
        honest cohorts look the other way against it, not against each other."""
        self._checked_at = self._size
        if self._size < self.settings.min_votes_per_proposal * np.isfinite(abilities).sum():
            return [], []
        sides = _Sides.of(self._winners[:self._size], self._losers[:self._size],
                          self._voters[:self._size], abilities)
        if sides is None:
            return [], []
        n_items = len(abilities)
        key = sides.cohort * n_items + sides.proposal
        ranked = np.flatnonzero(np.isfinite(abilities))
        by_rank = ranked[np.argsort(-abilities[ranked], kind="stable")]
        rank_of = np.full(n_items, n_items, dtype=np.int64)
        rank_of[by_rank] = np.arange(len(by_rank))
        # A cohort holding half the accounts or more is the reference, never a group: an
        # attacker has fewer accounts than the people it would outvote.
        _, first = np.unique(sides.voter, return_index=True)
        per_cohort = np.bincount(sides.cohort[first], minlength=MAX_COHORT + 1)
        reference = set(np.flatnonzero(2 * per_cohort >= per_cohort.sum()).tolist())
        left_out: set[int] = set()
        found: list[Group] = []
        judged = sides.fit_chance.copy()
        # The way found groups drag each proposal (+1 up, -1 down): the honest cohorts then
        # look the other way against the fit, which is no group of theirs.
        dragged = np.zeros(n_items, dtype=np.int8)
        while len(left_out) <= MAX_COHORT:
            sides.leave_cohort_out(key, n_items, left_out)
            groups = [g for g in self._groups(sides, key, by_rank, rank_of,
                                              left_out | reference)
                      if not _against(g, dragged, rank_of)]
            if not groups:
                break
            worst = max(groups, key=lambda g: g.score).cohort
            found += [g for g in groups if g.cohort == worst]
            for group in found:
                if group.band:
                    dragged[rank_of < group.band] = -1
                else:
                    dragged[group.proposal] = 1 if group.pushed else -1
            in_worst = sides.cohort == worst
            judged[in_worst] = sides.chance[in_worst]
            left_out.add(worst)
        if not found:
            return [], []
        sides.chance[:] = judged
        return found, self._suspects(found, sides, rank_of)

    def _groups(self, sides: _Sides, key: np.ndarray, by_rank: np.ndarray,
                rank_of: np.ndarray, untested: set[int]) -> list[Group]:
        """The anomalous groups of the cohorts not `untested`."""
        settings = self.settings
        n_items = len(rank_of)
        n_keys = (MAX_COHORT + 1) * n_items
        losses = np.bincount(key, sides.lost, n_keys)
        expected = np.bincount(key, sides.chance, n_keys)
        candidates: list[tuple[int, int, int, bool]] = []  # cohort, proposal, band, pushed
        low_tail = scipy.special.pdtr(losses, np.maximum(expected, 1e-12))
        high_tail = _upper_tail(losses, expected)
        for k in np.flatnonzero(low_tail < settings.alpha).tolist():
            candidates.append((k // n_items, k % n_items, 0, True))
        for k in np.flatnonzero(high_tail < settings.alpha).tolist():
            candidates.append((k // n_items, k % n_items, 0, False))
        bands = [k for k in BANDS if k < len(by_rank)]
        if bands:
            per_rank = losses.reshape(MAX_COHORT + 1, n_items)[:, by_rank].cumsum(axis=1)
            mu_rank = expected.reshape(MAX_COHORT + 1, n_items)[:, by_rank].cumsum(axis=1)
            at = np.array(bands) - 1
            band_tail = _upper_tail(per_rank[:, at], mu_rank[:, at])
            for c, b in zip(*np.nonzero(band_tail < settings.alpha), strict=True):
                candidates.append((int(c), -1, bands[int(b)], False))
        return [group for group in (self._robust(sides, rank_of, *c) for c in candidates
                                    if c[0] not in untested)
                if group is not None]

    def _robust(self, sides: _Sides, rank_of: np.ndarray, cohort: int, proposal: int,
                band: int, pushed: bool) -> Group | None:
        """The candidate group tested again without its accounts contributing most; None
        when it is not anomalous then, or has too few accounts."""
        settings = self.settings
        member = sides.cohort == cohort
        member &= (sides.proposal == proposal) if band == 0 else (rank_of[sides.proposal] < band)
        voters = sides.voter[member]
        accounts, inverse = np.unique(voters, return_inverse=True)
        if len(accounts) < settings.min_accounts:
            return None
        lost = np.bincount(inverse, sides.lost[member], len(accounts))
        mu = np.bincount(inverse, sides.chance[member], len(accounts))
        count = np.bincount(inverse, minlength=len(accounts))
        excess = (mu - lost) if pushed else (lost - mu)
        keep = np.argsort(excess)[:max(len(accounts) - settings.drop, 0)]
        kept_lost, kept_mu = float(lost[keep].sum()), float(mu[keep].sum())
        if pushed:
            tail = float(scipy.special.pdtr(kept_lost, max(kept_mu, 1e-12)))
        else:
            tail = float(_upper_tail(np.array([kept_lost]), np.array([kept_mu]))[0])
        if tail >= settings.alpha:
            return None
        total_lost, total_mu, n = float(lost.sum()), float(mu.sum()), int(count.sum())
        share = 1.0 - total_lost / total_mu if pushed \
            else (total_lost - total_mu) / max(n - total_mu, 1e-9)
        return Group(cohort=cohort, proposal=proposal, band=band, pushed=pushed, votes=n,
                     losses=int(total_lost), expected=total_mu, accounts=len(accounts),
                     score=-math.log10(tail) if tail > 0 else 300.0,
                     attacker_share=min(max(share, 0.01), 0.99))

    def _suspects(self, groups: list[Group], sides: _Sides,
                  rank_of: np.ndarray) -> list[Suspect]:
        """Each account of the groups' cohorts with its posterior (module docstring)."""
        cover = self.settings.cover
        n_items = len(rank_of)
        # A band's accounts are judged on the proposals of the band that lose beyond the
        # odds in the cohort by themselves (`band_proposal_alpha`), where its excess is. A
        # top sunk shows in every band that holds it (an attacker sinking the top 49 makes
        # the top 100, 200 and 500 anomalous by the same votes); judged on a whole band, an
        # account's honest votes on the proposals it leaves alone (each one won halves its
        # odds, `cover`) outweighed the few that sank the top, and accounts of a few hundred
        # votes went unflagged however many of those they cast.
        n_keys = (MAX_COHORT + 1) * n_items
        key = sides.cohort * n_items + sides.proposal
        cell_lost = np.bincount(key, sides.lost, n_keys).reshape(-1, n_items)
        cell_mu = np.bincount(key, sides.chance, n_keys).reshape(-1, n_items)
        cell_n = np.bincount(key, minlength=n_keys).reshape(-1, n_items)
        sunk_alone = _upper_tail(cell_lost, cell_mu) < self.settings.band_proposal_alpha
        # Direction per (cohort, proposal): +1 pushed, -1 sunk, 0 in no group; a proposal's
        # own group wins over a band's. Each group's share of attackers, for the prior.
        direction = np.zeros((MAX_COHORT + 1, n_items), dtype=np.int8)
        # Per (cohort, proposal): the share of attackers of the group its votes are judged
        # on.
        cell_share = np.zeros((MAX_COHORT + 1, n_items))
        shares: dict[int, list[float]] = {}
        for group in sorted(groups, key=lambda g: -g.band):
            share = group.attacker_share
            if group.band:
                members = rank_of < group.band
                if (members & sunk_alone[group.cohort]).any():
                    members &= sunk_alone[group.cohort]
                    lost_in = float(cell_lost[group.cohort, members].sum())
                    mu_in = float(cell_mu[group.cohort, members].sum())
                    n_in = float(cell_n[group.cohort, members].sum())
                    share = min(max((lost_in - mu_in) / max(n_in - mu_in, 1e-9), 0.01), 0.99)
                direction[group.cohort, members] = -1
                cell_share[group.cohort, members] = share
            else:
                direction[group.cohort, group.proposal] = 1 if group.pushed else -1
                cell_share[group.cohort, group.proposal] = share
            shares.setdefault(group.cohort, []).append(share)
        way = direction[sides.cohort, sides.proposal]
        tested = way != 0
        if not tested.any():
            return []
        lost, chance, voter = sides.lost[tested], sides.chance[tested], sides.voter[tested]
        sunk = way[tested] < 0
        # The group's way: the proposal lost (sunk) or won (pushed); an honest vote goes it
        # with the fit's chance.
        goes_way = np.where(sunk, lost > 0, lost == 0)
        honest = np.clip(np.where(sunk, chance, 1.0 - chance), 1e-9, 1 - 1e-9)
        log_ratio = np.where(goes_way, np.log((1 - cover + cover * honest) / honest),
                             math.log(cover))
        size = int(sides.voter.max()) + 1
        account_ratio = np.bincount(voter, log_ratio, size)
        account_votes = np.bincount(voter, minlength=size)
        account_with = np.bincount(voter, goes_way, size).astype(np.int64)
        account_cohort = np.full(size, -1, dtype=np.int64)
        account_cohort[sides.voter] = sides.cohort
        by_cohort: dict[int, list[Group]] = {}
        for group in groups:
            by_cohort.setdefault(group.cohort, []).append(group)
        # An account's prior is the cohort's (the median of its groups' shares: an attacker
        # spread over several), or the largest share of the groups it voted with when
        # higher: a group of another kind in the cohort (heavy accounts voting a proposal up
        # beyond a fit made of lighter voters' votes, say) pulled the median down, and the
        # accounts of a group whose share is plain went unflagged. Only votes that went a
        # group's way count: a vote against a group is no sign of belonging to it.
        voted_share = np.zeros(size)
        np.maximum.at(voted_share, voter[goes_way],
                      cell_share[sides.cohort[tested], sides.proposal[tested]][goes_way])
        prior = {c: float(np.median(values)) for c, values in shares.items()}
        suspects: list[Suspect] = []
        for account in np.flatnonzero(account_votes > 0).tolist():
            c = int(account_cohort[account])
            share = max(prior[c], float(voted_share[account]))
            log_odds = math.log(share / (1 - share)) + float(account_ratio[account])
            posterior = 1.0 / (1.0 + math.exp(-min(max(log_odds, -700.0), 700.0)))
            if posterior >= self.settings.posterior:
                suspects.append(Suspect(account, posterior, int(account_votes[account]),
                                        int(account_with[account]), tuple(by_cohort[c])))
        return suspects


@dataclass(frozen=True)
class _Sides:
    """Each ranked vote twice, once per proposal: the proposal, whether it lost, the fit's
    chance that it would, the voter and the voter's cohort."""

    proposal: np.ndarray
    lost: np.ndarray
    fit_chance: np.ndarray
    chance: np.ndarray  # the chance the side is judged by (leave_cohort_out)
    voter: np.ndarray
    cohort: np.ndarray

    @classmethod
    def of(cls, winners: np.ndarray, losers: np.ndarray, voters: np.ndarray,
           abilities: np.ndarray) -> _Sides | None:
        n_items = len(abilities)
        known = (winners < n_items) & (losers < n_items)
        winners, losers, voters = winners[known], losers[known], voters[known]
        gap = abilities[winners] - abilities[losers]
        ranked = np.isfinite(gap)
        if not ranked.any():
            return None
        winners, losers, voters, gap = winners[ranked], losers[ranked], voters[ranked], \
            gap[ranked]
        # The fit's chance the winner would lose.
        upset_chance = np.clip(1.0 / (1.0 + np.exp(gap)), 1e-12, 1.0 - 1e-12)
        volume = np.bincount(voters)
        cohort_of = np.minimum(np.log2(np.maximum(volume, 1)).astype(np.int64), MAX_COHORT)
        n = len(winners)
        chance = np.concatenate([upset_chance, 1.0 - upset_chance])
        return cls(proposal=np.concatenate([winners, losers]),
                   lost=np.r_[np.zeros(n), np.ones(n)], fit_chance=chance,
                   chance=chance.copy(),
                   voter=np.concatenate([voters, voters]),
                   cohort=np.tile(cohort_of[voters], 2))


    def leave_cohort_out(self, key: np.ndarray, n_items: int, left_out: set[int]) -> None:
        """Each side's chance under its proposal's ability from the votes of the other
        cohorts not `left_out` (one Newton step from the fit), taken 2 standard errors
        towards the fit."""
        n_keys = (MAX_COHORT + 1) * n_items
        fit_chance = self.fit_chance
        information = fit_chance * (1.0 - fit_chance)
        # Wins beyond the fit's odds: the proposal won (1 - lost), expected 1 - chance.
        surplus = fit_chance - self.lost
        cohort_information = np.bincount(key, information, n_keys).reshape(-1, n_items)
        cohort_surplus = np.bincount(key, surplus, n_keys).reshape(-1, n_items)
        counted = np.ones(MAX_COHORT + 1, dtype=bool)
        counted[sorted(left_out)] = False
        own = counted[:, None]
        rest_information = (cohort_information[counted].sum(axis=0)
                            - np.where(own, cohort_information, 0.0))
        rest_surplus = cohort_surplus[counted].sum(axis=0) - np.where(own, cohort_surplus, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            shift = np.where(rest_information > 1.0, rest_surplus / rest_information, 0.0)
            margin = np.where(rest_information > 1.0, 2.0 / np.sqrt(rest_information), 0.0)
        shift = np.sign(shift) * np.maximum(np.abs(shift) - margin, 0.0)
        logit = np.log(fit_chance) - np.log1p(-fit_chance)
        self.chance[:] = 1.0 / (1.0 + np.exp(-(logit - shift.ravel()[key])))


def _against(group: Group, dragged: np.ndarray, rank_of: np.ndarray) -> bool:
    """Whether `group` goes against the way found groups drag its proposals."""
    if group.band:
        return bool((dragged[rank_of < group.band] > 0).any())
    way = 1 if group.pushed else -1
    return bool(dragged[group.proposal] == -way)


def _upper_tail(losses: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """P(X ≥ losses) for X ~ Poisson(expected), elementwise (1 where losses is 0)."""
    tail = scipy.special.pdtrc(np.maximum(losses - 1, 0), np.maximum(expected, 1e-12))
    return np.where(losses <= 0, 1.0, tail)
