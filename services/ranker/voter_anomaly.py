"""Anomaly scores, computed as votes arrive: each vote tested against the current fit, the
voter's pace and share of too-fast votes, and groups of accounts voting alike against the fit.

Four tests, each a reason a voter is flagged:

- ``fit``: how improbable the voter's choices are under the latest published fit. A vote
  for proposal w over l had chance q = σ(θw − θl). A *strong upset* is a vote whose choice had
  q < `upset_below` (the voter picked a proposal the fit gives at most a 1-in-10 chance).
  Under the fit, a voter's number of strong upsets S is a sum of independent Bernoullis with
  mean μ = Σ m·[m < upset_below] over their decisive votes, m the chance of the underdog of
  each pair; the p-value is the Poisson tail P(X ≥ S | μ), which is larger than the exact
  Poisson-binomial one (conservative). It is looked at when the voter's decisive votes reach
  `first_look`, then each time they double (8, 16, 32, ...): a handful of looks, so the
  chance that an honest voter is ever flagged stays near `fit_alpha` times their number.
  Why not Fisher's method over every vote's p-value, as Chatbot Arena's detector combines
  them: the votes an attacker casts with the ranking on the pairs that do not serve it have
  large p-values, each adding less than its mean to Fisher's sum, which the attacking votes
  must make up first; they add nothing to the count of strong upsets.
- ``pace``: more than `max_votes_per_min` votes within about a minute, sustained (a bucket
  of that many votes refilled at that rate per minute ran dry): past a person's reading pace.
- ``too_fast``: at least `min_untrusted` votes, and more than `untrusted_share` of them,
  flagged untrusted at ingest (cast sooner after their prompt than a person reads).
- ``coordinated``: one of a group of accounts whose choices on the same proposals go one way
  far beyond the fit's odds, together (ranker.coordinated_voting: the test across accounts
  that sees an attacker spread over many accounts of a few upsets each).

Ties and skips are not tested for fit (they say nothing about which side the voter wanted);
votes on a proposal the fit does not rank are not either. Only interactive votes have a
time (`at_ms`; -1 for imported ones, which the pace test skips). Pure code: no Redis, no gRPC.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.special

from pairwise.vote_log import WIN_CODE
from ranker.coordinated_voting import CoordinationCheck, CoordinationSettings, Group, Suspect

FIT = "fit"
PACE = "pace"
TOO_FAST = "too_fast"
COORDINATED = "coordinated"
REASONS = (FIT, PACE, TOO_FAST, COORDINATED)

logger = logging.getLogger(__name__)
# One thread for the process's background checks across accounts: they queue, each cause's
# at most one at a time.
_CHECKS = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="coordination-check")


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds of the three tests (see the module docstring)."""

    # The fit test flags at p below this at any look. An honest voter is looked at about
    # log2(their votes / first_look) + 1 times, so 1e-4 keeps the flagged honest voters far
    # below 1 in 1,000.
    fit_alpha: float = 1e-4
    # Decisive votes tested at the first look (then at each doubling): below ~8 even a voter
    # whose every vote is an upset cannot reach p < 1e-4 against a typical μ.
    first_look: int = 8
    # A choice the fit gave less than this chance is a strong upset.
    upset_below: float = 0.1
    # A person reads two proposals and clicks in 2 s at the fastest; 40 a minute sustained
    # over 40 votes is a script (the gateway's bucket allows 120 a minute).
    max_votes_per_min: int = 40
    untrusted_share: float = 0.5
    min_untrusted: int = 5
    # The test across accounts; None: off.
    coordination: CoordinationSettings | None = CoordinationSettings()

    def __post_init__(self) -> None:
        if not 0 < self.fit_alpha < 1:
            raise ValueError(f"fit_alpha must be in (0, 1), got {self.fit_alpha}")
        if not 0 < self.upset_below <= 0.5:
            raise ValueError(f"upset_below must be in (0, 0.5], got {self.upset_below}")
        if self.first_look < 1 or self.max_votes_per_min < 1 or self.min_untrusted < 1:
            raise ValueError("first_look, max_votes_per_min and min_untrusted must be >= 1")
        if not 0 < self.untrusted_share <= 1:
            raise ValueError(f"untrusted_share must be in (0, 1], got {self.untrusted_share}")


