"""`python -m loadtest.manipulation`: how many votes an attacker needs to move a proposal from
rank ~50 into the top 10, with and without the defences, and how well the detector tells
attackers from honest voters.

A simulated consultation, in process, counted and fitted by the ranker's own code
(`ranker.vote_admission.admit`, `ranker.pair_counts.PairCounts`, `ranker.bradley_terry.fit`)
and tested by its own detector (`ranker.voter_anomaly`). Honest voters (sessions of a median
10 votes, a few seconds each, Bradley–Terry choices on hidden abilities ~ N(0, 1), with ties
and skips) cast `--honest-votes` votes on `--proposals` proposals; then one attacker, always
the proposal at rank 50 of the honest ranking as its target:

- ``bots``: scripts answering every pair at machine speed (a prompt answered in 100 ms, a
  vote every 150 ms): the target when shown, else a coin toss;
- ``pushers``: a group of people voting at a person's pace: the target on every pair it is
  shown, else their own honest opinion (Bradley–Terry on the hidden abilities);
- ``omnipresent`` (Min et al., ICML 2025): at a person's pace, every vote that can serves the
  target: the target wins when shown, a proposal ranked above it loses (the one closer to it
  when both are), and on the other pairs an honest opinion.

Every attacker sees uniformly random pairs (as Chatbot Arena's anonymous battles; the
cluster's adaptive selection would show other pairs) and knows the official ranking of the
last fit. Without defences every vote counts. With them, as the cluster runs by default plus
automatic exclusion: votes sooner than INGEST_MIN_VIEW_MS after their prompt are untrusted,
each account is held to the gateway's bucket (2 votes/s, burst 60) and 1,000 pairs
(GATEWAY_MAX_SEEN_PAIRS; a full account is replaced by a new one), and a voter the detector
flags, for any reason, is excluded with all their votes. The attacker keeps voting until its
target is in the official top 10 (checked at each refit), or until `--budget` times the
votes it needed without defences. Several seeds; medians and per-seed values, as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cluster.voter_model import RIGHT, SKIP, TIE, VoterModel
from pairwise.exclusions import Exclusions
from pairwise.vote_log import SKIP_CODE, TIE_CODE, WIN_CODE, DecodedVotes
from ranker import bradley_terry
from ranker.pair_counts import PairCounts
from ranker.vote_admission import admit
from ranker.voter_anomaly import DetectionSettings, VoterAnomaly

STRATEGIES = ("bots", "pushers", "omnipresent")
TARGET_RANK = 50
TOP = 10
MIN_VIEW_MS = 300
SEEN_PAIRS_CAP = 1_000
VOTER_RATE_PER_S, VOTER_BURST = 2.0, 60
# A defended attack none of whose votes is trusted after this many is stopped: it cannot move
# anything, whatever accounts it opens.
NO_EFFECT_AFTER = 20_000
# Accounts voting at once, per strategy.
ACCOUNTS = {"bots": 20, "pushers": 100, "omnipresent": 100}
# Honest voters with tastes of their own, and in a faction (honest_consultation).
OWN_TASTE_SHARE = 0.1
FACTION_SHARE = 0.05
FACTION_PROPOSALS = 10


@dataclass
class Votes:
    """Votes in log order: kinds (vote_log codes; for a win `a` beat `b`), trust, times (ms),
    voter ids."""

    kinds: np.ndarray
    a: np.ndarray
    b: np.ndarray
    trusted: np.ndarray
    at_ms: np.ndarray
    voters: list[str]

    def __len__(self) -> int:
        return len(self.kinds)

    def part(self, rows: slice | np.ndarray) -> Votes:
        voters = [self.voters[k] for k in np.arange(len(self))[rows].tolist()]
        return Votes(self.kinds[rows], self.a[rows], self.b[rows], self.trusted[rows],
                     self.at_ms[rows], voters)

    def then(self, more: Votes) -> Votes:
        """These votes followed by `more`."""
        return Votes(np.concatenate([self.kinds, more.kinds]), np.concatenate([self.a, more.a]),
                     np.concatenate([self.b, more.b]),
                     np.concatenate([self.trusted, more.trusted]),
                     np.concatenate([self.at_ms, more.at_ms]), self.voters + more.voters)

    def decoded(self) -> DecodedVotes:
        return DecodedVotes(kinds=self.kinds, a=self.a, b=self.b, trusted=self.trusted,
                            voter_ids=self.voters, vote_ids=[""] * len(self),
                            n_votes=len(self))


def choose_votes(left: np.ndarray, right: np.ndarray, answers: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vote-log kinds and sides of voter-model answers (a beat b for a win)."""
    kinds = np.full(len(answers), WIN_CODE, dtype=np.uint8)
    kinds[answers == TIE] = TIE_CODE
    kinds[answers == SKIP] = SKIP_CODE
    right_won = answers == RIGHT
    a = np.where(right_won, right, left)
    b = np.where(right_won, left, right)
    return kinds, a, b


