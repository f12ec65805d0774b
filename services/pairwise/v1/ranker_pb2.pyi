from pairwise.v1 import types_pb2 as _types_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReadRankingRequest(_message.Message):
    __slots__ = ("cause_id", "offset", "limit")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    offset: int
    limit: int
    def __init__(self, cause_id: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ReadRankingResponse(_message.Message):
    __slots__ = ("ranking",)
    RANKING_FIELD_NUMBER: _ClassVar[int]
    ranking: _types_pb2.Ranking
    def __init__(self, ranking: _Optional[_Union[_types_pb2.Ranking, _Mapping]] = ...) -> None: ...

class FollowRankingRequest(_message.Message):
    __slots__ = ("cause_id", "limit")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    limit: int
    def __init__(self, cause_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

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
