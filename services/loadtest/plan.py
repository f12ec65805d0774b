"""What one load run does: its modes, bounds and simulated population, checked before any
traffic is sent. Targets are loopback addresses only."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

INTERACTIVE = "interactive"
BULK = "bulk"
BOTH = "both"
MODES = (INTERACTIVE, BULK, BOTH)
MAX_PROPOSALS = 34_000


class PlanError(ValueError):
    """A setting of the plan is out of range or the target is not a loopback address; the
    message names the setting (as its command-line flag)."""


def check_loopback(target: str) -> str:
    """`target` ("host:port", "[::1]:port") if its host is 127.0.0.0/8, ::1 or localhost.

    Raises PlanError otherwise: a load test never sends traffic off this machine.
    """
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise PlanError(f"--target must be HOST:PORT, got {target!r}")
    host = host.removeprefix("[").removesuffix("]")
    if host == "localhost":
        return target
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise PlanError(f"--target host {host!r} is not a loopback address (127.0.0.0/8, ::1 "
                        "or localhost); load tests only target this machine") from None
    if not address.is_loopback:
        raise PlanError(f"--target {target!r} is not a loopback address (127.0.0.0/8, ::1 or "
                        "localhost); load tests only target this machine")
    return target


@dataclass(frozen=True)
class LoadPlan:
    """Every knob of a run. Counts are per mode; times in seconds; rates per second."""

    mode: str = BOTH
    # Simulated voters (ids v0 .. v<voters-1>); they arrive over the run.
    voters: int = 200_000
    # Proposals the organisers seed before the run (hidden abilities ~ N(0, 1)).
    proposals: int = 2_000
    # Proposals citizens add mid-run (PENDING), which the admin then accepts, in waves.
    new_proposals: int = 40
    # The load phase stops after this long, or when every mode sent `max_votes`.
    duration_s: float = 60.0
    max_votes: int = 2_000_000
    # Interactive: voters voting at once (NextPair -> SubmitVote each), and how fast new
    # voters arrive (Poisson); each casts 5-20 votes, reading each pair `think_s`.
    concurrency: int = 256
    arrival_rate: float = 1_000.0
    think_s: float = 0.0
    # Each voter asks NextPair once, then gets every next pair in its SubmitVote's reply
    # (want_next_pair): one call per vote instead of two.
    next_pair_in_reply: bool = True
    # Bulk: votes per ImportVotes call, and calls in flight at once. With one, client,
    # gateway, ingest and Redis take turns and a core idles (~130k votes/s end to end at
    # 2,000 proposals); two overlap them (150-180k/s); more only queue in Redis.
    batch_size: int = 5_000
    bulk_streams: int = 2
    # Connections to the gateway, each call on the next: several gateway processes sharing
    # one port each get some of them.
    channels: int = 4
    # The voter model (cluster.voter_model): P(skip), and P(tie) for equal proposals; and
    # the votes an interactive voter casts (uniform between the two, inclusive).
    tie_rate: float = 0.12
    skip_rate: float = 0.04
    votes_per_voter: tuple[int, int] = (5, 20)
    # After the load phase, how long to wait for the ranker to count every accepted vote.
    catch_up_s: float = 120.0
    # Naive baseline (bulk mode): pipelined XADDs into a private embedded server.
    baseline: bool = True
    baseline_votes: int = 300_000
    # How often the ranking is read for accuracy (s); it is read again at the end.
    accuracy_every_s: float = 2.0
    seed: int = 2017
    # Attributes (five values each) declared on each cause and given by every voter with
    # each vote, one value of each casting 60 % of the votes: the ranker then keeps and
    # refits five segments an attribute beside the overall ranking. 0: none.
    segment_attributes: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise PlanError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        positive = {"--voters": self.voters, "--max-votes": self.max_votes,
                    "--concurrency": self.concurrency, "--batch-size": self.batch_size,
                    "--bulk-streams": self.bulk_streams, "--duration": self.duration_s,
                    "--arrival-rate": self.arrival_rate, "--channels": self.channels}
        for flag, value in positive.items():
            if not value > 0:
                raise PlanError(f"{flag} must be > 0, got {value}")
        if not 2 <= self.proposals <= MAX_PROPOSALS:
            raise PlanError(f"--proposals must be between 2 and {MAX_PROPOSALS}, "
                            f"got {self.proposals}")
        if not 0 <= self.new_proposals <= MAX_PROPOSALS - self.proposals:
            raise PlanError(f"--new-proposals must be between 0 and "
                            f"{MAX_PROPOSALS - self.proposals}, got {self.new_proposals}")
        if not 0 <= self.segment_attributes <= 8:
            raise PlanError(f"--segments must be 0 to 8, got {self.segment_attributes}")
        low, high = self.votes_per_voter
        if not 1 <= low <= high:
            raise PlanError(f"votes per voter must be 1 <= low <= high, got {low}-{high}")
        for flag, rate in (("--tie-rate", self.tie_rate), ("--skip-rate", self.skip_rate)):
            if not 0 <= rate <= 1:
                raise PlanError(f"{flag} must be between 0 and 1, got {rate}")
        if self.batch_size > 10_000:
            raise PlanError(f"--batch-size must be at most 10000, got {self.batch_size}")
        if self.think_s < 0 or self.catch_up_s < 0 or self.accuracy_every_s <= 0:
            raise PlanError("--think, --catch-up and --accuracy-every must be >= 0 (> 0 for "
                            "--accuracy-every)")

    @property
    def modes(self) -> tuple[str, ...]:
        return (INTERACTIVE, BULK) if self.mode == BOTH else (self.mode,)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
