"""gRPC edge of the ranker: RankerService messages <-> the published `Ranking` of a cause."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc

from pairwise import errors
from pairwise.v1 import ranker_pb2, ranker_pb2_grpc, types_pb2
from ranker import segment_views
from ranker.cause_directory import CauseDirectory
from ranker.cause_ranker import CauseRanker
from ranker.fit_scheduler import ViewMargins
from ranker.fit_settings import settings_of
from ranker.ranking import Ranking

# Entries per StreamRanking message: ~150 kB each, well under the default 4 MB limit.
EXPORT_PAGE_SIZE = 1000


def segment_message(overall: Ranking, ranking: Ranking | None, offset: int,
                    limit: int) -> types_pb2.Ranking:
    """A segment's ranking as `ranking_message` gives it, or, for a segment without counted
    votes (None), the overall ranking's header flagged as such, with no entries."""
    if ranking is not None:
        message = ranking_message(ranking, offset, limit)
        message.segment_votes = ranking.segment_votes
        return message
    message = ranking_message(overall, 0, 0)
    message.segment_without_votes = True
    return message


def ranking_message(ranking: Ranking, offset: int, limit: int) -> types_pb2.Ranking:
    """The header of `ranking` and its entries ranked offset+1 .. offset+limit."""
    rows = ranking.page(offset, limit)
    part = slice(rows.start, rows.stop)
    columns = zip(
        ranking.proposal_ids(rows), ranking.texts(rows),
        ranking.abilities[part].tolist(), ranking.std_errors[part].tolist(),
        ranking.ci_low[part].tolist(), ranking.ci_high[part].tolist(),
        ranking.scores[part].tolist(), ranking.wins[part].tolist(),
        ranking.losses[part].tolist(), ranking.ties[part].tolist(),
        ranking.skips[part].tolist(), ranking.appearances[part].tolist(),
        strict=True)
    entries = [
        types_pb2.RankedProposal(
            proposal_id=proposal_id, rank=position + 1, ability=ability, std_error=std_error,
            ci_low=ci_low, ci_high=ci_high, score=score, wins=wins, losses=losses, ties=ties,
            skips=skips, appearances=appearances, text=text)
        for position, (proposal_id, text, ability, std_error, ci_low, ci_high, score, wins,
                       losses, ties, skips, appearances) in zip(rows, columns, strict=True)
    ]
    return types_pb2.Ranking(
        cause_id=ranking.cause_id, votes_counted=ranking.votes_counted,
        total_proposals=ranking.total_proposals, entries=entries,
        fitted_at_ms=ranking.fitted_at_ms, prior_strength=ranking.prior_strength,
        last_vote_entry_id=ranking.last_vote_entry_id,
        votes_untrusted=ranking.left_out.untrusted, votes_excluded=ranking.left_out.excluded,
        exclusions_version=ranking.left_out.exclusions_version)


def export_pages(ranking: Ranking,
                 page_size: int = EXPORT_PAGE_SIZE) -> Iterator[types_pb2.RankingExportPage]:
    """`ranking` whole in pages of `page_size` entries (one empty page when it has none),
    the first carrying how it was fitted."""
    settings = settings_of(ranking)
    settings_message = types_pb2.FitSettings(
        engine=settings.engine, prior_strength=settings.prior_strength,
        tolerance=settings.tolerance, max_iterations=settings.max_iterations,
        ties=settings.ties, counted_votes=settings.counted_votes,
        warm_start=settings.warm_start, catalog_version=settings.catalog_version,
        iterations=settings.iterations)
    for offset in range(0, max(ranking.total_proposals, 1), page_size):
        rows = ranking.page(offset, page_size)
        start = [] if ranking.fit_start is None else \
            ranking.fit_start[rows.start:rows.stop].tolist()
        yield types_pb2.RankingExportPage(
            ranking=ranking_message(ranking, offset, page_size), fit_start=start,
            settings=settings_message if offset == 0 else None)


def _view_margins(request: ranker_pb2.ReadRankingRequest | ranker_pb2.FollowRankingRequest,
                  ) -> ViewMargins:
    """The margins a view request names: `view_margins`, else `view_key`'s `view_margin`
    (a gateway that weighted by one attribute), else none."""
    if request.view_key < 0:
        raise errors.InvalidArgument("view_key", "must be >= 0")
    if not request.view_margins:
        return ((request.view_key, tuple(request.view_margin)),) if request.view_margin \
            else ()
    margins = tuple((margin.key, tuple(margin.shares)) for margin in request.view_margins)
    keys = [key for key, _ in margins]
    if min(keys) < 0 or len(set(keys)) != len(keys):
        raise errors.InvalidArgument("view_margins", "keys must be distinct positions >= 0")
    return margins