def random_pairs(rng: np.random.Generator, n_items: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    left = rng.integers(0, n_items, n)
    right = (left + rng.integers(1, n_items, n)) % n_items
    return left, right


def honest_consultation(rng: np.random.Generator, truth: np.ndarray, n_votes: int
                        ) -> tuple[Votes, dict[str, str]]:
    """`n_votes` honest votes in time order, over 12 hours of arrivals.

    Not every honest voter shares the consensus: `OWN_TASTE_SHARE` of them judge by abilities
    of their own (the truth weighted by ρ ~ U(−0.5, 0.5), contrarians included, plus a taste
    as strong as the truth itself), and `FACTION_SHARE` belong to a faction that champions
    `FACTION_PROPOSALS` proposals (+2) and dislikes as many (−2): a detector that flags any
    disagreement with the ranking, or any group that agrees, flags them. Returns the votes
    and the voters with a taste of their own ("own taste") or in the faction ("faction")."""
    sessions: list[int] = []
    while sum(sessions) < n_votes:
        sessions.append(int(min(SEEN_PAIRS_CAP, np.ceil(rng.lognormal(np.log(10), 1.0)))))
    sessions[-1] -= sum(sessions) - n_votes
    voter_of = np.repeat(np.arange(len(sessions)), sessions)
    view_ms = rng.lognormal(np.log(4_000), 0.5, n_votes)
    starts = rng.uniform(0, 12 * 3_600_000, len(sessions))
    ends = np.cumsum(sessions)
    elapsed = np.cumsum(view_ms + 1_000)
    session_start = np.r_[0, elapsed[ends[:-1] - 1]]
    at_ms = (starts[voter_of] + elapsed - session_start[voter_of]).astype(np.int64)
    left, right = random_pairs(rng, len(truth), n_votes)
    left_ability, right_ability = truth[left], truth[right]
    kind_of_voter = rng.random(len(sessions))
    own = np.flatnonzero(kind_of_voter < OWN_TASTE_SHARE)
    faction = np.flatnonzero(kind_of_voter > 1 - FACTION_SHARE)
    tastes = np.zeros((len(own), len(truth)))
    if len(own):
        weight = rng.uniform(-0.5, 0.5, len(own))[:, None]
        tastes = weight * truth[None, :] + rng.normal(0.0, 1.0, (len(own), len(truth)))
    row_of = np.full(len(sessions), -1)
    row_of[own] = np.arange(len(own))
    rows = row_of[voter_of]
    mine = rows >= 0
    left_ability[mine] = tastes[rows[mine], left[mine]]
    right_ability[mine] = tastes[rows[mine], right[mine]]
    favoured = rng.choice(len(truth), 2 * FACTION_PROPOSALS, replace=False)
    bias = np.zeros(len(truth))
    bias[favoured[:FACTION_PROPOSALS]], bias[favoured[FACTION_PROPOSALS:]] = 2.0, -2.0
    members = np.isin(voter_of, faction)
    left_ability[members] += bias[left[members]]
    right_ability[members] += bias[right[members]]
    answers = VoterModel().choose_many(left_ability, right_ability, rng)
    kinds, a, b = choose_votes(left, right, answers)
    order = np.argsort(at_ms, kind="stable")
    voters = [f"honest-{v}" for v in voter_of[order].tolist()]
    tastes_of = {f"honest-{v}": "own taste" for v in own.tolist()}
    tastes_of.update({f"honest-{v}": "faction" for v in faction.tolist()})
    return Votes(kinds[order], a[order], b[order], view_ms[order] >= MIN_VIEW_MS,
                 at_ms[order], voters), tastes_of


def fit_ranks(counts: PairCounts, n_items: int, start: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Abilities (by proposal index) and ranks (1 = best) of the counted votes."""
    counts.ensure_items(n_items)
    i, j, wins_ij, wins_ji = counts.subset(np.arange(n_items))
    fit = bradley_terry.fit(n_items, i, j, wins_ij, wins_ji, init=start,
                            with_std_errors=False)
    abilities = np.asarray(fit.abilities)
    ranks = np.empty(n_items, dtype=np.int64)
    ranks[np.argsort(-abilities, kind="stable")] = np.arange(1, n_items + 1)
    return abilities, ranks


@dataclass(frozen=True)
class Adaptation:
    """How an attacker hides with the defences on: each account casts at most
    `account_votes` votes before a new one takes its place (the gateway's seen-pair cap at
    most), and a share `camouflage` of the votes that would serve the target are cast as an
    honest opinion instead (both sides: the undefended attack adapts alike)."""

    account_votes: int = SEEN_PAIRS_CAP
    camouflage: float = 0.0


@dataclass
class Attack:
    """One attack run: its outcome and the figures reported."""

    strategy: str
    defended: bool
    votes_needed: int | None = None  # None: the target never reached the top 10
    votes_cast: int = 0
    accounts: int = 0
    accounts_flagged: int = 0
    flagged_at_votes: list[int] = field(default_factory=list)  # account's votes when flagged
    honest_flagged: int = 0  # honest voters flagged during the attack
    top10_replaced_at: dict[int, int] = field(default_factory=dict)  # votes cast -> replaced
    # Attacking accounts flagged per reason (an account may have several).
    reasons: dict[str, int] = field(default_factory=dict)
    no_vote_counts: bool = False
    # Per attacking account, in the order opened: its votes, how many served the target (cast
    # by the strategy, not as an honest opinion), its votes when flagged (-1: never), and
    # whether it was still voting when the attack ended.
    account_votes: list[int] = field(default_factory=list)
    account_serving: list[int] = field(default_factory=list)
    account_flagged_at: list[int] = field(default_factory=list)
    account_voting_at_end: list[bool] = field(default_factory=list)


class Account:
    __slots__ = ("name", "clock_ms", "votes", "bucket", "bucket_ms")

    def __init__(self, name: str, clock_ms: float) -> None:
        self.name, self.clock_ms, self.votes = name, clock_ms, 0
        self.bucket, self.bucket_ms = float(VOTER_BURST), clock_ms


def attack_votes(rng: np.random.Generator, strategy: str, accounts: list[Account],
                 n: int, target: int, ranks: np.ndarray, truth: np.ndarray, *, defended: bool,
                 next_name: list[int], adaptation: Adaptation) -> tuple[Votes, np.ndarray]:
    """The next `n` votes of the attacker's accounts (round robin), choosing by `strategy`
    against the official `ranks` (`truth` for the honest-looking ones), and which of them
    serve the target (cast by the strategy, not as an honest opinion)."""
    n_items = len(ranks)
    left, right = random_pairs(rng, n_items, n)
    rank_l, rank_r = ranks[left], ranks[right]
    if strategy == "bots":
        otherwise_left = rng.random(n) < 0.5
    else:
        otherwise_left = rng.random(n) < 1 / (1 + np.exp(truth[right] - truth[left]))
    if strategy == "omnipresent":
        target_rank = ranks[target]
        above_l, above_r = rank_l < target_rank, rank_r < target_rank
        # The side that should lose: a proposal above the target (the one closer to it).
        left_loses = np.where(above_l & above_r, rank_l > rank_r, above_l)
        left_wins = np.where(above_l | above_r, ~left_loses, otherwise_left)
        serves = above_l | above_r
    else:
        left_wins = otherwise_left
        serves = np.zeros(n, dtype=bool)
    left_wins = np.where(left == target, True, np.where(right == target, False, left_wins))
    serves = serves | (left == target) | (right == target)
    if adaptation.camouflage > 0 and strategy != "bots":
        # Some votes that would serve the target are cast as an honest opinion instead.
        honest_looking = rng.random(n) < adaptation.camouflage
        left_wins = np.where(honest_looking, otherwise_left, left_wins)
        serves &= ~honest_looking
    a = np.where(left_wins, left, right)
    b = np.where(left_wins, right, left)
    kinds = np.full(n, WIN_CODE, dtype=np.uint8)
    bots = strategy == "bots"
    view_ms = np.full(n, 100.0) if bots else rng.lognormal(np.log(3_000), 0.5, n)
    gap_ms = np.full(n, 50.0) if bots else np.full(n, 800.0)
    at_ms = np.zeros(n, dtype=np.int64)
    voters: list[str] = []
    for k in range(n):
        account = accounts[k % len(accounts)]
        if defended and account.votes >= adaptation.account_votes:
            account = accounts[k % len(accounts)] = Account(
                f"{strategy}-{next_name[0]}", account.clock_ms)
            next_name[0] += 1
        when = account.clock_ms + view_ms[k] + gap_ms[k]
        if defended:
            # The gateway's bucket: a call waits for its token.
            held = min(VOTER_BURST, account.bucket
                       + (when - account.bucket_ms) * VOTER_RATE_PER_S / 1000)
            if held < 1:
                when += (1 - held) * 1000 / VOTER_RATE_PER_S
                held = 1.0
            account.bucket, account.bucket_ms = held - 1, when
        account.clock_ms = when
        account.votes += 1
        at_ms[k] = int(when)
        voters.append(account.name)
    trusted = view_ms >= MIN_VIEW_MS if defended else np.ones(n, dtype=bool)
    return Votes(kinds, a, b, trusted, at_ms, voters), serves


def top_replaced(ranks: np.ndarray, honest_top: set[int]) -> int:
    return len(honest_top - set(np.flatnonzero(ranks <= TOP).tolist()))


def run_attack(seed: int, strategy: str, truth: np.ndarray, honest: Votes,
               base_counts: PairCounts, base_abilities: np.ndarray,
               detector: VoterAnomaly | None, excluded: set[str], target: int,
               honest_top: set[int], *, n_accounts: int, budget: int,
               checkpoints: list[int], adaptation: Adaptation) -> Attack:
    """Attack until the target is in the top 10 or `budget` votes are cast."""
    rng = np.random.default_rng([seed, STRATEGIES.index(strategy), detector is not None])
    defended = detector is not None
    n_items = len(truth)
    result = Attack(strategy, defended)
    start_ms = float(honest.at_ms.max()) + 60_000
    accounts = [Account(f"{strategy}-{k}", start_ms + k * 997) for k in range(n_accounts)]
    next_name = [len(accounts)]
    counts = base_counts.copy()
    abilities = base_abilities
    _, ranks = fit_ranks(counts, n_items, abilities)
    attack = Votes(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64),
                   np.zeros(0, bool), np.zeros(0, np.int64), [])
    votes_of: dict[str, int] = {}
    serving_of: dict[str, int] = {}
    flagged_at: dict[str, int] = {}
    excluded_attackers: set[str] = set()
    pending_checkpoints = sorted(checkpoints)
    while result.votes_cast < budget:
        block = min(budget - result.votes_cast, max(500, result.votes_cast // 20))
        votes, serves = attack_votes(rng, strategy, accounts, block, target, ranks, truth,
                                     defended=defended, next_name=next_name,
                                     adaptation=adaptation)
        result.votes_cast += block
        for voter, serving in zip(votes.voters, serves.tolist(), strict=True):
            votes_of[voter] = votes_of.get(voter, 0) + 1
            serving_of[voter] = serving_of.get(voter, 0) + serving
        attack = attack.then(votes)
        newly: set[str] = set()
        honest_now: set[str] = set()
        if detector is not None:
            for flag in detector.observe(votes.voters, votes.kinds, votes.a, votes.b,
                                         votes.trusted, votes.at_ms):
                if flag.voter_id in excluded or flag.voter_id in excluded_attackers:
                    continue
                if flag.voter_id in votes_of:
                    newly.add(flag.voter_id)
                    result.flagged_at_votes.append(flag.votes)
                    flagged_at[flag.voter_id] = flag.votes
                    for reason in flag.reasons:
                        result.reasons[reason] = result.reasons.get(reason, 0) + 1
                else:
                    # An honest voter flagged while the attack runs: excluded as well.
                    honest_now.add(flag.voter_id)
        result.honest_flagged += len(honest_now)
        excluded = excluded | honest_now
        excluded_attackers |= newly
        exclusions = Exclusions(1, frozenset(excluded | excluded_attackers))
        if newly or honest_now:
            # Counted again from the log without them, as the ranker does.
            counts = PairCounts(n_items)
            for part in (honest, attack):
                counted = admit(part.decoded(), exclusions)
                counts.apply(counted.kinds, counted.a, counted.b)
        else:
            counted = admit(votes.decoded(), exclusions)
            counts.apply(counted.kinds, counted.a, counted.b)
        abilities, ranks = fit_ranks(counts, n_items, abilities)
        if detector is not None:
            detector.use_fit(np.arange(n_items), abilities)
        while pending_checkpoints and result.votes_cast >= pending_checkpoints[0]:
            result.top10_replaced_at[pending_checkpoints.pop(0)] = top_replaced(
                ranks, honest_top)
        if ranks[target] <= TOP:
            result.votes_needed = result.votes_cast
            break
        if defended and result.votes_cast >= NO_EFFECT_AFTER and not attack.trusted.any():
            result.no_vote_counts = True  # every vote too fast to be trusted: none ever will
            break
    result.accounts = len(votes_of)
    result.accounts_flagged = len(excluded_attackers)
    if defended:
        voting = {account.name for account in accounts}
        result.account_votes = list(votes_of.values())
        result.account_serving = [serving_of[name] for name in votes_of]
        result.account_flagged_at = [flagged_at.get(name, -1) for name in votes_of]
        result.account_voting_at_end = [name in voting for name in votes_of]
    result.top10_replaced_at[result.votes_cast] = top_replaced(ranks, honest_top)
    return result


def run_seed(seed: int, n_items: int, n_honest: int, budget_factor: float,
             max_attack_votes: int, max_defended_votes: int, settings: DetectionSettings,
             strategies: tuple[str, ...], accounts: dict[str, int],
             adaptation: Adaptation = Adaptation()) -> dict[str, object]:
    """One consultation, every strategy with and without the defences."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    truth = rng.normal(0.0, 1.0, n_items)
    honest, tastes_of = honest_consultation(rng, truth, n_honest)
    # Honest phase: votes arrive in time order, refits every 2,000 votes; the detector
    # tests each vote against the fit of the moment.
    detector = VoterAnomaly(settings)
    counts_all, counts_kept = PairCounts(n_items), PairCounts(n_items)
    flagged_honest: set[str] = set()
    honest_reasons: dict[str, int] = {}
    abilities = np.zeros(n_items)
    for start in range(0, len(honest), 2_000):
        chunk = honest.part(slice(start, start + 2_000))
        flags = detector.observe(chunk.voters, chunk.kinds, chunk.a, chunk.b, chunk.trusted,
                                 chunk.at_ms)
        for flag in flags:
            if flag.voter_id not in flagged_honest:
                for reason in flag.reasons:
                    honest_reasons[reason] = honest_reasons.get(reason, 0) + 1
        flagged_honest |= {flag.voter_id for flag in flags}
        counts_all.apply(chunk.kinds, chunk.a, chunk.b)
        abilities, _ = fit_ranks(counts_all, n_items, abilities)
        detector.use_fit(np.arange(n_items), abilities)
    # With the defences, flagged honest voters are excluded like anyone flagged.
    kept = admit(honest.decoded(), Exclusions(1, frozenset(flagged_honest)))
    counts_kept.apply(kept.kinds, kept.a, kept.b)
    abilities_all, ranks_all = fit_ranks(counts_all, n_items, None)
    abilities_kept, ranks_kept = fit_ranks(counts_kept, n_items, abilities_all)
    target = int(np.flatnonzero(ranks_all == TARGET_RANK)[0])
    honest_top = set(np.flatnonzero(ranks_all <= TOP).tolist())
    n_honest_voters = len(set(honest.voters))
    out: dict[str, object] = {
        "seed": seed, "honest_voters": n_honest_voters,
        "honest_flagged": len(flagged_honest),
        "honest_flagged_rate": len(flagged_honest) / n_honest_voters,
        "honest_flagged_reasons": honest_reasons,
        # The honest voters flagged by their tastes: the consensus', their own, a faction's.
        "honest_flagged_tastes": {
            taste: sum(tastes_of.get(v, "consensus") == taste for v in flagged_honest)
            for taste in ("consensus", "own taste", "faction")},
        "target_rank_with_defences": int(ranks_kept[target]),
        "top10_same_with_defences_before_attack": TOP - top_replaced(ranks_kept, honest_top),
        "strategies": {},
    }
    for strategy in strategies:
        open_run = run_attack(seed, strategy, truth, honest, counts_all, abilities_all, None,
                              set(), target, honest_top, n_accounts=accounts[strategy],
                              budget=max_attack_votes, checkpoints=[], adaptation=adaptation)
        needed = open_run.votes_needed or max_attack_votes
        defended_detector = detector.copy()
        guarded = run_attack(seed, strategy, truth, honest, counts_kept, abilities_kept,
                             defended_detector, flagged_honest, target, honest_top,
                             n_accounts=accounts[strategy],
                             budget=int(min(budget_factor * needed, max_defended_votes)),
                             checkpoints=[needed], adaptation=adaptation)
        out["strategies"][strategy] = {  # type: ignore[index]
            "without": asdict(open_run), "with": asdict(guarded),
            # None: no vote of the attack is trusted with the defences (it never moves anything).
            "ratio_at_least": None if guarded.no_vote_counts
            else (guarded.votes_needed or guarded.votes_cast) / needed,
            "honest_flagged_rate_with_attack": (len(flagged_honest) + guarded.honest_flagged)
            / n_honest_voters,
            "reached_with_defences": guarded.votes_needed is not None,
            "no_vote_counts_with_defences": guarded.no_vote_counts,
            "detection_rate": guarded.accounts_flagged / max(guarded.accounts, 1),
            # Over the accounts that cast at least one vote serving the target: the others
            # voted only as an honest voter would (pushers whose pairs never showed it).
            "detection_rate_serving": serving_detection_rate(guarded),
            "undetected": undetected_accounts(guarded),
            "top10_replaced_without": open_run.top10_replaced_at[open_run.votes_cast],
            "top10_replaced_with_at_same_votes": guarded.top10_replaced_at.get(
                needed, guarded.top10_replaced_at[guarded.votes_cast]),
        }
        print(f"seed {seed} {strategy}: without {open_run.votes_needed} votes, with "
              f"{guarded.votes_needed or f'> {guarded.votes_cast}'}; detected "
              f"{guarded.accounts_flagged}/{guarded.accounts} (of those serving the target "
              f"{serving_detection_rate(guarded)})", file=sys.stderr, flush=True)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def serving_detection_rate(attack: Attack) -> float | None:
    """The share flagged of the attacking accounts that cast at least one vote serving the
    target (None: none did)."""
    serving = np.array(attack.account_serving, dtype=np.int64) > 0
    if not serving.any():
        return None
    flagged = np.array(attack.account_flagged_at, dtype=np.int64) >= 0
    return float((flagged & serving).sum() / serving.sum())


def undetected_accounts(attack: Attack) -> dict[str, object]:
    """What the attacking accounts never flagged look like: how many, how many cast no vote
    serving the target (their votes are an honest voter's), how many were still voting when
    the attack ended, and the quartiles of their votes and of their votes serving it."""
    votes = np.array(attack.account_votes, dtype=np.int64)
    serving = np.array(attack.account_serving, dtype=np.int64)
    missed = np.array(attack.account_flagged_at, dtype=np.int64) < 0
    at_end = np.array(attack.account_voting_at_end, dtype=bool)
    if not missed.any():
        return {"accounts": 0}

    def quartiles(values: np.ndarray) -> list[float]:
        return [float(q) for q in np.percentile(values, [25, 50, 75])]

    return {"accounts": int(missed.sum()),
            "no_serving_vote": int((missed & (serving == 0)).sum()),
            "voting_at_end": int((missed & at_end).sum()),
            "votes_quartiles": quartiles(votes[missed]),
            "serving_quartiles": quartiles(serving[missed]),
            "flagged_serving_quartiles": quartiles(serving[~missed]) if (~missed).any() else [],
            "serving_votes_uncaught": int(serving[missed].sum()),
            "serving_votes": int(serving.sum())}


def summary(seeds: list[dict[str, object]], strategies: tuple[str, ...]) -> dict[str, object]:
    """Medians over the seeds, with the per-seed values."""
    rows: dict[str, object] = {}
    for strategy in strategies:
        runs = [s["strategies"][strategy] for s in seeds]  # type: ignore[index]
        rows[strategy] = {
            "votes_needed_without": [r["without"]["votes_needed"] for r in runs],
            "votes_needed_with": [r["with"]["votes_needed"] for r in runs],
            "votes_cast_with": [r["with"]["votes_cast"] for r in runs],
            "ratio_at_least": [None if r["ratio_at_least"] is None
                               else round(r["ratio_at_least"], 2) for r in runs],
            "median_ratio_at_least": statistics.median(
                math.inf if r["ratio_at_least"] is None else r["ratio_at_least"]
                for r in runs),
            "honest_flagged_rate_with_attack": [
                round(r["honest_flagged_rate_with_attack"], 4) for r in runs],
            "detection_rate": [round(r["detection_rate"], 3) for r in runs],
            "median_detection_rate": statistics.median(r["detection_rate"] for r in runs),
            "detection_rate_serving": [
                None if r["detection_rate_serving"] is None
                else round(r["detection_rate_serving"], 3) for r in runs],
            "median_detection_rate_serving": statistics.median(
                0.0 if r["detection_rate_serving"] is None else r["detection_rate_serving"]
                for r in runs),
            "accounts_with": [r["with"]["accounts"] for r in runs],
            "median_votes_per_account_when_flagged": [
                statistics.median(r["with"]["flagged_at_votes"])
                if r["with"]["flagged_at_votes"] else None for r in runs],
            "top10_replaced_without": [r["top10_replaced_without"] for r in runs],
            "top10_replaced_with_at_same_votes": [
                r["top10_replaced_with_at_same_votes"] for r in runs],
        }
    rates = [float(s["honest_flagged_rate"]) for s in seeds]  # type: ignore[arg-type]
    return {"honest_flagged_rate": rates, "median_honest_flagged_rate": statistics.median(rates),
            "strategies": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.manipulation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run: --first-seed .. --first-seed + --seeds - 1 (default 0; "
                             "e.g. 3 for seeds the detector's settings were not chosen on)")
    parser.add_argument("--proposals", type=int, default=1_000)
    parser.add_argument("--honest-votes", type=int, default=200_000)
    parser.add_argument("--budget", type=float, default=10.0,
                        help="with defences, stop after this many times the votes needed "
                             "without (default 10: the goal)")
    parser.add_argument("--max-attack-votes", type=int, default=300_000,
                        help="without defences, give up after this many attack votes")
    parser.add_argument("--max-defended-votes", type=int, default=1_500_000,
                        help="with defences, give up after this many attack votes")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--accounts", default="",
                        help="accounts voting at once, e.g. omnipresent=10,pushers=50 "
                             f"(default {','.join(f'{k}={v}' for k, v in ACCOUNTS.items())})")
    parser.add_argument("--account-votes", type=int, default=SEEN_PAIRS_CAP,
                        help="an attacking account casts at most this many votes before a new "
                             f"one takes its place (default {SEEN_PAIRS_CAP}: the seen-pair cap)")
    parser.add_argument("--camouflage", type=float, default=0.0,
                        help="share of the votes that would serve the target cast as an honest "
                             "opinion instead (default 0)")
    parser.add_argument("--out", type=Path, default=Path("results/manipulation/report.json"))
    args = parser.parse_args(argv)
    strategies = tuple(s for s in args.strategies.split(",") if s)
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        parser.error(f"unknown strategy {sorted(unknown)[0]!r}; one of {', '.join(STRATEGIES)}")
    accounts = dict(ACCOUNTS)
    for item in filter(None, args.accounts.split(",")):
        name, _, count = item.partition("=")
        if name not in ACCOUNTS or not count.isdigit() or int(count) < 1:
            parser.error(f"--accounts: not strategy=count: {item!r}")
        accounts[name] = int(count)
    args.accounts = accounts
    if not 1 <= args.account_votes <= SEEN_PAIRS_CAP or not 0 <= args.camouflage < 1:
        parser.error(f"--account-votes must be in 1..{SEEN_PAIRS_CAP}, --camouflage in [0, 1)")
    adaptation = Adaptation(args.account_votes, args.camouflage)
    settings = DetectionSettings()
    seeds: list[dict[str, object]] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        seeds.append(run_seed(seed, args.proposals, args.honest_votes, args.budget,
                              args.max_attack_votes, args.max_defended_votes, settings,
                              strategies, accounts, adaptation))
        write_report(args, settings, strategies, seeds)
    print(json.dumps(summary(seeds, strategies), indent=1).replace("Infinity", "null"))
    return 0


def write_report(args: argparse.Namespace, settings: DetectionSettings,
                 strategies: tuple[str, ...], seeds: list[dict[str, object]]) -> None:
    """The report of the seeds run so far (written after each)."""
    report = {"settings": {"proposals": args.proposals, "honest_votes": args.honest_votes,
                           "first_seed": args.first_seed, "target_rank": TARGET_RANK,
                           "top": TOP, "budget": args.budget,
                           "accounts": args.accounts, "account_votes": args.account_votes,
                           "camouflage": args.camouflage, "detection": asdict(settings)},
              "summary": summary(seeds, strategies), "seeds": seeds}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # A median of "never" is written as null, like the per-seed values.
    args.out.write_text(json.dumps(report, indent=1, default=str).replace("Infinity", "null"))


if __name__ == "__main__":
    sys.exit(main())
