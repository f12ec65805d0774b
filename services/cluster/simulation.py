"""A simulated consultation played against the gateway exactly as a platform would: the
organisers open a cause, voters ask for pairs and vote, a partner imports a batch, citizens
propose and the moderator decides. Safe to call from several threads at once."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np

from cluster.scenario import Proposal, Scenario
from cluster.tokens import Tokens
from cluster.voter_model import VoterModel
from pairwise.submitted_vote import SKIP_REASON_NAMES
from pairwise.v1 import gateway_pb2, gateway_pb2_grpc, types_pb2

logger = logging.getLogger(__name__)

CHOICE = {"left": types_pb2.CHOICE_LEFT, "right": types_pb2.CHOICE_RIGHT,
          "tie": types_pb2.CHOICE_TIE, "skip": types_pb2.CHOICE_SKIP}
RPC_TIMEOUT_S = 10.0


@dataclass
class Tally:
    """What the simulated platform did and what came back (thread-safe increments)."""

    votes: int = 0
    ties: int = 0
    skips: int = 0
    imported: int = 0
    voters: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def error(self, code: grpc.StatusCode) -> None:
        with self._lock:
            self.errors[code.name] += 1


class Consultation:
    """One cause on the cluster, driven through `pairwise.v1.GatewayService`."""

    def __init__(self, channel: grpc.Channel, tokens: Tokens, scenario: Scenario,
                 cause_id: str, model: VoterModel | None = None,
                 reading_time_s: tuple[float, float] = (0.4, 1.2)) -> None:
        self.stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        self.admin = (("authorization", f"Bearer {tokens.admin}"),)
        self.platform = (("authorization", f"Bearer {tokens.platform}"),)
        self.scenario = scenario
        self.cause_id = cause_id
        self.model = model or VoterModel()
        # Seconds a voter looks at a pair before answering, uniform in this range.
        self.reading_time_s = reading_time_s
        self.truth = scenario.truth()
        self.tally = Tally()
        self._voter_ids = itertools.count(1)
        self._voter_lock = threading.Lock()
        self._arrivals_began: float | None = None

    def open(self) -> None:
        """Create the cause (moderated) and add the organisers' proposals."""
        self.stub.CreateCause(gateway_pb2.CreateCauseRequest(
            cause_id=self.cause_id, title=self.scenario.title, auto_accept_proposals=False),
            metadata=self.admin, timeout=RPC_TIMEOUT_S)
        self.stub.AddProposals(gateway_pb2.AddProposalsRequest(
            cause_id=self.cause_id, proposals=[_new(p) for p in self.scenario.seed]),
            metadata=self.admin, timeout=RPC_TIMEOUT_S)

    def vote_until(self, stop: threading.Event, seed: int, voters: int,
                   arrival_interval_s: float) -> None:
        """Voters arrive one every `arrival_interval_s` seconds (over all threads), each
        casting 5-20 votes, until `stop` is set or `voters` came. Run it in several threads:
        each serves the next voter to arrive."""
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            with self._voter_lock:
                number = next(self._voter_ids)
                if self._arrivals_began is None:
                    self._arrivals_began = time.monotonic()
                began = self._arrivals_began
            if number > voters:
                return
            if stop.wait(max(0.0, began + (number - 1) * arrival_interval_s - time.monotonic())):
                return
            self.vote_as(f"voter-{number:04d}", int(rng.integers(5, 21)), rng, stop)
            self.tally.add(voters=1)

    def vote_as(self, voter_id: str, n_votes: int, rng: np.random.Generator,
                stop: threading.Event) -> None:
        """NextPair -> SubmitVote, `n_votes` times; stops early when no pair is left or the
        voter hit the rate limit."""
        for number in range(n_votes):
            if stop.is_set():
                return
            try:
                pair = self.stub.NextPair(gateway_pb2.NextPairRequest(
                    cause_id=self.cause_id, voter_id=voter_id),
                    metadata=self.platform, timeout=RPC_TIMEOUT_S)
                decision = self.model.choose(self.truth[pair.left.proposal_id],
                                             self.truth[pair.right.proposal_id], rng)
                # Reading time: ingest flags votes sent sooner than INGEST_MIN_VIEW_MS
                # (300 ms) after the prompt as suspicious; real voters take longer.
                if stop.wait(float(rng.uniform(*self.reading_time_s))):
                    return
                request = gateway_pb2.SubmitVoteRequest(
                    cause_id=self.cause_id, voter_id=voter_id, prompt_token=pair.prompt_token,
                    choice=CHOICE[decision.answer], skip_reason=decision.reason,
                    skip_reason_code=SKIP_REASON_NAMES.get(decision.reason_code,
                                                            "SKIP_REASON_UNSPECIFIED"),
                    idempotency_key=f"{voter_id}-{number}")
                self._submit(request)
            except grpc.RpcError as exc:
                code = exc.code()  # type: ignore[attr-defined]
                self.tally.error(code)
                if code in (grpc.StatusCode.FAILED_PRECONDITION,
                            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.NOT_FOUND):
                    return  # no pair left for this voter, or rate-limited: next voter
                continue
            self.tally.add(votes=1, ties=int(decision.answer == "tie"),
                           skips=int(decision.answer == "skip"))

    def _submit(self, request: gateway_pb2.SubmitVoteRequest) -> None:
        # One retry on UNAVAILABLE (a service restarting): the idempotency key makes the
        # replay safe, and it returns the original receipt if the first try was recorded.
        try:
            self.stub.SubmitVote(request, metadata=self.platform, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                raise
            self.stub.SubmitVote(request, metadata=self.platform, timeout=RPC_TIMEOUT_S)

    def import_history(self, n_votes: int, seed: int,
                       batch: int = 500) -> gateway_pb2.ImportVotesResponse:
        """A partner platform's already-decided votes on the seed proposals, streamed in
        batches through ImportVotes (admin)."""
        rng = np.random.default_rng(seed)
        ids = [p.proposal_id for p in self.scenario.seed]
        votes = []
        for number in range(n_votes):
            first, second = rng.choice(len(ids), size=2, replace=False)
            outcome = self.model.decided(ids[first], ids[second], self.truth, rng)
            if outcome is None:
                continue
            winner, loser, tie = outcome
            votes.append(types_pb2.ImportedVote(
                vote_id=f"{self.cause_id}:atelier:{number}", cause_id=self.cause_id,
                voter_id=f"atelier-{number % 97}", winner_id=winner, loser_id=loser, tie=tie))

        def requests() -> Iterator[gateway_pb2.ImportVotesRequest]:
            for start in range(0, len(votes), batch):
                yield gateway_pb2.ImportVotesRequest(votes=votes[start:start + batch])

        reply: gateway_pb2.ImportVotesResponse = self.stub.ImportVotes(
            requests(), metadata=self.admin, timeout=60.0)
        self.tally.add(imported=int(reply.accepted))
        return reply

    def propose(self) -> list[types_pb2.Proposal]:
        """Citizens' proposals, added with the platform role: they wait for moderation."""
        reply = self.stub.AddProposals(gateway_pb2.AddProposalsRequest(
            cause_id=self.cause_id, proposals=[_new(p) for p in self.scenario.citizens]),
            metadata=self.platform, timeout=RPC_TIMEOUT_S)
        return list(reply.proposals)

    def moderate(self, proposal: Proposal, accept: bool, reason: str = "") -> None:
        status = (types_pb2.PROPOSAL_STATUS_ACCEPTED if accept
                  else types_pb2.PROPOSAL_STATUS_REJECTED)
        self.stub.ModerateProposal(gateway_pb2.ModerateProposalRequest(
            cause_id=self.cause_id, proposal_id=proposal.proposal_id, status=status,
            reason=reason), metadata=self.admin, timeout=RPC_TIMEOUT_S)

    def ranking(self, limit: int) -> gateway_pb2.GetRankingResponse:
        reply: gateway_pb2.GetRankingResponse = self.stub.GetRanking(
            gateway_pb2.GetRankingRequest(cause_id=self.cause_id, limit=limit),
            metadata=self.platform, timeout=RPC_TIMEOUT_S)
        return reply

    def stats(self) -> gateway_pb2.GetCauseStatsResponse:
        reply: gateway_pb2.GetCauseStatsResponse = self.stub.GetCauseStats(
            gateway_pb2.GetCauseStatsRequest(cause_id=self.cause_id),
            metadata=self.platform, timeout=RPC_TIMEOUT_S)
        return reply


def _new(proposal: Proposal) -> types_pb2.NewProposal:
    return types_pb2.NewProposal(proposal_id=proposal.proposal_id, text=proposal.text,
                                 author_id=proposal.author_id)
