"""One cause under load: opened with the seed proposals, grown by citizens' proposals the
admin accepts mid-run, watched (votes counted, freshness, accuracy), then audited."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
import numpy as np

from loadtest.accuracy import AccuracyPoint, compare
from loadtest.gateway_client import Gateway
from loadtest.measurements import ModeCounters, Tick
from loadtest.population import Population
from loadtest.proposal_votes import ProposalVotes
from pairwise.v1 import gateway_pb2, types_pb2

logger = logging.getLogger(__name__)

# AddProposals takes at most this many proposals per call (gateway.catalog).
_PROPOSALS_PER_CALL = 1000
# GetRanking pages hold at most this many entries (gateway.paging).
_PAGE = 1000
# How often the published ranking's votes_counted is read (s): the freshness resolution.
POLL_S = 0.05
TITLE = "Comment lutter contre les violences faites aux femmes ? (test de charge)"
# Declared voter attributes: this many values each, the first cast by this share of voters.
_VALUES = 5
_FIRST_VALUE_SHARE = 0.6


class Campaign:
    """A cause `cause_id` on the cluster behind `gateway`, loaded by one mode.

    `accepted` holds the sorted population indices of the proposals accepted so far (the
    ones voters may be shown); `origin` is the monotonic time the load began;
    `proposal_votes` what the voters' answers gave each proposal; `cause` the cause as
    CreateCause answered (None before `open`).
    """

    def __init__(self, gateway: Gateway, population: Population, mode: str,
                 cause_id: str) -> None:
        self.gateway = gateway
        self.population = population
        self.mode = mode
        self.cause_id = cause_id
        self.counters = ModeCounters()
        self.accepted = np.arange(population.n_seed, dtype=np.int64)
        self.proposal_votes = ProposalVotes(population.n_seed + population.n_new)
        self.cause: types_pb2.Cause | None = None
        self.accuracy: list[AccuracyPoint] = []
        self.events: list[tuple[float, str]] = []
        self.counted = 0
        self.origin = time.monotonic()
        self.proposals_added = 0
        self.proposals_accepted = 0
        # Seconds from `origin` until this mode stopped sending (set by the runner).
        self.load_s: float | None = None
        # Each voter's value position per declared attribute (none declared: no column).
        self._voter_values = np.zeros((population.n_voters, 0), dtype=np.int8)

    def elapsed(self) -> float:
        return time.monotonic() - self.origin

    def note(self, text: str) -> None:
        self.events.append((round(self.elapsed(), 3), text))

    async def open(self, pair_selection: types_pb2.PairSelection =
                   types_pb2.PAIR_SELECTION_UNSPECIFIED, *, attributes: int = 0,
                   seed: int = 0) -> None:
        """Create the (moderated) cause, its pairs chosen by `pair_selection` (UNSPECIFIED:
        the service's default), with `attributes` voter attributes declared (see
        `attributes_of`), and add the organisers' proposals, accepted at once."""
        reply = await self.gateway.call("CreateCause", gateway_pb2.CreateCauseRequest(
            cause_id=self.cause_id, title=TITLE, auto_accept_proposals=False,
            pair_selection=pair_selection), admin=True)
        self.cause = reply.cause
        if attributes:
            reply = await self.gateway.call(
                "SetVoterAttributes", gateway_pb2.SetVoterAttributesRequest(
                    cause_id=self.cause_id, attributes=[
                        types_pb2.VoterAttribute(key=f"a{k}",
                                                 values=[f"v{v}" for v in range(_VALUES)])
                        for k in range(attributes)]), admin=True)
            self.cause = reply.cause
            others = (1 - _FIRST_VALUE_SHARE) / (_VALUES - 1)
            self._voter_values = np.random.default_rng(seed).choice(
                _VALUES, size=(self.population.n_voters, attributes),
                p=[_FIRST_VALUE_SHARE] + [others] * (_VALUES - 1)).astype(np.int8)
        for start in range(0, self.population.n_seed, _PROPOSALS_PER_CALL):
            stop = min(start + _PROPOSALS_PER_CALL, self.population.n_seed)
            await self.gateway.call("AddProposals", gateway_pb2.AddProposalsRequest(
                cause_id=self.cause_id, proposals=[self._new(k) for k in range(start, stop)]),
                admin=True, timeout=60.0)

    async def add_citizens(self, indices: range) -> None:
        """Citizens propose `indices` (platform role: PENDING), then the admin accepts each;
        from then on they are in `accepted`."""
        if not indices:
            return
        reply = await self.gateway.call("AddProposals", gateway_pb2.AddProposalsRequest(
            cause_id=self.cause_id, proposals=[self._new(k) for k in indices]),
            self.counters, timeout=60.0)
        pending = sum(p.status == types_pb2.PROPOSAL_STATUS_PENDING for p in reply.proposals)
        self.proposals_added += len(indices)
        # Counted from before the first acceptance: an upper bound of each one's wait.
        self.proposal_votes.accepted(indices)
        await asyncio.gather(*(self.gateway.call(
            "ModerateProposal", gateway_pb2.ModerateProposalRequest(
                cause_id=self.cause_id, proposal_id=self.population.proposal_id(k),
                status=types_pb2.PROPOSAL_STATUS_ACCEPTED), self.counters, admin=True)
            for k in indices))
        self.proposals_accepted += len(indices)
        self.accepted = np.union1d(self.accepted, np.asarray(indices, dtype=np.int64))
        self.note(f"citizens added {len(indices)} proposals ({pending} pending); "
                  "the admin accepted them")

    def attributes_of(self, voter: int) -> dict[str, str]:
        """The attributes voter number `voter` declares with its votes ({} when the cause
        declares none)."""
        return {f"a{k}": f"v{v}" for k, v in enumerate(self._voter_values[voter].tolist())}

    def _new(self, k: int) -> types_pb2.NewProposal:
        return types_pb2.NewProposal(proposal_id=self.population.proposal_id(k),
                                     text=self.population.text(k),
                                     author_id="organisateurs" if k < self.population.n_seed
                                     else f"citoyen-{k}")

    # -- watching ------------------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> None:
        """Read the ranking's votes_counted every POLL_S until `stop`: ticks, freshness."""
        request = gateway_pb2.GetRankingRequest(cause_id=self.cause_id, limit=1)
        while not stop.is_set():
            await self.poll(request)
            try:
                await asyncio.wait_for(stop.wait(), POLL_S)
            except TimeoutError:
                pass

    async def poll(self, request: gateway_pb2.GetRankingRequest | None = None) -> int:
        """One read of votes_counted; returns it (the last known value if the read failed)."""
        request = request or gateway_pb2.GetRankingRequest(cause_id=self.cause_id, limit=1)
        try:
            reply = await self.gateway.call("GetRanking", request, timeout=5.0)
        except grpc.aio.AioRpcError:
            return self.counted
        now = self.elapsed()
        self.counted = max(self.counted, int(reply.votes_counted))
        c = self.counters
        c.ticks.append(Tick(round(now, 4), c.sent, c.ok, self.counted))
        c.freshness.observe(now, self.counted)
        return self.counted

    async def sample_accuracy(self, stop: asyncio.Event, every_s: float) -> None:
        """Compare the full ranking with the truth every `every_s` (longer when reading it
        takes long, so that this never loads the cluster much) until `stop`."""
        while not stop.is_set():
            started = time.monotonic()
            await self.measure_accuracy()
            pause = max(every_s, 10 * (time.monotonic() - started))
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass

    async def read_ranking(self) -> tuple[int, list[types_pb2.RankedProposal]] | None:
        """Every page of the latest ranking: (votes_counted, entries in rank order); None
        when a read failed. Pages may come from successive fits; votes_counted is the first
        page's."""
        entries: list[types_pb2.RankedProposal] = []
        counted = None
        try:
            while True:
                reply = await self.gateway.call("GetRanking", gateway_pb2.GetRankingRequest(
                    cause_id=self.cause_id, offset=len(entries), limit=_PAGE), timeout=30.0)
                if counted is None:
                    counted = int(reply.votes_counted)
                entries.extend(reply.entries)
                if len(reply.entries) < _PAGE or len(entries) >= reply.total_proposals:
                    break
        except grpc.aio.AioRpcError as exc:
            logger.warning("ranking read failed", extra={"error": exc.code().name})
            return None
        return counted or 0, entries

    async def measure_accuracy(self) -> AccuracyPoint | None:
        """Read every page of the ranking and compare it with the hidden truth."""
        ranking = await self.read_ranking()
        if ranking is None:
            return None
        counted, entries = ranking
        point = compare(
            round(self.elapsed(), 3), counted,
            np.array([e.ability for e in entries]), np.array([e.ci_low for e in entries]),
            np.array([e.ci_high for e in entries]),
            self.population.truth([e.proposal_id for e in entries]))
        self.accuracy.append(point)
        return point

    # -- the end -------------------------------------------------------------------------

    async def catch_up(self, timeout_s: float) -> bool:
        """Wait until the ranking counts every vote the log holds (lag 0) and at least every
        vote this mode got OK for; False if `timeout_s` passed first."""
        deadline = time.monotonic() + timeout_s
        while True:
            counted = await self.poll()
            if counted >= self.counters.ok:
                stats = await self.stats()
                if stats is not None and stats.votes_counted >= stats.votes_accepted:
                    return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_S)

    async def stats(self) -> gateway_pb2.GetCauseStatsResponse | None:
        try:
            reply: gateway_pb2.GetCauseStatsResponse = await self.gateway.call(
                "GetCauseStats", gateway_pb2.GetCauseStatsRequest(cause_id=self.cause_id))
        except grpc.aio.AioRpcError:
            return None
        return reply

    def all_counted_at(self) -> float | None:
        """Seconds from the start until the ranking first counted every OK vote."""
        return next((tick.t for tick in self.counters.ticks
                     if tick.counted >= self.counters.ok), None)

    async def audit(self) -> dict[str, Any]:
        """accepted == counted == the votes this mode got OK for: nothing lost, nothing
        counted twice. Votes of unknown outcome (no answer after retries) may each be in the
        log or not, so with some the check is ok <= accepted <= ok + unknown."""
        stats = await self.stats()
        c = self.counters
        if stats is None:
            return {"passed": False, "detail": "GetCauseStats failed", "ok_votes": c.ok}
        accepted, counted = int(stats.votes_accepted), int(stats.votes_counted)
        within = accepted == c.ok if not c.unknown else c.ok <= accepted <= c.ok + c.unknown
        passed = accepted == counted and within
        if passed:
            detail = f"accepted == counted == OK votes == {accepted:,}"
        else:
            detail = (f"MISMATCH: accepted {accepted:,}, counted {counted:,}, OK votes "
                      f"{c.ok:,}, unknown outcome {c.unknown:,}")
        return {"passed": passed, "detail": detail, "ok_votes": c.ok,
                "unknown_outcome": c.unknown, "votes_accepted": accepted,
                "votes_counted": counted, "lag": int(stats.lag),
                "votes_untrusted": int(stats.votes_untrusted),
                "votes_excluded": int(stats.votes_excluded),
                "duplicates": int(stats.duplicates), "votes_rejected": int(stats.votes_rejected),
                "rejected_by_reason": dict(stats.rejected_by_reason),
                "ties": int(stats.ties), "skips": int(stats.skips), "voters": int(stats.voters),
                "proposals_accepted": int(stats.proposals_accepted),
                "proposals_pending": int(stats.proposals_pending)}
