from pairwise.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecordVoteRequest(_message.Message):
    __slots__ = ("cause_id", "voter_id", "prompt_token", "choice", "skip_reason", "idempotency_key", "attributes", "skip_reason_code")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHOICE_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    voter_id: str
    prompt_token: str
    choice: _types_pb2.Choice
    skip_reason: str
    idempotency_key: str
    attributes: _containers.ScalarMap[str, str]
    skip_reason_code: _types_pb2.SkipReason
    def __init__(self, cause_id: _Optional[str] = ..., voter_id: _Optional[str] = ..., prompt_token: _Optional[str] = ..., choice: _Optional[_Union[_types_pb2.Choice, str]] = ..., skip_reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., skip_reason_code: _Optional[_Union[_types_pb2.SkipReason, str]] = ...) -> None: ...

class RecordVoteResponse(_message.Message):
    __slots__ = ("vote_id", "duplicate", "entry_id")
    VOTE_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    vote_id: str
    duplicate: bool
    entry_id: str
    def __init__(self, vote_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., entry_id: _Optional[str] = ...) -> None: ...

class RecordInteractiveVotesRequest(_message.Message):
    __slots__ = ("votes",)
    VOTES_FIELD_NUMBER: _ClassVar[int]
    votes: _containers.RepeatedCompositeFieldContainer[RecordVoteRequest]
    def __init__(self, votes: _Optional[_Iterable[_Union[RecordVoteRequest, _Mapping]]] = ...) -> None: ...

class RecordInteractiveVotesResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[InteractiveVoteOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[InteractiveVoteOutcome, _Mapping]]] = ...) -> None: ...

class InteractiveVoteOutcome(_message.Message):
    __slots__ = ("code", "message", "receipt")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    receipt: RecordVoteResponse
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., receipt: _Optional[_Union[RecordVoteResponse, _Mapping]] = ...) -> None: ...

class RecordVotesRequest(_message.Message):
    __slots__ = ("votes", "first_index")
    VOTES_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    votes: _containers.RepeatedCompositeFieldContainer[_types_pb2.ImportedVote]
    first_index: int
    def __init__(self, votes: _Optional[_Iterable[_Union[_types_pb2.ImportedVote, _Mapping]]] = ..., first_index: _Optional[int] = ...) -> None: ...

class RecordVotesResponse(_message.Message):
    __slots__ = ("accepted", "duplicates", "rejected", "errors")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicates: int
    rejected: int
    errors: _containers.RepeatedCompositeFieldContainer[_types_pb2.VoteError]
    def __init__(self, accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[_types_pb2.VoteError, _Mapping]]] = ...) -> None: ...

class GetVoteStatsRequest(_message.Message):
    __slots__ = ("cause_id",)
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    def __init__(self, cause_id: _Optional[str] = ...) -> None: ...

class GetVoteStatsResponse(_message.Message):
    __slots__ = ("votes_accepted", "duplicates", "rejected_by_reason", "voters", "ties", "skips", "skip_reasons")
    class RejectedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VOTES_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    SKIPS_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASONS_FIELD_NUMBER: _ClassVar[int]
    votes_accepted: int
    duplicates: int
    rejected_by_reason: _containers.ScalarMap[str, int]
    voters: int
    ties: int
    skips: int
    skip_reasons: _containers.RepeatedCompositeFieldContainer[_types_pb2.SkipReasonCount]
    def __init__(self, votes_accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected_by_reason: _Optional[_Mapping[str, int]] = ..., voters: _Optional[int] = ..., ties: _Optional[int] = ..., skips: _Optional[int] = ..., skip_reasons: _Optional[_Iterable[_Union[_types_pb2.SkipReasonCount, _Mapping]]] = ...) -> None: ...