async def _view_message(cause: CauseRanker, request: ranker_pb2.ReadRankingRequest,
                        offset: int, limit: int) -> types_pb2.Ranking:
    """The representative or consensus ranking the request names, with its view fields."""
    margins = _view_margins(request)
    ranking, view = await cause.current_view(int(request.view), request.view_key, margins)
    return view_message(ranking, view, request.view, offset, limit)


def view_message(ranking: Ranking, view: segment_views.View,
                 kind: types_pb2.RankingView, offset: int,
                 limit: int) -> types_pb2.Ranking:
    """A view's ranking as `ranking_message` gives it, with the view's fields."""
    message = ranking_message(ranking, offset, limit)
    message.view = kind
    message.weighting = view.weighting
    message.effective_votes = view.effective_votes
    message.trimmed_votes = view.trimmed_votes
    message.margin_gap = view.margin_gap
    message.weighted_keys.extend(view.attributes)
    return message


def _segment(segment: ranker_pb2.SegmentIndex) -> tuple[int, int]:
    if segment.key < 0 or segment.value < 0:
        raise errors.InvalidArgument("segment", "positions must be >= 0")
    return segment.key, segment.value


def _check_request(cause_id: str, **ranges: int) -> None:
    if not cause_id:
        raise errors.InvalidArgument("cause_id", "required")
    for field, value in ranges.items():
        if value < 0:
            raise errors.InvalidArgument(field, f"must be >= 0, got {value}")


class RankerServicer(ranker_pb2_grpc.RankerServiceServicer):
    """Serves the causes of `directory`; domain errors reach the client through the error
    mapping interceptor (pairwise.grpc_server)."""

    def __init__(self, directory: CauseDirectory) -> None:
        self._directory = directory

    async def ReadRanking(self, request: ranker_pb2.ReadRankingRequest,
                          context: grpc.aio.ServicerContext) -> ranker_pb2.ReadRankingResponse:
        _check_request(request.cause_id, offset=request.offset, limit=request.limit)
        cause = await self._directory.get(request.cause_id)
        if request.HasField("segment"):
            overall, ranking = await cause.current_segment(_segment(request.segment))
            return ranker_pb2.ReadRankingResponse(
                ranking=segment_message(overall, ranking, request.offset, request.limit))
        if request.view in (types_pb2.RANKING_VIEW_REPRESENTATIVE,
                            types_pb2.RANKING_VIEW_CONSENSUS):
            return ranker_pb2.ReadRankingResponse(ranking=await _view_message(
                cause, request, request.offset, request.limit))
        response = ranker_pb2.ReadRankingResponse(
            ranking=ranking_message(await cause.current(), request.offset, request.limit))
        if request.with_segment_votes:
            response.segment_votes.extend(
                ranker_pb2.SegmentVoteCount(
                    segment=ranker_pb2.SegmentIndex(key=key, value=value), votes=votes)
                for (key, value), votes in sorted(cause.segment_votes().items()))
        return response

    async def FollowRanking(self, request: ranker_pb2.FollowRankingRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> AsyncIterator[ranker_pb2.FollowRankingResponse]:
        _check_request(request.cause_id, limit=request.limit)
        cause = await self._directory.get(request.cause_id)
        if request.view in (types_pb2.RANKING_VIEW_REPRESENTATIVE,
                            types_pb2.RANKING_VIEW_CONSENSUS):
            margins = _view_margins(request)
            async for ranking, view in cause.follow_view(
                    int(request.view), request.view_key, margins):
                yield ranker_pb2.FollowRankingResponse(ranking=view_message(
                    ranking, view, request.view, 0, request.limit))
            return
        if request.HasField("segment"):
            async for overall, segment in cause.follow_segment(_segment(request.segment)):
                yield ranker_pb2.FollowRankingResponse(
                    ranking=segment_message(overall, segment, 0, request.limit))
            return
        async for ranking in cause.follow():
            yield ranker_pb2.FollowRankingResponse(
                ranking=ranking_message(ranking, 0, request.limit))

    async def StreamRanking(self, request: ranker_pb2.StreamRankingRequest,
                            context: grpc.aio.ServicerContext,
                            ) -> AsyncIterator[ranker_pb2.StreamRankingResponse]:
        _check_request(request.cause_id)
        cause = await self._directory.get(request.cause_id)
        # One ranking object for every page: a fit landing meanwhile does not mix in.
        ranking = await cause.current()
        for page in export_pages(ranking):
            yield ranker_pb2.StreamRankingResponse(page=page)
