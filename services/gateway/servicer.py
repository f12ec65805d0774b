"""GatewayService: translates public messages to catalog, pair-selection and internal calls.

Auth and rate limits happen before these methods run (auth.py, rate_limit.py); domain errors
raised here become statuses in pairwise.grpc_server, and errors of internal calls pass
through with their own status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from gateway import default_view
from gateway.archive import Archives
from gateway.auth import Role, current_principal, current_role
from gateway.catalog import (
    DEFAULT_NEWCOMER_VOTES,
    DEFAULT_TOP_K,
    Cause,
    PairSelection,
    Proposal,
    Status,
    check_moderation,
    check_new_proposals,
    check_title,
    check_top_k,
    initial_status,
)
from gateway.catalog_store import CatalogStore
from gateway.paging import check_page
from gateway.pair_selection import PairSelector
from gateway.ranking_watches import (
    RankingWatches,
    WatchedSegment,
    WatchedView,
    add_view,
    weighted_attributes,
)
from gateway.rate_limit import over_limit
from gateway.upstreams import Upstreams
from gateway.vote_export import VoteExport, archived_columns, archived_entries, check_entry_id
from gateway.vote_forwarding import VoteForwarder
from pairwise import (
    cause_life,
    exclusions,
    prompt_token,
    submitted_vote,
    voter_attributes,
    voter_flags,
)
from pairwise.declared_attributes import DeclaredAttributes
from pairwise.errors import FailedPrecondition, InvalidArgument
from pairwise.grpc_server import status_for
from pairwise.ids import VOTER_ID_PATTERN, check_id, id_or_new
from pairwise.v1 import (
    gateway_pb2,
    gateway_pb2_grpc,
    ingest_pb2,
    ranker_pb2,
    ranker_pb2_grpc,
    types_pb2,
)

logger = logging.getLogger(__name__)

MAX_IMPORT_ERRORS = 1000
DEFAULT_RANKING_LIMIT = 100
DEFAULT_WATCH_LIMIT = 20
DEFAULT_PROPOSALS_LIMIT = 100
# Proposals per ExportVotes catalog message (as ListProposals' largest page).
EXPORT_PROPOSALS_PER_MESSAGE = 1000
DEFAULT_EXCLUSIONS_LIMIT = 100
DEFAULT_CAUSES_LIMIT = 100
# grpc.aio reports "no deadline" as None or as an effectively infinite number of seconds.
_NO_DEADLINE_S = 1e9

_STATUS_TO_PROTO = {
    Status.PENDING: types_pb2.PROPOSAL_STATUS_PENDING,
    Status.ACCEPTED: types_pb2.PROPOSAL_STATUS_ACCEPTED,
    Status.REJECTED: types_pb2.PROPOSAL_STATUS_REJECTED,
}
_PROTO_TO_STATUS: dict[int, Status] = {
    int(proto): status for status, proto in _STATUS_TO_PROTO.items()}
_SELECTION_TO_PROTO = {
    PairSelection.UNIFORM: types_pb2.PAIR_SELECTION_UNIFORM,
    PairSelection.ADAPTIVE: types_pb2.PAIR_SELECTION_ADAPTIVE,
}
_PROTO_TO_SELECTION: dict[int, PairSelection] = {
    int(proto): selection for selection, proto in _SELECTION_TO_PROTO.items()}
_STATE_TO_PROTO = {
    cause_life.State.SCHEDULED: types_pb2.CAUSE_STATE_SCHEDULED,
    cause_life.State.OPEN: types_pb2.CAUSE_STATE_OPEN,
    cause_life.State.CLOSED: types_pb2.CAUSE_STATE_CLOSED,
    cause_life.State.ARCHIVED: types_pb2.CAUSE_STATE_ARCHIVED,
}
# How often a watch of a cause with no new fit looks whether the cause closed (seconds):
# its last ranking may be the final one, and the watch then ends.
WATCH_LIFE_POLL_S = 1.0
_WATCHED_CAUSES_MAX = 10_000


def _cause_message(cause: Cause, life: cause_life.Life | None = None) -> types_pb2.Cause:
    message = types_pb2.Cause(cause_id=cause.cause_id, title=cause.title,
                              auto_accept_proposals=cause.auto_accept,
                              created_at_ms=cause.created_at_ms,
                              proposals_accepted=cause.accepted,
                              proposals_pending=cause.pending,
                              proposals_rejected=cause.rejected,
                              pair_selection=_SELECTION_TO_PROTO[cause.pair_selection],
                              top_k=cause.top_k,
                              voter_attributes=[
                                  types_pb2.VoterAttribute(key=key, values=values)
                                  for key, values in cause.voter_attributes.items()],
                              default_view=default_view.TO_PROTO[cause.default_view],
                              default_view_attribute=cause.default_view_attribute)
    if life is not None:
        message.state = _STATE_TO_PROTO[life.state]
        message.opens_at_ms = life.opens_at_ms
        message.closes_at_ms = life.closes_at_ms
        if life.closed:
            message.closed_at_ms = life.closed_at_ms
            message.votes_final = life.votes
        message.archived_at_ms = life.archived_at_ms
        message.archive = life.archive
    return message


def _margins_messages(margins: voter_attributes.Margins) -> list[gateway_pb2.AttributeMargins]:
    return [gateway_pb2.AttributeMargins(key=key, shares=shares)
            for key, shares in margins.items()]


def _state_proto(name: str) -> types_pb2.CauseState:
    """A state as the audit trail records it, in the contract (UNSPECIFIED if unknown)."""
    state = cause_life.State.__members__.get(name)
    return types_pb2.CAUSE_STATE_UNSPECIFIED if state is None else _STATE_TO_PROTO[state]


def _pair_selection(value: int) -> PairSelection | None:
    """The strategy a request names; None for PAIR_SELECTION_UNSPECIFIED (not given)."""
    if value == types_pb2.PAIR_SELECTION_UNSPECIFIED:
        return None
    if value not in _PROTO_TO_SELECTION:
        raise InvalidArgument("pair_selection", f"unknown pair selection {value}")
    return _PROTO_TO_SELECTION[value]


def _proposal_message(cause_id: str, proposal: Proposal) -> types_pb2.Proposal:
    return types_pb2.Proposal(proposal_id=proposal.proposal_id, cause_id=cause_id,
                              text=proposal.text, author_id=proposal.author_id,
                              status=_STATUS_TO_PROTO[proposal.status],
                              moderation_reason=proposal.reason,
                              created_at_ms=proposal.created_at_ms)


def _status_filter(value: int) -> Status | None:
    if value == types_pb2.PROPOSAL_STATUS_UNSPECIFIED:
        return None
    if value not in _PROTO_TO_STATUS:
        raise InvalidArgument("status", f"unknown proposal status {value}")
    return _PROTO_TO_STATUS[value]


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    """Every GatewayService RPC.

    `internal_timeout_s` is the deadline of internal calls when the client sent none;
    otherwise each internal call gets the client's remaining time. SubmitVotes reach ingest
    through `votes` (grouped with concurrent ones). ImportVotes forwards at most
    `import_chunk` votes per RecordVotes call. A cause created without a strategy gets
    `pair_selection`; every new cause stores `newcomer_votes`. Exports read the log through
    `exports`.
    """

    def __init__(self, *, catalog: CatalogStore, pairs: PairSelector, upstreams: Upstreams,
                 watches: RankingWatches, votes: VoteForwarder, exports: VoteExport,
                 exclusion_store: exclusions.ExclusionStore, life: cause_life.LifeStore,
                 archives: Archives, attributes: DeclaredAttributes,
                 flag_store: voter_flags.VoterFlagStore,
                 token_keys: prompt_token.TokenKeys, prompt_ttl_s: float,
                 internal_timeout_s: float, import_chunk: int,
                 pair_selection: PairSelection = PairSelection.UNIFORM,
                 newcomer_votes: int = DEFAULT_NEWCOMER_VOTES,
                 clock: Callable[[], float] = time.time) -> None:
        self._catalog = catalog
        self._default_selection = pair_selection
        self._newcomer_votes = newcomer_votes
        self._pairs = pairs
        self._upstreams = upstreams
        self._watches = watches
        self._votes = votes
        self._exports = exports
        # One pseudonymised export at a time per gateway, the others waiting their turn:
        # each remembers up to ~150 MB of pseudonyms (gateway.pseudonyms.CACHE_MAX), and two
        # at once could take a gateway past its memory limit while it serves voters.
        self._pseudonymising = asyncio.Semaphore(1)
        self._exclusions = exclusion_store
        self._attributes = attributes
        self._life = life
        self._archives = archives
        self._watched: dict[str, tuple[float, cause_life.Life]] = {}
        self._flags = flag_store
        self._token_keys = token_keys
        self._prompt_ttl_ms = round(prompt_ttl_s * 1000)
        self._internal_timeout_s = internal_timeout_s
        self._import_chunk = max(1, import_chunk)
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _timeout(self, context: grpc.aio.ServicerContext) -> float:
        """Seconds left for an internal call: the client's remaining time, else the default."""
        remaining = context.time_remaining()
        if remaining is None or remaining > _NO_DEADLINE_S:
            return self._internal_timeout_s
        return max(remaining, 0.0)

    async def CreateCause(self, request, context):  # type: ignore[no-untyped-def]
        opens_at_ms, closes_at_ms = cause_life.check_schedule(request.opens_at_ms,
                                                              request.closes_at_ms)
        if closes_at_ms and closes_at_ms <= self._now_ms():
            raise InvalidArgument("closes_at_ms", f"{closes_at_ms} is not in the future")
        # No attribute is declared at creation: RAW, or REPRESENTATIVE without an attribute.
        view, view_attribute = default_view.check_default_view(
            request.default_view, request.default_view_attribute, ())
        cause = Cause(cause_id=id_or_new("cause_id", request.cause_id),
                      title=check_title(request.title),
                      auto_accept=request.auto_accept_proposals, created_at_ms=self._now_ms(),
                      pair_selection=(_pair_selection(request.pair_selection)
                                      or self._default_selection),
                      top_k=check_top_k(request.top_k) or DEFAULT_TOP_K,
                      newcomer_votes=self._newcomer_votes)
        await self._catalog.create_cause(cause, opens_at_ms=opens_at_ms,
                                         closes_at_ms=closes_at_ms)
        if view != default_view.RAW:
            await self._life.set_default_view(cause.cause_id, view, view_attribute,
                                              reason="chosen at creation", by=self._by(""))
            cause = await self._catalog.get_cause(cause.cause_id)
        logger.info("cause created", extra={"cause_id": cause.cause_id,
                                             "auto_accept": cause.auto_accept,
                                             "pair_selection": str(cause.pair_selection),
                                             "top_k": cause.top_k, "opens_at_ms": opens_at_ms,
                                             "closes_at_ms": closes_at_ms})
        return gateway_pb2.CreateCauseResponse(
            cause=_cause_message(cause, await self._life.read(cause.cause_id)))

    async def UpdatePairSelection(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        cause = await self._catalog.update_pair_selection(
            cause_id, _pair_selection(request.pair_selection), check_top_k(request.top_k))
        logger.info("pair selection updated", extra={
            "cause_id": cause_id, "pair_selection": str(cause.pair_selection),
            "top_k": cause.top_k})
        return gateway_pb2.UpdatePairSelectionResponse(
            cause=_cause_message(cause, await self._life.read(cause_id)))

    async def SetDefaultRankingView(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        default_view.check_syntax(request.view, request.view_attribute)
        reason = cause_life.check_reason(request.reason, required=False)
        by = self._by(request.requested_by)
        declared, _ = await self._catalog.population_margins(cause_id)
        view, view_attribute = default_view.check_default_view(
            request.view, request.view_attribute, declared.keys)
        await self._life.set_default_view(cause_id, view, view_attribute, reason=reason, by=by)
        logger.info("default ranking view chosen", extra={
            "cause_id": cause_id, "view": view, "view_attribute": view_attribute})
        return gateway_pb2.SetDefaultRankingViewResponse(
            cause=await self._cause_with_life(cause_id))

    async def GetCause(self, request, context):  # type: ignore[no-untyped-def]
        return gateway_pb2.GetCauseResponse(
            cause=await self._cause_with_life(check_id("cause_id", request.cause_id)))

    async def _cause_with_life(self, cause_id: str) -> types_pb2.Cause:
        cause = await self._catalog.get_cause(cause_id)
        return _cause_message(cause, await self._life.read(cause_id))

    async def AddProposals(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        new = check_new_proposals(
            [(p.proposal_id, p.text, p.author_id) for p in request.proposals])
        cause = await self._catalog.get_cause(cause_id)
        status = initial_status(current_role.get() is Role.ADMIN, cause.auto_accept)
        added = await self._catalog.add_proposals(cause_id, new, status, self._now_ms())
        logger.info("proposals added", extra={"cause_id": cause_id, "count": len(added),
                                              "status": str(status)})
        return gateway_pb2.AddProposalsResponse(
            proposals=[_proposal_message(cause_id, p) for p in added])

    async def ModerateProposal(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        proposal_id = check_id("proposal_id", request.proposal_id)
        status, reason = check_moderation(_PROTO_TO_STATUS.get(request.status), request.reason)
        proposal = await self._catalog.moderate(cause_id, proposal_id, status, reason)
        logger.info("proposal moderated", extra={"cause_id": cause_id,
                                                 "proposal_id": proposal_id,
                                                 "status": str(status)})
        return gateway_pb2.ModerateProposalResponse(
            proposal=_proposal_message(cause_id, proposal))

    async def ListProposals(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        status = _status_filter(request.status)
        offset, limit = check_page(request.offset, request.limit,
                                   default_limit=DEFAULT_PROPOSALS_LIMIT)
        proposals, total = await self._catalog.list_proposals(cause_id, status, offset, limit)
        return gateway_pb2.ListProposalsResponse(
            proposals=[_proposal_message(cause_id, p) for p in proposals], total=total)

    async def NextPair(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        voter_id = check_id("voter_id", request.voter_id, pattern=VOTER_ID_PATTERN)
        # Checked now, so that a platform learns of a wrong attribute before its voter votes.
        await self._attributes.encode(cause_id, request.attributes)
        return await self._prompt(cause_id, voter_id)

    async def SubmitVote(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        voter_id = check_id("voter_id", request.voter_id, pattern=VOTER_ID_PATTERN)
        # Refused by name before the cause is looked up, and before concurrent votes travel
        # to ingest together.
        submitted_vote.check_fields(
            choice=submitted_vote.CHOICE_NAMES.get(request.choice, ""),
            skip_reason=request.skip_reason, idempotency_key=request.idempotency_key,
            prompt_token_wire=request.prompt_token, skip_reason_code=request.skip_reason_code)
        await self._catalog.require_cause(cause_id)
        await self._attributes.encode(cause_id, request.attributes)
        reply = await self._votes.record(
            ingest_pb2.RecordVoteRequest(
                cause_id=cause_id, voter_id=voter_id,
                prompt_token=request.prompt_token, choice=request.choice,
                skip_reason=request.skip_reason, idempotency_key=request.idempotency_key,
                attributes=request.attributes, skip_reason_code=request.skip_reason_code),
            timeout=self._timeout(context))
        response = gateway_pb2.SubmitVoteResponse(vote_id=reply.vote_id,
                                                  duplicate=reply.duplicate)
        if not request.want_next_pair:
            return response
        # The vote is recorded: from here on nothing may fail the call, or the platform
        # would take a recorded vote for a lost one; whatever keeps the next pair from being
        # chosen (none left, the rate limit, Redis down) is said in next_pair_unavailable,
        # and NextPair remains the way to ask again. A replay gets a next pair too (its first
        # answer, and the pair in it, may be what was lost).
        limited = over_limit.get()
        if limited is not None:
            response.next_pair_unavailable = str(limited)
            return response
        try:
            response.next_pair.CopyFrom(await self._prompt(cause_id, voter_id))
        except Exception as exc:
            mapped = status_for(exc)
            if mapped is None:
                logger.exception("next pair failed after a recorded vote",
                                 extra={"cause_id": cause_id})
            response.next_pair_unavailable = (
                mapped[1] if mapped else f"internal error: {type(exc).__name__}")
        return response

    async def _prompt(self, cause_id: str, voter_id: str) -> gateway_pb2.NextPairResponse:
        """The voter's next pair, now recorded as shown, with a prompt token for its vote.

        Raises NotFound (unknown cause) or FailedPrecondition (no pair left to show).
        """
        left, right = await self._pairs.next_pair(cause_id, voter_id)
        wire, token = prompt_token.issue(self._token_keys, cause_id, voter_id,
                                         left.proposal_id, right.proposal_id,
                                         self._now_ms(), self._prompt_ttl_ms)
        return gateway_pb2.NextPairResponse(
            prompt_token=wire, left=_proposal_message(cause_id, left),
            right=_proposal_message(cause_id, right), expires_at_ms=token.expires_ms)

    async def ImportVotes(self, request_iterator, context):  # type: ignore[no-untyped-def]
        accepted = duplicates = rejected = 0
        errors: list[types_pb2.VoteError] = []
        next_index = 0
        async for batch in request_iterator:
            votes = batch.votes
            for start in range(0, len(votes), self._import_chunk):
                chunk = votes[start:start + self._import_chunk]
                reply = await self._upstreams.ingest.RecordVotes(
                    ingest_pb2.RecordVotesRequest(votes=chunk, first_index=next_index),
                    timeout=self._timeout(context))
                next_index += len(chunk)
                accepted += reply.accepted
                duplicates += reply.duplicates
                rejected += reply.rejected
                errors.extend(reply.errors[:MAX_IMPORT_ERRORS - len(errors)])
        logger.info("votes imported", extra={"votes": next_index, "accepted": accepted,
                                             "duplicates": duplicates, "rejected": rejected})
        return gateway_pb2.ImportVotesResponse(accepted=accepted, duplicates=duplicates,
                                               rejected=rejected, errors=errors)

    async def GetRanking(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        offset, limit = check_page(request.offset, request.limit,
                                   default_limit=DEFAULT_RANKING_LIMIT)
        life = await self._life.read(cause_id)
        segment = await self._segment(cause_id, request)
        view = await self._view(cause_id, request, segment is not None, life)
        ranking = await self._ranking(cause_id, life, offset, limit, self._timeout(context),
                                      segment, view)
        view_attribute = "" if view is None else view[1]
        return gateway_pb2.GetRankingResponse(
            cause_id=cause_id, votes_counted=ranking.votes_counted, entries=ranking.entries,
            total_proposals=ranking.total_proposals, fitted_at_ms=ranking.fitted_at_ms,
            prior_strength=ranking.prior_strength, votes_untrusted=ranking.votes_untrusted,
            votes_excluded=ranking.votes_excluded,
            exclusions_version=ranking.exclusions_version,
            segment=None if segment is None else types_pb2.Segment(key=segment[0],
                                                                   value=segment[1]),
            segment_votes=ranking.segment_votes,
            segment_without_votes=ranking.segment_without_votes,
            cause_state=_STATE_TO_PROTO[life.state],
            final=life.is_final(ranking.votes_counted),
            view=ranking.view, view_attribute=view_attribute, weighting=ranking.weighting,
            effective_votes=ranking.effective_votes, trimmed_votes=ranking.trimmed_votes,
            margin_gap=ranking.margin_gap,
            weighted_attributes=weighted_attributes(view, ranking))

    async def _view(self, cause_id: str,
                    request: gateway_pb2.GetRankingRequest | gateway_pb2.WatchRankingRequest,
                    with_segment: bool, life: cause_life.Life) -> WatchedView | None:
        """The view `request` asks for (`WatchedView`), or when it leaves it unset the
        cause's default view; None for the raw view. InvalidArgument for an unknown view, an
        undeclared attribute or a view with a segment; FailedPrecondition when no attribute
        is declared, or none has margins (the one named, when it is named) for a
        representative view, asked for or by default. A segment's read, and an archived
        cause's (only its raw final ranking is kept), leave the default aside."""
        view, key = request.view, request.view_attribute
        if view == types_pb2.RANKING_VIEW_UNSPECIFIED:
            if with_segment or life.state is cause_life.State.ARCHIVED:
                return None
            name, key = await self._catalog.default_view(cause_id)
            view = default_view.TO_PROTO[name]
        if view == types_pb2.RANKING_VIEW_RAW:
            return None
        if view not in (types_pb2.RANKING_VIEW_REPRESENTATIVE, types_pb2.RANKING_VIEW_CONSENSUS):
            raise InvalidArgument("view", f"unknown view {view}")
        if with_segment:
            raise InvalidArgument("view", "a view is of every voter: leave segment unset")
        declared, margins = await self._catalog.population_margins(cause_id)
        if not declared.keys:
            raise FailedPrecondition("this cause declares no voter attribute "
                                     "(SetVoterAttributes)")
        if key and key not in declared.keys:
            raise InvalidArgument("view_attribute", f"unknown attribute {key[:40]!r}: this "
                                  f"cause declares {', '.join(declared.keys) or 'none'}")
        if view == types_pb2.RANKING_VIEW_REPRESENTATIVE:
            # Weighted to every attribute with margins, or to the one named alone (what a
            # representative view with an attribute has always meant).
            weighted = tuple(
                (position, name, tuple(margins[name].get(value, 0.0) for value in values))
                for position, (name, values) in enumerate(declared.items())
                if margins.get(name) and name == (key or name))
            if not weighted:
                raise FailedPrecondition(
                    f"attribute {key!r} has no population margins (SetPopulationMargins)"
                    if key else
                    "no declared attribute has population margins (SetPopulationMargins)")
            return (view, key, weighted[0][0], weighted) if key else (view, "", -1, weighted)
        key = key or declared.keys[0]
        return view, key, declared.keys.index(key), ()

    async def _segment(
            self, cause_id: str,
            request: gateway_pb2.GetRankingRequest | gateway_pb2.WatchRankingRequest,
    ) -> WatchedSegment | None:
        """The segment a ranking request names, with its positions; None for every voter.
        InvalidArgument when the cause does not declare it."""
        if not request.HasField("segment") or not request.segment.key:
            return None
        key, value = request.segment.key, request.segment.value
        found = (await self._attributes.get(cause_id)).position(key, value)
        if found is None:
            found = (await self._attributes.get(cause_id, max_age_s=0.1)).position(key, value)
        if found is None:
            declared = await self._attributes.get(cause_id)
            if key not in declared.keys:
                raise InvalidArgument("segment.key", f"unknown attribute {key[:40]!r}: this "
                                      f"cause declares {', '.join(declared.keys) or 'none'}")
            raise InvalidArgument("segment.value", f"attribute {key!r} has no value "
                                  f"{value[:40]!r}: allowed are "
                                  f"{', '.join(declared.values[declared.keys.index(key)])}")
        return key, value, found[0], found[1]

    async def _ranking(self, cause_id: str, life: cause_life.Life, offset: int, limit: int,
                       timeout: float, segment: WatchedSegment | None = None,
                       view: WatchedView | None = None,
                       ) -> types_pb2.Ranking:
        """One page of the served ranking (of `segment`'s votes when given; the view that
        `view` names when given): the ranker's, or the final one kept for an
        archived cause (whose segments and views are not kept)."""
        if life.state is cause_life.State.ARCHIVED:
            if segment is not None or view is not None:
                raise FailedPrecondition(f"cause {cause_id!r} is ARCHIVED: only its overall "
                                         "final ranking is kept")
            return await self._archives.final_ranking(cause_id, offset, limit)
        upstream = ranker_pb2.ReadRankingRequest(cause_id=cause_id, offset=offset, limit=limit)
        if segment is not None:
            upstream.segment.key, upstream.segment.value = segment[2], segment[3]
        if view is not None:
            add_view(upstream, view)
        reply = await self._upstreams.rankers.call(cause_id, lambda ranker: ranker.ReadRanking(
            upstream, timeout=timeout))
        return reply.ranking

    async def WatchRanking(  # type: ignore[no-untyped-def]
            self, request, context) -> AsyncIterator[gateway_pb2.WatchRankingResponse]:
        cause_id = check_id("cause_id", request.cause_id)
        _, limit = check_page(0, request.limit, default_limit=DEFAULT_WATCH_LIMIT)
        life = await self._life.read(cause_id)
        segment = await self._segment(cause_id, request)
        view = await self._view(cause_id, request, segment is not None, life)
        if life.state is cause_life.State.ARCHIVED:
            ranking = await self._ranking(cause_id, life, 0, limit, 0.0, segment, view)
            yield gateway_pb2.WatchRankingResponse(
                cause_id=cause_id, votes_counted=ranking.votes_counted,
                entries=ranking.entries, total_proposals=ranking.total_proposals,
                fitted_at_ms=ranking.fitted_at_ms, prior_strength=ranking.prior_strength,
                votes_untrusted=ranking.votes_untrusted, votes_excluded=ranking.votes_excluded,
                exclusions_version=ranking.exclusions_version,
                cause_state=types_pb2.CAUSE_STATE_ARCHIVED, final=True)
            return
        # Each update says the cause's state; the first final one ends the watch. With no
        # new fit (a cause closed once its last votes were counted fits nothing new), the
        # cause's life is looked at every WATCH_LIFE_POLL_S and the last update sent again,
        # final, once it is.
        updates = self._watches.watch(cause_id, limit, segment, view)
        following = aiter(updates)
        next_update: asyncio.Future[gateway_pb2.WatchRankingResponse] | None = None
        last: gateway_pb2.WatchRankingResponse | None = None
        try:
            while True:
                if next_update is None:
                    next_update = asyncio.ensure_future(anext(following))
                done, _ = await asyncio.wait({next_update}, timeout=WATCH_LIFE_POLL_S)
                life = await self._watched_life(cause_id)
                if done:
                    try:
                        received = next_update.result()
                    except StopAsyncIteration:
                        return
                    next_update = None
                    last = received
                elif last is None or not life.is_final(last.votes_counted):
                    continue
                update = gateway_pb2.WatchRankingResponse()
                update.CopyFrom(last)  # updates are shared by every watcher of the cause
                update.cause_state = _STATE_TO_PROTO[life.state]
                update.final = life.is_final(update.votes_counted)
                yield update
                if update.final:
                    return
        finally:
            if next_update is not None:
                # Ended inside the generator first: it cannot be closed while it runs.
                next_update.cancel()
                with contextlib.suppress(BaseException):
                    await next_update
            await updates.aclose()  # type: ignore[attr-defined]

    async def _watched_life(self, cause_id: str) -> cause_life.Life:
        """The cause's life for its watches: read at most every half WATCH_LIFE_POLL_S for
        all of them (a cause may have hundreds of watchers, each looking every second)."""
        now = time.monotonic()
        known = self._watched.get(cause_id)
        if known is not None and now - known[0] < WATCH_LIFE_POLL_S / 2:
            return known[1]
        life = await self._life.read(cause_id)
        if len(self._watched) >= _WATCHED_CAUSES_MAX:
            self._watched.clear()
        self._watched[cause_id] = (now, life)
        return life

    async def _stats_ranking(self, cause_id: str, life: cause_life.Life,
                             timeout: float) -> ranker_pb2.ReadRankingResponse:
        """The ranking's counts for GetCauseStats, with its segments' votes (none are kept
        for an archived cause)."""
        if life.state is cause_life.State.ARCHIVED:
            return ranker_pb2.ReadRankingResponse(
                ranking=await self._archives.final_ranking(cause_id, 0, 0))
        return await self._upstreams.rankers.call(cause_id, lambda ranker: ranker.ReadRanking(
            ranker_pb2.ReadRankingRequest(cause_id=cause_id, limit=0, with_segment_votes=True),
            timeout=timeout))

    async def GetCauseStats(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        cause = await self._catalog.get_cause(cause_id)
        life = await self._life.read(cause_id)
        timeout = self._timeout(context)
        # Both calls are awaited to the end so that a failure of one is never left unretrieved.
        stats, ranking = await asyncio.gather(
            self._upstreams.ingest.GetVoteStats(
                ingest_pb2.GetVoteStatsRequest(cause_id=cause_id), timeout=timeout),
            self._stats_ranking(cause_id, life, timeout),
            return_exceptions=True)
        for outcome in (stats, ranking):
            if isinstance(outcome, BaseException):
                raise outcome
        counted = ranking.ranking.votes_counted
        left_out = ranking.ranking
        segment_votes = {(s.segment.key, s.segment.value): s.votes for s in ranking.segment_votes}
        return gateway_pb2.GetCauseStatsResponse(
            votes_accepted=stats.votes_accepted, votes_counted=counted,
            lag=stats.votes_accepted - counted, duplicates=stats.duplicates,
            votes_rejected=sum(stats.rejected_by_reason.values()),
            rejected_by_reason=dict(stats.rejected_by_reason), voters=stats.voters,
            ties=stats.ties, skips=stats.skips, skip_reasons=stats.skip_reasons,
            proposals_accepted=cause.accepted, proposals_pending=cause.pending,
            proposals_rejected=cause.rejected, votes_untrusted=left_out.votes_untrusted,
            votes_excluded=left_out.votes_excluded,
            exclusions_version=left_out.exclusions_version,
            segments=[gateway_pb2.SegmentVotes(
                segment=types_pb2.Segment(key=key, value=values[v]),
                votes_counted=segment_votes.get((k, v), 0))
                for k, (key, values) in enumerate(cause.voter_attributes.items())
                for v in range(len(values))])

    async def ExportVotes(  # type: ignore[no-untyped-def]
            self, request, context) -> AsyncIterator[gateway_pb2.ExportVotesResponse]:
        cause_id = check_id("cause_id", request.cause_id)
        through = check_entry_id("through_entry_id", request.through_entry_id)
        cause = await self._catalog.get_cause(cause_id)
        life = await self._life.read(cause_id)
        snapshot = await self._exports.catalog(cause_id)
        proposals = [_proposal_message(cause_id, p) for p in snapshot.proposals]
        for start in range(0, max(len(proposals), 1), EXPORT_PROPOSALS_PER_MESSAGE):
            yield gateway_pb2.ExportVotesResponse(
                cause=_cause_message(cause) if start == 0 else None,
                catalog_version=snapshot.version,
                proposals=proposals[start:start + EXPORT_PROPOSALS_PER_MESSAGE])
        votes = 0
        async with contextlib.AsyncExitStack() as turn:
            if not request.raw_voter_ids:
                await turn.enter_async_context(self._pseudonymising)
            pseudonyms = None if request.raw_voter_ids else \
                await self._exports.pseudonyms(cause_id)
            # An archived cause's log left Redis for its archive folder: its votes come from
            # there.
            archived = life.state is cause_life.State.ARCHIVED
            proposal_ids = [p.proposal_id for p in snapshot.proposals]
            if request.vote_columns:
                columns = archived_columns(Path(life.archive), through, pseudonyms,
                                           proposal_ids) if archived else \
                    self._exports.columns(cause_id, through, pseudonyms)
                async for message in columns:
                    votes += len(message.kinds)
                    yield gateway_pb2.ExportVotesResponse(votes=message)
            else:
                log = archived_entries(Path(life.archive), through, pseudonyms,
                                       proposal_ids) if archived else \
                    self._exports.entries(cause_id, through, pseudonyms)
                async for entries in log:
                    votes += sum(len(entry.kinds) for entry in entries)
                    yield gateway_pb2.ExportVotesResponse(entries=entries)
        logger.info("votes exported", extra={"cause_id": cause_id, "votes": votes,
                                             "through_entry_id": through,
                                             "raw_voter_ids": request.raw_voter_ids,
                                             "vote_columns": request.vote_columns})

    async def ExportRanking(  # type: ignore[no-untyped-def]
            self, request, context) -> AsyncIterator[gateway_pb2.ExportRankingResponse]:
        cause_id = check_id("cause_id", request.cause_id)
        if (await self._life.read(cause_id)).state is cause_life.State.ARCHIVED:
            for page in await self._archives.pages(cause_id):
                yield gateway_pb2.ExportRankingResponse(page=page)
            return
        request_upstream = ranker_pb2.StreamRankingRequest(cause_id=cause_id)
        timeout = self._timeout(context)

        async def opened(stub: ranker_pb2_grpc.RankerServiceStub) -> tuple[Any, Any]:
            # The first page tells whether this ranker owns the cause: a cause moving between
            # rankers is retried on its new owner, as reads are (`Rankers.call`).
            pages = stub.StreamRanking(request_upstream, timeout=timeout)
            return pages, await pages.read()

        pages, reply = await self._upstreams.rankers.call(cause_id, opened)
        while reply is not grpc.aio.EOF:
            yield gateway_pb2.ExportRankingResponse(page=reply.page)
            reply = await pages.read()

    async def SetVoterAttributes(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        if len(request.attributes) > voter_attributes.MAX_KEYS:
            raise InvalidArgument("attributes", f"at most {voter_attributes.MAX_KEYS} "
                                                f"attributes, got {len(request.attributes)}")
        pairs = [(a.key, list(a.values)) for a in request.attributes]
        cause = await self._catalog.change_voter_attributes(
            cause_id, lambda current: voter_attributes.check_declaration(pairs, current))
        self._attributes.forget(cause_id)
        logger.info("voter attributes declared", extra={
            "cause_id": cause_id, "attributes": list(cause.voter_attributes.keys)})
        return gateway_pb2.SetVoterAttributesResponse(cause=_cause_message(cause))

    async def SetPopulationMargins(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        if len(request.margins) > voter_attributes.MAX_KEYS:
            raise InvalidArgument("margins", f"at most {voter_attributes.MAX_KEYS} "
                                             f"attributes, got {len(request.margins)}")
        pairs = [(m.key, dict(m.shares)) for m in request.margins]
        voter_attributes.check_margins(pairs, None)  # malformed whatever the cause declares
        margins = await self._catalog.set_population_margins(
            cause_id, lambda declaration: voter_attributes.check_margins(pairs, declaration))
        logger.info("population margins set", extra={"cause_id": cause_id,
                                                      "attributes": list(margins)})
        return gateway_pb2.SetPopulationMarginsResponse(margins=_margins_messages(margins))

    async def GetPopulationMargins(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        _, margins = await self._catalog.population_margins(cause_id)
        return gateway_pb2.GetPopulationMarginsResponse(margins=_margins_messages(margins))

    async def ExcludeVotes(self, request, context):  # type: ignore[no-untyped-def]
        change = await self._change_exclusions(exclusions.EXCLUDE, request)
        return gateway_pb2.ExcludeVotesResponse(
            voters_changed=change.voters, votes_changed=change.votes,
            exclusions_version=change.version)

    async def ReinstateVotes(self, request, context):  # type: ignore[no-untyped-def]
        change = await self._change_exclusions(exclusions.REINSTATE, request)
        return gateway_pb2.ReinstateVotesResponse(
            voters_changed=change.voters, votes_changed=change.votes,
            exclusions_version=change.version)

    async def _change_exclusions(
            self, action: str,
            request: gateway_pb2.ExcludeVotesRequest | gateway_pb2.ReinstateVotesRequest,
    ) -> exclusions.Change:
        """Exclude or reinstate what `request` names, as the calling admin."""
        cause_id = check_id("cause_id", request.cause_id)
        checked = exclusions.check_request(request.voter_ids, request.vote_ids, request.reason)
        requested_by = exclusions.check_requested_by(request.requested_by)
        by = current_principal.get() + (f" / {requested_by}" if requested_by else "")
        change = await self._exclusions.change(cause_id, action, checked, by=by,
                                               at_ms=self._now_ms())
        logger.info("exclusions changed", extra={
            "cause_id": cause_id, "action": action, "by": by, "voters": change.voters,
            "votes": change.votes, "exclusions_version": change.version})
        return change

    async def ListExclusions(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        offset, limit = check_page(request.offset, request.limit,
                                   default_limit=DEFAULT_EXCLUSIONS_LIMIT,
                                   max_limit=exclusions.MAX_PAGE)
        await self._catalog.require_cause(cause_id)
        # No cause holds more: a larger offset is past the end, whatever Redis' index range.
        listed, total, version = await self._exclusions.page(
            cause_id, min(offset, exclusions.MAX_PER_CAUSE), limit)
        return gateway_pb2.ListExclusionsResponse(
            exclusions=[gateway_pb2.Exclusion(
                voter_id=item.id if item.kind == exclusions.VOTER else "",
                vote_id=item.id if item.kind == exclusions.VOTE else "",
                reason=item.reason, excluded_by=item.by, excluded_at_ms=item.at_ms)
                for item in listed],
            total=total, exclusions_version=version)

    async def ListExclusionAudit(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        after = exclusions.check_audit_cursor(request.after)
        _, limit = check_page(0, request.limit, default_limit=DEFAULT_EXCLUSIONS_LIMIT,
                              max_limit=exclusions.MAX_PAGE)
        await self._catalog.require_cause(cause_id)
        entries = await self._exclusions.audit(cause_id, after, limit)
        return gateway_pb2.ListExclusionAuditResponse(
            entries=[gateway_pb2.ExclusionAuditEntry(
                entry_id=entry.entry_id, action=entry.action, voter_ids=entry.voter_ids,
                vote_ids=entry.vote_ids, reason=entry.reason, by=entry.by, at_ms=entry.at_ms,
                exclusions_version=entry.version)
                for entry in entries],
            next_after=entries[-1].entry_id if entries else "")

    async def CloseCause(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        by = self._by(request.requested_by)
        await self._life.close(cause_id, reason=cause_life.check_reason(
            request.reason, required=False), by=by)
        cause = await self._cause_with_life(cause_id)
        logger.info("cause closed", extra={"cause_id": cause_id, "by": by,
                                           "votes_final": cause.votes_final})
        return gateway_pb2.CloseCauseResponse(cause=cause)

    async def ReopenCause(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        by = self._by(request.requested_by)
        if request.closes_at_ms < 0:
            raise InvalidArgument("closes_at_ms", f"must be >= 0, got {request.closes_at_ms}")
        await self._life.reopen(cause_id, reason=cause_life.check_reason(
            request.reason, required=True), by=by, closes_at_ms=request.closes_at_ms)
        cause = await self._cause_with_life(cause_id)
        logger.info("cause reopened", extra={"cause_id": cause_id, "by": by,
                                             "closes_at_ms": cause.closes_at_ms})
        return gateway_pb2.ReopenCauseResponse(cause=cause)

    async def ScheduleCause(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        opens_at_ms, closes_at_ms = cause_life.check_schedule(request.opens_at_ms,
                                                              request.closes_at_ms)
        by = self._by(request.requested_by)
        await self._life.schedule(cause_id, opens_at_ms, closes_at_ms,
                                  reason=cause_life.check_reason(request.reason,
                                                                 required=False), by=by)
        cause = await self._cause_with_life(cause_id)
        logger.info("cause scheduled", extra={"cause_id": cause_id, "by": by,
                                              "opens_at_ms": opens_at_ms,
                                              "closes_at_ms": closes_at_ms})
        return gateway_pb2.ScheduleCauseResponse(cause=cause)

    async def ListCauseAudit(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        after = cause_life.check_audit_cursor(request.after)
        _, limit = check_page(0, request.limit, default_limit=DEFAULT_EXCLUSIONS_LIMIT,
                              max_limit=cause_life.MAX_PAGE)
        await self._catalog.require_cause(cause_id)
        entries = await self._life.audit(cause_id, after, limit)
        return gateway_pb2.ListCauseAuditResponse(
            entries=[gateway_pb2.CauseAuditEntry(
                entry_id=entry.entry_id, action=entry.action,
                state_before=_state_proto(entry.before),
                state_after=_state_proto(entry.after),
                reason=entry.reason, by=entry.by, at_ms=entry.at_ms, votes=entry.votes,
                opens_at_ms=entry.opens_at_ms, closes_at_ms=entry.closes_at_ms,
                default_view=default_view.TO_PROTO.get(entry.default_view, 0),
                default_view_attribute=entry.default_view_attribute)
                for entry in entries],
            next_after=entries[-1].entry_id if entries else "")

    async def ArchiveCause(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        reason = cause_life.check_reason(request.reason, required=False)
        by = self._by(request.requested_by)
        life = await self._life.read(cause_id)
        archived = await self._archives.archive(cause_id, life, reason=reason, by=by,
                                                wait_s=self._timeout(context) * 0.8)
        return gateway_pb2.ArchiveCauseResponse(
            cause=await self._cause_with_life(cause_id), votes_archived=archived.votes,
            keys_released=archived.keys_released)

    def _by(self, requested_by: str) -> str:
        """Who acts, as audit trails record it: the admin token's id, and the name the
        request gave."""
        name = cause_life.check_requested_by(requested_by)
        return current_principal.get() + (f" / {name}" if name else "")
    async def ListFlaggedVoters(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        offset, limit = check_page(request.offset, request.limit,
                                   default_limit=DEFAULT_EXCLUSIONS_LIMIT,
                                   max_limit=voter_flags.MAX_PAGE)
        await self._catalog.require_cause(cause_id)
        listed, total = await self._flags.page(
            cause_id, min(offset, voter_flags.MAX_PER_CAUSE), limit)
        return gateway_pb2.ListFlaggedVotersResponse(
            voters=[gateway_pb2.FlaggedVoter(
                voter_id=flag.voter_id, reasons=flag.reasons, score=flag.score,
                detail=flag.detail, votes=flag.votes, flagged_at_ms=flag.at_ms,
                auto_excluded=flag.auto_excluded) for flag in listed],
            total=total, auto_exclude_reasons=await self._flags.auto_exclusion(cause_id))

    async def SetAutoExclusion(self, request, context):  # type: ignore[no-untyped-def]
        cause_id = check_id("cause_id", request.cause_id)
        reasons = await self._flags.set_auto_exclusion(cause_id, request.auto_exclude_reasons)
        logger.info("automatic exclusion set", extra={
            "cause_id": cause_id, "by": current_principal.get(), "reasons": list(reasons)})
        return gateway_pb2.SetAutoExclusionResponse(auto_exclude_reasons=reasons)
    async def ListCauses(self, request, context):  # type: ignore[no-untyped-def]
        _, limit = check_page(0, request.limit, default_limit=DEFAULT_CAUSES_LIMIT)
        causes, cursor = await self._catalog.list_causes(_causes_cursor(request.after), limit)
        lives = await asyncio.gather(*(self._life.read(cause.cause_id) for cause in causes))
        return gateway_pb2.ListCausesResponse(
            causes=[_cause_message(cause, life)
                    for cause, life in zip(causes, lives, strict=True)],
            next_after=str(cursor) if cursor else "")


def _causes_cursor(after: str) -> int:
    """ListCauses' `after`: "" (the start) or a next_after handed out, a decimal cursor."""
    if not after:
        return 0
    if not (after.isascii() and after.isdigit() and len(after) <= 20 and int(after) < 2**64):
        raise InvalidArgument("after", "must be a next_after from a previous ListCauses reply")
    return int(after)
