"""WatchRanking's followers of one cause share one stream from its ranker.

A ranking update is a whole ranking (its first `limit` entries), so the gateway asks the
ranker for it once per (cause, limit, segment, view) however many clients follow it: the
ranker builds and sends one message per refit instead of one per follower, and the gateway
converts it once and hands the same message to every follower. A follower that falls
`BACKLOG` updates behind skips the oldest ones (each update replaces the previous ranking,
so it only loses intermediate states). The upstream stream starts with the first follower
and is cancelled with the last; an error on it ends every follower's watch with that error.
Followers are bounded per gateway and per cause (RESOURCE_EXHAUSTED past either), so that
watches cannot take the memory and the event loop that votes need.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pairwise.errors import ResourceExhausted
from pairwise.v1 import gateway_pb2, ranker_pb2, ranker_pb2_grpc, types_pb2

BACKLOG = 8

WatchedSegment = tuple[str, str, int, int]
"""A segment by name (attribute, value) and by position in the cause's declaration."""
ViewMargin = tuple[int, str, tuple[float, ...]]
"""An attribute's population margin: (its position, its key, the share of each value)."""
WatchedView = tuple[int, str, int, tuple[ViewMargin, ...]]
"""A representative or consensus view: (RankingView, the attribute key a consensus is taken
across or a representative view is weighted to alone, and its position ("" and -1 for a
representative view weighted to every attribute), the margins the representative view is
weighted to)."""


def add_view(request: ranker_pb2.ReadRankingRequest | ranker_pb2.FollowRankingRequest,
             view: WatchedView) -> None:
    """Name `view` in a ranker request: a representative view also names its first
    attribute's margin alone (`view_key`, `view_margin`), which a ranker that weights by one
    attribute reads (during an upgrade) and a newer one ignores."""
    request.view, request.view_key = view[0], max(view[2], 0)  # type: ignore[assignment]
    request.view_margins.extend(ranker_pb2.ViewMargin(key=position, shares=shares)
                                for position, _, shares in view[3])
    if view[3]:
        request.view_key = view[3][0][0]
        request.view_margin.extend(view[3][0][2])


def weighted_attributes(view: WatchedView | None, ranking: types_pb2.Ranking) -> list[str]:
    """The keys of the attributes a representative ranking of `view` is weighted to."""
    if view is None:
        return []
    names = {position: key for position, key, _ in view[3]}
    return [names.get(position, str(position)) for position in ranking.weighted_keys]
_FeedKey = tuple[str, int, WatchedSegment | None, WatchedView | None]


@dataclass(eq=False)
class _Follower:
    updates: collections.deque[gateway_pb2.WatchRankingResponse] = field(
        default_factory=lambda: collections.deque(maxlen=BACKLOG))
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    ended: bool = False


@dataclass(eq=False)
class _Feed:
    followers: set[_Follower] = field(default_factory=set)
    latest: gateway_pb2.WatchRankingResponse | None = None
    task: asyncio.Task[None] | None = None


class RankingWatches:
    """Shared ranking streams; `ranker_for(cause_id)` names the ranker to follow."""

    def __init__(self, ranker_for: Callable[[str], ranker_pb2_grpc.RankerServiceStub], *,
                 max_followers: int, max_followers_per_cause: int) -> None:
        self._ranker_for = ranker_for
        self._max = max_followers
        self._max_per_cause = max_followers_per_cause
        self._feeds: dict[_FeedKey, _Feed] = {}
        self._per_cause: collections.Counter[str] = collections.Counter()
        self._total = 0

    async def watch(self, cause_id: str, limit: int, segment: WatchedSegment | None = None,
                    view: WatchedView | None = None,
                    ) -> AsyncIterator[gateway_pb2.WatchRankingResponse]:
        """The cause's rankings (first `limit` entries; of `segment`'s votes only, when
        given) as they are published, starting with the current one, until the caller stops
        iterating. Raises ResourceExhausted when the
        gateway or the cause already has its most followers, and the upstream's error if
        the ranker's stream fails."""
        if self._total >= self._max:
            raise ResourceExhausted(f"this gateway already serves {self._max} ranking "
                                    "watches; retry later or read with GetRanking")
        if self._per_cause[cause_id] >= self._max_per_cause:
            raise ResourceExhausted(f"cause {cause_id!r} already has "
                                    f"{self._max_per_cause} ranking watches on this gateway; "
                                    "share one, or read with GetRanking")
        key = (cause_id, limit, segment, view)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed()
            feed.task = asyncio.get_running_loop().create_task(
                self._relay(key, feed), name=f"watch:{cause_id}:{limit}")
        follower = _Follower()
        if feed.latest is not None:
            follower.updates.append(feed.latest)
            follower.ready.set()
        feed.followers.add(follower)
        self._total += 1
        self._per_cause[cause_id] += 1
        try:
            while True:
                await follower.ready.wait()
                follower.ready.clear()
                while follower.updates:
                    yield follower.updates.popleft()
                if follower.error is not None:
                    raise follower.error
                if follower.ended:
                    return
        finally:
            feed.followers.discard(follower)
            self._total -= 1
            self._per_cause[cause_id] -= 1
            if not self._per_cause[cause_id]:
                del self._per_cause[cause_id]
            if not feed.followers and self._feeds.get(key) is feed:
                del self._feeds[key]
                if feed.task is not None:
                    feed.task.cancel()

    async def _relay(self, key: _FeedKey, feed: _Feed) -> None:
        cause_id, limit, segment, view = key
        request = ranker_pb2.FollowRankingRequest(cause_id=cause_id, limit=limit)
        if view is not None:
            add_view(request, view)
        named = None
        if segment is not None:
            request.segment.key, request.segment.value = segment[2], segment[3]
            named = types_pb2.Segment(key=segment[0], value=segment[1])
        call = self._ranker_for(cause_id).FollowRanking(request)
        error: BaseException | None = None
        try:
            async for reply in call:
                ranking = reply.ranking
                feed.latest = gateway_pb2.WatchRankingResponse(
                    cause_id=cause_id, votes_counted=ranking.votes_counted,
                    entries=ranking.entries, total_proposals=ranking.total_proposals,
                    fitted_at_ms=ranking.fitted_at_ms, prior_strength=ranking.prior_strength,
                    votes_untrusted=ranking.votes_untrusted,
                    votes_excluded=ranking.votes_excluded,
                    exclusions_version=ranking.exclusions_version, segment=named,
                    segment_votes=ranking.segment_votes,
                    segment_without_votes=ranking.segment_without_votes,
                    view=ranking.view, view_attribute="" if view is None else view[1],
                    weighting=ranking.weighting, effective_votes=ranking.effective_votes,
                    trimmed_votes=ranking.trimmed_votes, margin_gap=ranking.margin_gap,
                    weighted_attributes=weighted_attributes(view, ranking))
                for follower in feed.followers:
                    follower.updates.append(feed.latest)
                    follower.ready.set()
        except Exception as exc:  # the ranker's status, or a fault here: either ends the watches
            error = exc
        finally:
            call.cancel()
            # Whatever ended the stream ends it for every follower; a later watch opens a
            # new one.
            if self._feeds.get(key) is feed:
                del self._feeds[key]
            for follower in feed.followers:
                follower.error = error
                follower.ended = True
                follower.ready.set()
