"""What one pair-selection benchmark does: the consultation's size, the vote budget per
strategy, when the admin accepts new proposals, the seeds, and the goals that apply; presets
for 1,000 and 34,000 proposals and a short one for the test suite."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from cluster.voter_model import VoterModel
from loadtest.plan import BULK, INTERACTIVE, MAX_PROPOSALS, LoadPlan, PlanError

# Goals this benchmark measures (names are the report's keys); a preset checks those its
# size and budget can decide.
RECALL = "votes until top-10 recall stays >= 0.8: adaptive / uniform"
TAU = "votes until Kendall tau stays >= 0.9: adaptive / uniform"
COVERAGE = "95% interval coverage under adaptive selection"
NEWCOMERS = "votes from acceptance to a new proposal's 10th vote (adaptive, worst)"

_VOTERS = VoterModel()


@dataclass(frozen=True)
class SelectionPlan:
    """Every knob of a benchmark run. Votes are per strategy (each strategy has its cause)."""

    preset: str = "1k"
    # Proposals the organisers seed (hidden abilities ~ N(0, 1)), then `new_per_wave`
    # citizens' proposals accepted by the admin when each strategy's cause has received
    # each fraction in `waves` of its vote budget.
    proposals: int = 1_000
    new_per_wave: int = 20
    waves: tuple[float, ...] = (0.25, 0.5, 0.75)
    # Votes per strategy: uniform pairs need about 160,000 to find the top 10 among 1,000
    # proposals (recall 0.8), so the default leaves them room to get there.
    votes: int = 200_000
    # Past votes imported (ImportVotes, uniform pairs) into each cause before the voters
    # come: a consultation already under way, whose proposals are no longer new.
    history_votes: int = 0
    # Seeds of the hidden truth and of the voters, one run per seed (first, count).
    seed: int = 2017
    seeds: int = 3
    # Voters voting at once per cause, each casting 10-20 votes.
    concurrency: int = 32
    # Each vote's next pair in SubmitVote's reply (one call per vote, as a client should);
    # False: a NextPair before every vote, so that NextPair carries every pair.
    next_pair_in_reply: bool = True
    votes_per_voter: tuple[int, int] = (10, 20)
    tie_rate: float = _VOTERS.tie_rate
    skip_rate: float = _VOTERS.skip_rate
    # The full ranking is read (and compared with the truth) each time the votes counted
    # grew by `sample_growth` of themselves, and at least `sample_step` votes.
    sample_step: int = 1_000
    sample_growth: float = 0.02
    # A seed's voting stops after this long even if the budget is not spent (s), and waits
    # at most `catch_up_s` for the ranker to count every vote.
    time_limit_s: float = 3_600.0
    catch_up_s: float = 120.0
    # A new proposal should get its 10th vote within this many votes after its acceptance.
    newcomer_goal_votes: int = 2_000
    goals: tuple[str, ...] = (RECALL, TAU, COVERAGE, NEWCOMERS)

    def __post_init__(self) -> None:
        if self.votes <= 0 or self.seeds < 1 or self.concurrency < 1:
            raise PlanError("--votes, --seeds and --concurrency must be > 0")
        if not all(0 < f < 1 for f in self.waves) or list(self.waves) != sorted(self.waves):
            raise PlanError(f"waves must be increasing fractions of the budget in (0, 1), "
                            f"got {self.waves}")
        if self.sample_step <= 0 or self.sample_growth < 0 or self.time_limit_s <= 0:
            raise PlanError("--sample-step and --time-limit must be > 0")
        if self.history_votes < 0:
            raise PlanError(f"--history-votes must be >= 0, got {self.history_votes}")
        # The load generator's own checks (sizes, rates, voters) apply as they are.
        self.load_plan(self.seed)

    @property
    def new_proposals(self) -> int:
        return self.new_per_wave * len(self.waves)

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + n for n in range(self.seeds)]

    def load_plan(self, seed: int) -> LoadPlan:
        """The interactive load of one strategy's cause for `seed`: as many voters as the
        budget can use, admitted as fast as `concurrency` allows. Its vote bound counts the
        imported past votes too (they are in the same counters)."""
        return LoadPlan(
            mode=INTERACTIVE, voters=self.votes // self.votes_per_voter[0] + 1,
            proposals=self.proposals, new_proposals=self.new_proposals,
            duration_s=self.time_limit_s, max_votes=self.history_votes + self.votes,
            concurrency=self.concurrency,
            arrival_rate=100_000.0, votes_per_voter=self.votes_per_voter,
            next_pair_in_reply=self.next_pair_in_reply, tie_rate=self.tie_rate,
            skip_rate=self.skip_rate,
            catch_up_s=self.catch_up_s, baseline=False, seed=seed)

    def history_plan(self, seed: int) -> LoadPlan:
        """The import of one cause's past votes: ImportVotes batches of 5,000, two in
        flight, from 1,000 past voters."""
        return LoadPlan(
            mode=BULK, voters=1_000, proposals=self.proposals, new_proposals=self.new_proposals,
            duration_s=self.time_limit_s, max_votes=max(1, self.history_votes),
            arrival_rate=1_000.0, tie_rate=self.tie_rate, skip_rate=self.skip_rate,
            baseline=False, seed=seed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS = {
    # The headline: 1,000 proposals, 60 accepted mid-run, 200,000 votes a strategy.
    "1k": SelectionPlan(),
    # Newcomers at the largest size: 33,940 + 60 = 34,000 proposals, in a consultation under
    # way: 600,000 past votes imported first (about 35 per proposal; with fewer, most
    # proposals would still be under 10 votes, as new as the newcomers). Each wave leaves at
    # least 30,000 votes for its proposals' first ten (goal: 20,000). The budget is far too
    # small to rank 34,000 proposals, so only exposure and coverage are judged.
    "34k": SelectionPlan(preset="34k", proposals=MAX_PROPOSALS - 60, waves=(1 / 6, 2 / 6, 3 / 6),
                         votes=60_000, history_votes=600_000, sample_step=10_000,
                         sample_growth=0.25, newcomer_goal_votes=20_000,
                         goals=(COVERAGE, NEWCOMERS)),
    # NextPair's cost at the largest size: the 34k consultation with a NextPair before every
    # vote (both causes at once, on the same cores), so each strategy's p50 / p99 rest on
    # ~20,000 calls instead of the voters' first pairs only. One seed of 20,000 votes a
    # strategy; new proposals still come, but too late to judge their tenth vote.
    "34k-nextpair": SelectionPlan(preset="34k-nextpair", proposals=MAX_PROPOSALS - 60,
                                  waves=(1 / 6, 2 / 6, 3 / 6), votes=20_000,
                                  history_votes=600_000, seeds=1, next_pair_in_reply=False,
                                  sample_step=10_000, sample_growth=0.25, goals=(COVERAGE,)),
    # For the test suite: small and quick; checks only what cannot be noise.
    "short": SelectionPlan(preset="short", proposals=60, new_per_wave=5, waves=(0.5, 0.7),
                           votes=1_600, seeds=1, concurrency=16, sample_step=400,
                           sample_growth=0.0, time_limit_s=300.0, catch_up_s=60.0, goals=()),
}


def preset(name: str, **overrides: Any) -> SelectionPlan:
    """The preset `name` with `overrides` (fields left None keep the preset's value).
    Raises PlanError for an unknown name or a value out of range."""
    if name not in PRESETS:
        raise PlanError(f"--preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return dataclasses.replace(PRESETS[name],
                               **{k: v for k, v in overrides.items() if v is not None})
