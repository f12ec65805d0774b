from pairwise.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReadRankingRequest(_message.Message):
    __slots__ = ("cause_id", "offset", "limit", "segment", "with_segment_votes", "view", "view_key", "view_margin", "view_margins")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    WITH_SEGMENT_VOTES_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_KEY_FIELD_NUMBER: _ClassVar[int]
    VIEW_MARGIN_FIELD_NUMBER: _ClassVar[int]
    VIEW_MARGINS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    offset: int
    limit: int
    segment: SegmentIndex
    with_segment_votes: bool
    view: _types_pb2.RankingView
    view_key: int
    view_margin: _containers.RepeatedScalarFieldContainer[float]
    view_margins: _containers.RepeatedCompositeFieldContainer[ViewMargin]
    def __init__(self, cause_id: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., segment: _Optional[_Union[SegmentIndex, _Mapping]] = ..., with_segment_votes: _Optional[bool] = ..., view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., view_key: _Optional[int] = ..., view_margin: _Optional[_Iterable[float]] = ..., view_margins: _Optional[_Iterable[_Union[ViewMargin, _Mapping]]] = ...) -> None: ...

class ViewMargin(_message.Message):
    __slots__ = ("key", "shares")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    key: int
    shares: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, key: _Optional[int] = ..., shares: _Optional[_Iterable[float]] = ...) -> None: ...

class SegmentIndex(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: int
    value: int
    def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...

class SegmentVoteCount(_message.Message):
    __slots__ = ("segment", "votes")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    segment: SegmentIndex
    votes: int
    def __init__(self, segment: _Optional[_Union[SegmentIndex, _Mapping]] = ..., votes: _Optional[int] = ...) -> None: ...

class ReadRankingResponse(_message.Message):
    __slots__ = ("ranking", "segment_votes")
    RANKING_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_VOTES_FIELD_NUMBER: _ClassVar[int]
    ranking: _types_pb2.Ranking
    segment_votes: _containers.RepeatedCompositeFieldContainer[SegmentVoteCount]
    def __init__(self, ranking: _Optional[_Union[_types_pb2.Ranking, _Mapping]] = ..., segment_votes: _Optional[_Iterable[_Union[SegmentVoteCount, _Mapping]]] = ...) -> None: ...

class FollowRankingRequest(_message.Message):
    __slots__ = ("cause_id", "limit", "segment", "view", "view_key", "view_margin", "view_margins")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_KEY_FIELD_NUMBER: _ClassVar[int]
    VIEW_MARGIN_FIELD_NUMBER: _ClassVar[int]
    VIEW_MARGINS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    limit: int
    segment: SegmentIndex
    view: _types_pb2.RankingView
    view_key: int
    view_margin: _containers.RepeatedScalarFieldContainer[float]
    view_margins: _containers.RepeatedCompositeFieldContainer[ViewMargin]
    def __init__(self, cause_id: _Optional[str] = ..., limit: _Optional[int] = ..., segment: _Optional[_Union[SegmentIndex, _Mapping]] = ..., view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., view_key: _Optional[int] = ..., view_margin: _Optional[_Iterable[float]] = ..., view_margins: _Optional[_Iterable[_Union[ViewMargin, _Mapping]]] = ...) -> None: ...

class FollowRankingResponse(_message.Message):
    __slots__ = ("ranking",)
    RANKING_FIELD_NUMBER: _ClassVar[int]
    ranking: _types_pb2.Ranking
    def __init__(self, ranking: _Optional[_Union[_types_pb2.Ranking, _Mapping]] = ...) -> None: ...

class StreamRankingRequest(_message.Message):
    __slots__ = ("cause_id",)
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    def __init__(self, cause_id: _Optional[str] = ...) -> None: ...

class StreamRankingResponse(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _types_pb2.RankingExportPage
    def __init__(self, page: _Optional[_Union[_types_pb2.RankingExportPage, _Mapping]] = ...) -> None: ...