@dataclass(frozen=True)
class Flag:
    """A voter newly flagged: why (`reasons`, a subset of REASONS), the fit test's score
    (−log10 of its p-value at the last look, 0 before the first), a sentence per reason in
    `detail`, and their votes seen so far."""

    voter_id: str
    reasons: tuple[str, ...]
    score: float
    detail: str
    votes: int


class _Evidence:
    """What the tests keep of one voter (~200 bytes with its dict entry)."""

    __slots__ = ("votes", "untrusted", "tested", "upsets", "expected", "next_look",
                 "score", "bucket", "bucket_ms", "fastest", "reasons", "number", "group")

    def __init__(self, first_look: int, burst: int, number: int) -> None:
        self.number = number  # the voter's number in the test across accounts
        self.group = ""  # the test across accounts' sentence, once flagged by it
        self.votes = 0
        self.untrusted = 0
        self.tested = 0
        self.upsets = 0
        self.expected = 0.0
        self.next_look = first_look
        self.score = 0.0
        self.bucket = float(burst)
        self.bucket_ms = -1
        self.fastest = 0  # most votes seen within the bucket's minute
        self.reasons: tuple[str, ...] = ()


class VoterAnomaly:
    """The evidence on every voter of one cause, and the flags it raised.

    `use_fit` gives the abilities to test votes against (each published fit);
    `observe` takes votes in log order and returns the voters they flagged (each voter once
    per reason). Safe to call from one thread at a time each (the consumer may observe in a
    worker thread while the event loop gives a fit).
    """

    def __init__(self, settings: DetectionSettings | None = None, *,
                 on_background_flags: Callable[[], None] | None = None) -> None:
        self.settings = settings or DetectionSettings()
        # The test across accounts takes up to seconds at a million kept votes: the ranker
        # runs it on a copy in a thread (`_CHECKS`), so that its event loop keeps answering
        # and renewing leases, and is called back (`on_background_flags`, in that thread)
        # to collect its flags (`late_flags`); without a callback it runs in line (the
        # benchmark).
        self._on_background_flags = on_background_flags
        self._checking = False
        self._late: list[Flag] = []
        self._voters: dict[str, _Evidence] = {}
        # Abilities by proposal index (NaN: not ranked), swapped whole by `use_fit`.
        self._abilities = np.zeros(0)
        self._proposal_ids: Sequence[str] = ()
        coordination = self.settings.coordination
        self._coordination = CoordinationCheck(coordination) if coordination else None
        self._names: list[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._voters)

    def copy(self) -> VoterAnomaly:
        """A detector holding the same evidence and fit (for what-if runs)."""
        twin = VoterAnomaly(self.settings)
        with self._lock:
            for voter_id, evidence in self._voters.items():
                copied = _Evidence.__new__(_Evidence)
                for name in _Evidence.__slots__:
                    setattr(copied, name, getattr(evidence, name))
                twin._voters[voter_id] = copied
            twin._names = list(self._names)
            if self._coordination is not None:
                twin._coordination = self._coordination.copy()
        twin._abilities = self._abilities
        twin._proposal_ids = self._proposal_ids
        return twin

    def use_fit(self, proposal_index: np.ndarray, abilities: np.ndarray,
                proposal_ids: Sequence[str] | None = None) -> None:
        """Test the next votes against these abilities (of proposal indices
        `proposal_index`, same shape); `proposal_ids` (by proposal index) names proposals in
        the flags' sentences."""
        size = int(proposal_index.max()) + 1 if len(proposal_index) else 0
        by_index = np.full(size, np.nan)
        by_index[proposal_index] = abilities
        self._abilities = by_index
        if proposal_ids is not None:
            self._proposal_ids = proposal_ids

    def score(self, voter_id: str) -> tuple[float, tuple[str, ...]]:
        """The voter's fit-test score and the reasons they were flagged for (none: not)."""
        evidence = self._voters.get(voter_id)
        return (evidence.score, evidence.reasons) if evidence else (0.0, ())

    def votes_of(self, voter_id: str) -> int:
        """The voter's votes observed so far."""
        evidence = self._voters.get(voter_id)
        return evidence.votes if evidence else 0

    def observe(self, voter_ids: Sequence[str], kinds: np.ndarray, a: np.ndarray,
                b: np.ndarray, trusted: np.ndarray, at_ms: np.ndarray) -> list[Flag]:
        """Take votes in log order: `kinds` (vote_log codes; for a win, `a` beat `b`), their
        trust flags and times (Unix ms, -1 when unknown), one per voter id. Returns the
        flags they raised."""
        n = len(kinds)
        if n == 0:
            return []
        upset_chance, tested, upset = self._underdog_chances(kinds, a, b)
        settings = self.settings
        burst = settings.max_votes_per_min
        rate_per_ms = burst / 60_000.0
        flags: dict[str, Flag] = {}
        with self._lock:
            voters = self._voters
            for k, voter_id in enumerate(voter_ids):
                if not voter_id:
                    continue
                evidence = voters.get(voter_id)
                if evidence is None:
                    evidence = voters[voter_id] = _Evidence(settings.first_look, burst,
                                                            len(self._names))
                    self._names.append(voter_id)
                evidence.votes += 1
                new: list[str] = []
                if not trusted[k]:
                    evidence.untrusted += 1
                    if evidence.untrusted >= settings.min_untrusted \
                            and evidence.untrusted > settings.untrusted_share * evidence.votes:
                        new.append(TOO_FAST)
                when = int(at_ms[k])
                if when >= 0:
                    if evidence.bucket_ms >= 0:
                        evidence.bucket = min(float(burst), evidence.bucket + max(
                            0, when - evidence.bucket_ms) * rate_per_ms)
                    evidence.bucket_ms = when
                    evidence.bucket -= 1.0
                    if evidence.bucket < 0:
                        new.append(PACE)
                if tested[k]:
                    evidence.tested += 1
                    chance = upset_chance[k]
                    if chance < settings.upset_below:
                        evidence.expected += chance
                        evidence.upsets += int(upset[k])
                    if evidence.tested >= evidence.next_look:
                        evidence.next_look *= 2
                        evidence.score = _fit_score(evidence.upsets, evidence.expected)
                        if evidence.score > -math.log10(settings.fit_alpha):
                            new.append(FIT)
                fresh = tuple(r for r in REASONS if r in new and r not in evidence.reasons)
                if fresh:
                    evidence.reasons += fresh
                    flags[voter_id] = Flag(voter_id, evidence.reasons,
                                           round(evidence.score, 2),
                                           _detail(evidence, settings), evidence.votes)
            if self._coordination is not None:
                self._test_groups(voter_ids, kinds, a, b, flags)
        return list(flags.values())

    def _test_groups(self, voter_ids: Sequence[str], kinds: np.ndarray, a: np.ndarray,
                     b: np.ndarray, flags: dict[str, Flag]) -> None:
        """Keep the decisive votes for the test across accounts, and run it when due
        (called with the lock held)."""
        check = self._coordination
        assert check is not None
        wins = np.flatnonzero(kinds == WIN_CODE).tolist()
        voters = self._voters
        rows = [k for k in wins if voter_ids[k]]
        if rows:
            check.add(a[rows], b[rows], np.array(
                [voters[voter_ids[k]].number for k in rows], dtype=np.int32))
        if self._checking or not check.due() or not len(self._abilities):
            return
        if self._on_background_flags is None:
            self._flag_suspects(check.check(self._abilities)[1], flags)
            return
        self._start_check()

    def _start_check(self) -> None:
        """Check a copy of the kept votes in the background (called with the lock held)."""
        check = self._coordination
        assert check is not None
        self._checking = True
        _CHECKS.submit(self._check_in_background, check.snapshot(), self._abilities)

    def _check_in_background(self, snapshot: CoordinationCheck, abilities: np.ndarray) -> None:
        """Run in `_CHECKS`' thread: check `snapshot`, keep its flags for `late_flags`, and
        start the next check if votes that came meanwhile made one due (the last votes of a
        cause may be followed by none that would start it)."""
        try:
            suspects = snapshot.check(abilities)[1]
        except Exception as exc:  # the next due check tries again
            logger.warning("the test across accounts failed", extra={"error": repr(exc)})
            suspects = []
        flags: dict[str, Flag] = {}
        with self._lock:
            self._checking = False
            self._flag_suspects(suspects, flags)
            self._late += flags.values()
            assert self._coordination is not None
            if self._coordination.due():
                self._start_check()
        if flags and self._on_background_flags is not None:
            self._on_background_flags()

    def late_flags(self) -> list[Flag]:
        """The flags raised by background checks since the last call."""
        with self._lock:
            late, self._late = self._late, []
        return late

    def _flag_suspects(self, suspects: list[Suspect], flags: dict[str, Flag]) -> None:
        """Flag `suspects` not flagged so yet into `flags` (called with the lock held)."""
        voters = self._voters
        for suspect in suspects:
            voter_id = self._names[suspect.voter]
            evidence = voters[voter_id]
            if COORDINATED in evidence.reasons:
                continue
            evidence.reasons += (COORDINATED,)
            evidence.group = self._group_sentence(suspect)
            flags[voter_id] = Flag(voter_id, evidence.reasons, round(evidence.score, 2),
                                   _detail(evidence, self.settings), evidence.votes)

    def _group_sentence(self, suspect: Suspect) -> str:
        groups = sorted(suspect.groups, key=lambda g: -g.score)
        first = groups[0]
        high = first.cohort_high
        cohort = f"{first.cohort_low}+" if high is None else \
            (f"{first.cohort_low}" if high == first.cohort_low else
             f"{first.cohort_low}–{high}")
        named = ", ".join(self._group_phrase(g) for g in groups[:3])
        more = f" and {len(groups) - 3} more" if len(groups) > 3 else ""
        return (f"coordinated: among accounts of {cohort} decisive votes, {named}{more}; "
                f"this account: {suspect.with_group} of {suspect.votes} votes on them that "
                f"way ({suspect.posterior:.0%} likely one of the group)")

    def _group_phrase(self, group: Group) -> str:
        if group.band:
            name = f"the top {group.band}"
        elif group.proposal < len(self._proposal_ids):
            name = self._proposal_ids[group.proposal]
        else:
            name = f"proposal #{group.proposal}"
        return (f"{name} lost {group.losses} of their {group.votes} votes, "
                f"{group.expected:.1f} expected, over {group.accounts} accounts "
                f"(p = {10 ** -group.score:.0e})")

    def _underdog_chances(self, kinds: np.ndarray, a: np.ndarray,
                          b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per vote: the chance the fit gives the pair's underdog, whether the vote is
        tested (a win between two ranked proposals), and whether it went to the underdog."""
        abilities = self._abilities
        size = len(abilities)
        known = (a < size) & (b < size)
        theta_a = np.full(len(a), np.nan)
        theta_b = np.full(len(b), np.nan)
        theta_a[known] = abilities[a[known]]
        theta_b[known] = abilities[b[known]]
        gap = np.abs(theta_a - theta_b)
        tested = (kinds == WIN_CODE) & np.isfinite(gap)
        chance = np.where(tested, 1.0 / (1.0 + np.exp(np.where(tested, gap, 0.0))), 1.0)
        # For a win, a beat b: the underdog won when a was rated lower.
        upset = tested & (np.nan_to_num(theta_a) < np.nan_to_num(theta_b))
        return chance, tested, upset


def _fit_score(upsets: int, expected: float) -> float:
    """−log10 P(X ≥ upsets) for X ~ Poisson(expected)."""
    if upsets <= 0:
        return 0.0
    tail = float(scipy.special.pdtrc(upsets - 1, max(expected, 1e-12)))
    return -math.log10(tail) if tail > 0 else 300.0


def _detail(evidence: _Evidence, settings: DetectionSettings) -> str:
    parts = []
    if FIT in evidence.reasons:
        parts.append(f"fit: {evidence.upsets} of {evidence.tested} decisive votes chose a "
                     f"proposal the ranking gave under {settings.upset_below:.0%} "
                     f"(expected {evidence.expected:.1f}; p = {10 ** -evidence.score:.1e})")
    if PACE in evidence.reasons:
        parts.append(f"pace: over {settings.max_votes_per_min} votes a minute, sustained")
    if TOO_FAST in evidence.reasons:
        parts.append(f"too_fast: {evidence.untrusted} of {evidence.votes} votes sooner after "
                     "their prompt than a person reads")
    if COORDINATED in evidence.reasons:
        parts.append(evidence.group)
    return "; ".join(parts)
