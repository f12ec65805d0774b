from pairwise.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCauseRequest(_message.Message):
    __slots__ = ("cause_id", "title", "auto_accept_proposals", "pair_selection", "top_k", "opens_at_ms", "closes_at_ms", "default_view", "default_view_attribute")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AUTO_ACCEPT_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    PAIR_SELECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OPENS_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VIEW_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    title: str
    auto_accept_proposals: bool
    pair_selection: _types_pb2.PairSelection
    top_k: int
    opens_at_ms: int
    closes_at_ms: int
    default_view: _types_pb2.RankingView
    default_view_attribute: str
    def __init__(self, cause_id: _Optional[str] = ..., title: _Optional[str] = ..., auto_accept_proposals: _Optional[bool] = ..., pair_selection: _Optional[_Union[_types_pb2.PairSelection, str]] = ..., top_k: _Optional[int] = ..., opens_at_ms: _Optional[int] = ..., closes_at_ms: _Optional[int] = ..., default_view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., default_view_attribute: _Optional[str] = ...) -> None: ...

class CreateCauseResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class UpdatePairSelectionRequest(_message.Message):
    __slots__ = ("cause_id", "pair_selection", "top_k")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    PAIR_SELECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    pair_selection: _types_pb2.PairSelection
    top_k: int
    def __init__(self, cause_id: _Optional[str] = ..., pair_selection: _Optional[_Union[_types_pb2.PairSelection, str]] = ..., top_k: _Optional[int] = ...) -> None: ...

class UpdatePairSelectionResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class SetDefaultRankingViewRequest(_message.Message):
    __slots__ = ("cause_id", "view", "view_attribute", "reason", "requested_by")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    view: _types_pb2.RankingView
    view_attribute: str
    reason: str
    requested_by: str
    def __init__(self, cause_id: _Optional[str] = ..., view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., view_attribute: _Optional[str] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class SetDefaultRankingViewResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class GetCauseRequest(_message.Message):
    __slots__ = ("cause_id",)
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    def __init__(self, cause_id: _Optional[str] = ...) -> None: ...

class GetCauseResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class AddProposalsRequest(_message.Message):
    __slots__ = ("cause_id", "proposals")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    proposals: _containers.RepeatedCompositeFieldContainer[_types_pb2.NewProposal]
    def __init__(self, cause_id: _Optional[str] = ..., proposals: _Optional[_Iterable[_Union[_types_pb2.NewProposal, _Mapping]]] = ...) -> None: ...

class AddProposalsResponse(_message.Message):
    __slots__ = ("proposals",)
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    proposals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Proposal]
    def __init__(self, proposals: _Optional[_Iterable[_Union[_types_pb2.Proposal, _Mapping]]] = ...) -> None: ...

class ModerateProposalRequest(_message.Message):
    __slots__ = ("cause_id", "proposal_id", "status", "reason")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    proposal_id: str
    status: _types_pb2.ProposalStatus
    reason: str
    def __init__(self, cause_id: _Optional[str] = ..., proposal_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.ProposalStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ModerateProposalResponse(_message.Message):
    __slots__ = ("proposal",)
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    proposal: _types_pb2.Proposal
    def __init__(self, proposal: _Optional[_Union[_types_pb2.Proposal, _Mapping]] = ...) -> None: ...

class ListProposalsRequest(_message.Message):
    __slots__ = ("cause_id", "status", "offset", "limit")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    status: _types_pb2.ProposalStatus
    offset: int
    limit: int
    def __init__(self, cause_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.ProposalStatus, str]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListProposalsResponse(_message.Message):
    __slots__ = ("proposals", "total")
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    proposals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Proposal]
    total: int
    def __init__(self, proposals: _Optional[_Iterable[_Union[_types_pb2.Proposal, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class NextPairRequest(_message.Message):
    __slots__ = ("cause_id", "voter_id", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    voter_id: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, cause_id: _Optional[str] = ..., voter_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NextPairResponse(_message.Message):
    __slots__ = ("prompt_token", "left", "right", "expires_at_ms")
    PROMPT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    RIGHT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    prompt_token: str
    left: _types_pb2.Proposal
    right: _types_pb2.Proposal
    expires_at_ms: int
    def __init__(self, prompt_token: _Optional[str] = ..., left: _Optional[_Union[_types_pb2.Proposal, _Mapping]] = ..., right: _Optional[_Union[_types_pb2.Proposal, _Mapping]] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class SubmitVoteRequest(_message.Message):
    __slots__ = ("cause_id", "voter_id", "prompt_token", "choice", "skip_reason", "idempotency_key", "want_next_pair", "attributes", "skip_reason_code")
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
    WANT_NEXT_PAIR_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    voter_id: str
    prompt_token: str
    choice: _types_pb2.Choice
    skip_reason: str
    idempotency_key: str
    want_next_pair: bool
    attributes: _containers.ScalarMap[str, str]
    skip_reason_code: _types_pb2.SkipReason
    def __init__(self, cause_id: _Optional[str] = ..., voter_id: _Optional[str] = ..., prompt_token: _Optional[str] = ..., choice: _Optional[_Union[_types_pb2.Choice, str]] = ..., skip_reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., want_next_pair: _Optional[bool] = ..., attributes: _Optional[_Mapping[str, str]] = ..., skip_reason_code: _Optional[_Union[_types_pb2.SkipReason, str]] = ...) -> None: ...

class SubmitVoteResponse(_message.Message):
    __slots__ = ("vote_id", "duplicate", "next_pair", "next_pair_unavailable")
    VOTE_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAIR_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAIR_UNAVAILABLE_FIELD_NUMBER: _ClassVar[int]
    vote_id: str
    duplicate: bool
    next_pair: NextPairResponse
    next_pair_unavailable: str
    def __init__(self, vote_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., next_pair: _Optional[_Union[NextPairResponse, _Mapping]] = ..., next_pair_unavailable: _Optional[str] = ...) -> None: ...

class ImportVotesRequest(_message.Message):
    __slots__ = ("votes",)
    VOTES_FIELD_NUMBER: _ClassVar[int]
    votes: _containers.RepeatedCompositeFieldContainer[_types_pb2.ImportedVote]
    def __init__(self, votes: _Optional[_Iterable[_Union[_types_pb2.ImportedVote, _Mapping]]] = ...) -> None: ...

class ImportVotesResponse(_message.Message):
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

class GetRankingRequest(_message.Message):
    __slots__ = ("cause_id", "offset", "limit", "segment", "view", "view_attribute")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    offset: int
    limit: int
    segment: _types_pb2.Segment
    view: _types_pb2.RankingView
    view_attribute: str
    def __init__(self, cause_id: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., segment: _Optional[_Union[_types_pb2.Segment, _Mapping]] = ..., view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., view_attribute: _Optional[str] = ...) -> None: ...

class GetRankingResponse(_message.Message):
    __slots__ = ("cause_id", "votes_counted", "entries", "total_proposals", "fitted_at_ms", "prior_strength", "votes_untrusted", "votes_excluded", "exclusions_version", "segment", "segment_votes", "segment_without_votes", "cause_state", "final", "view", "view_attribute", "weighting", "effective_votes", "trimmed_votes", "margin_gap", "weighted_attributes")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_COUNTED_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    FITTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    VOTES_UNTRUSTED_FIELD_NUMBER: _ClassVar[int]
    VOTES_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_VOTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_WITHOUT_VOTES_FIELD_NUMBER: _ClassVar[int]
    CAUSE_STATE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTING_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_VOTES_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_VOTES_FIELD_NUMBER: _ClassVar[int]
    MARGIN_GAP_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    votes_counted: int
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.RankedProposal]
    total_proposals: int
    fitted_at_ms: int
    prior_strength: float
    votes_untrusted: int
    votes_excluded: int
    exclusions_version: int
    segment: _types_pb2.Segment
    segment_votes: int
    segment_without_votes: bool
    cause_state: _types_pb2.CauseState
    final: bool
    view: _types_pb2.RankingView
    view_attribute: str
    weighting: str
    effective_votes: float
    trimmed_votes: int
    margin_gap: float
    weighted_attributes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cause_id: _Optional[str] = ..., votes_counted: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[_types_pb2.RankedProposal, _Mapping]]] = ..., total_proposals: _Optional[int] = ..., fitted_at_ms: _Optional[int] = ..., prior_strength: _Optional[float] = ..., votes_untrusted: _Optional[int] = ..., votes_excluded: _Optional[int] = ..., exclusions_version: _Optional[int] = ..., segment: _Optional[_Union[_types_pb2.Segment, _Mapping]] = ..., segment_votes: _Optional[int] = ..., segment_without_votes: _Optional[bool] = ..., cause_state: _Optional[_Union[_types_pb2.CauseState, str]] = ..., final: _Optional[bool] = ..., view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., view_attribute: _Optional[str] = ..., weighting: _Optional[str] = ..., effective_votes: _Optional[float] = ..., trimmed_votes: _Optional[int] = ..., margin_gap: _Optional[float] = ..., weighted_attributes: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchRankingRequest(_message.Message):
    __slots__ = ("cause_id", "limit", "segment", "view", "view_attribute")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    limit: int
    segment: _types_pb2.Segment
    view: _types_pb2.RankingView
    view_attribute: str
    def __init__(self, cause_id: _Optional[str] = ..., limit: _Optional[int] = ..., segment: _Optional[_Union[_types_pb2.Segment, _Mapping]] = ..., view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., view_attribute: _Optional[str] = ...) -> None: ...

class WatchRankingResponse(_message.Message):
    __slots__ = ("cause_id", "votes_counted", "entries", "total_proposals", "fitted_at_ms", "prior_strength", "votes_untrusted", "votes_excluded", "exclusions_version", "segment", "segment_votes", "segment_without_votes", "cause_state", "final", "view", "view_attribute", "weighting", "effective_votes", "trimmed_votes", "margin_gap", "weighted_attributes")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_COUNTED_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    FITTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    VOTES_UNTRUSTED_FIELD_NUMBER: _ClassVar[int]
    VOTES_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_VOTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_WITHOUT_VOTES_FIELD_NUMBER: _ClassVar[int]
    CAUSE_STATE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTING_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_VOTES_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_VOTES_FIELD_NUMBER: _ClassVar[int]
    MARGIN_GAP_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    votes_counted: int
    entries: _containers.RepeatedCompositeFieldContainer[_types_pb2.RankedProposal]
    total_proposals: int
    fitted_at_ms: int
    prior_strength: float
    votes_untrusted: int
    votes_excluded: int
    exclusions_version: int
    segment: _types_pb2.Segment
    segment_votes: int
    segment_without_votes: bool
    cause_state: _types_pb2.CauseState
    final: bool
    view: _types_pb2.RankingView
    view_attribute: str
    weighting: str
    effective_votes: float
    trimmed_votes: int
    margin_gap: float
    weighted_attributes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cause_id: _Optional[str] = ..., votes_counted: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[_types_pb2.RankedProposal, _Mapping]]] = ..., total_proposals: _Optional[int] = ..., fitted_at_ms: _Optional[int] = ..., prior_strength: _Optional[float] = ..., votes_untrusted: _Optional[int] = ..., votes_excluded: _Optional[int] = ..., exclusions_version: _Optional[int] = ..., segment: _Optional[_Union[_types_pb2.Segment, _Mapping]] = ..., segment_votes: _Optional[int] = ..., segment_without_votes: _Optional[bool] = ..., cause_state: _Optional[_Union[_types_pb2.CauseState, str]] = ..., final: _Optional[bool] = ..., view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., view_attribute: _Optional[str] = ..., weighting: _Optional[str] = ..., effective_votes: _Optional[float] = ..., trimmed_votes: _Optional[int] = ..., margin_gap: _Optional[float] = ..., weighted_attributes: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCauseStatsRequest(_message.Message):
    __slots__ = ("cause_id",)
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    def __init__(self, cause_id: _Optional[str] = ...) -> None: ...

class GetCauseStatsResponse(_message.Message):
    __slots__ = ("votes_accepted", "votes_counted", "lag", "duplicates", "votes_rejected", "rejected_by_reason", "voters", "ties", "skips", "skip_reasons", "proposals_accepted", "proposals_pending", "proposals_rejected", "votes_untrusted", "votes_excluded", "exclusions_version", "segments")
    class RejectedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VOTES_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    VOTES_COUNTED_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    VOTES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    SKIPS_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASONS_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_PENDING_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    VOTES_UNTRUSTED_FIELD_NUMBER: _ClassVar[int]
    VOTES_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    votes_accepted: int
    votes_counted: int
    lag: int
    duplicates: int
    votes_rejected: int
    rejected_by_reason: _containers.ScalarMap[str, int]
    voters: int
    ties: int
    skips: int
    skip_reasons: _containers.RepeatedCompositeFieldContainer[_types_pb2.SkipReasonCount]
    proposals_accepted: int
    proposals_pending: int
    proposals_rejected: int
    votes_untrusted: int
    votes_excluded: int
    exclusions_version: int
    segments: _containers.RepeatedCompositeFieldContainer[SegmentVotes]
    def __init__(self, votes_accepted: _Optional[int] = ..., votes_counted: _Optional[int] = ..., lag: _Optional[int] = ..., duplicates: _Optional[int] = ..., votes_rejected: _Optional[int] = ..., rejected_by_reason: _Optional[_Mapping[str, int]] = ..., voters: _Optional[int] = ..., ties: _Optional[int] = ..., skips: _Optional[int] = ..., skip_reasons: _Optional[_Iterable[_Union[_types_pb2.SkipReasonCount, _Mapping]]] = ..., proposals_accepted: _Optional[int] = ..., proposals_pending: _Optional[int] = ..., proposals_rejected: _Optional[int] = ..., votes_untrusted: _Optional[int] = ..., votes_excluded: _Optional[int] = ..., exclusions_version: _Optional[int] = ..., segments: _Optional[_Iterable[_Union[SegmentVotes, _Mapping]]] = ...) -> None: ...

class SegmentVotes(_message.Message):
    __slots__ = ("segment", "votes_counted")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    VOTES_COUNTED_FIELD_NUMBER: _ClassVar[int]
    segment: _types_pb2.Segment
    votes_counted: int
    def __init__(self, segment: _Optional[_Union[_types_pb2.Segment, _Mapping]] = ..., votes_counted: _Optional[int] = ...) -> None: ...

class SetVoterAttributesRequest(_message.Message):
    __slots__ = ("cause_id", "attributes")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    attributes: _containers.RepeatedCompositeFieldContainer[_types_pb2.VoterAttribute]
    def __init__(self, cause_id: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[_types_pb2.VoterAttribute, _Mapping]]] = ...) -> None: ...

class SetVoterAttributesResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class AttributeMargins(_message.Message):
    __slots__ = ("key", "shares")
    class SharesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    KEY_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    key: str
    shares: _containers.ScalarMap[str, float]
    def __init__(self, key: _Optional[str] = ..., shares: _Optional[_Mapping[str, float]] = ...) -> None: ...

class SetPopulationMarginsRequest(_message.Message):
    __slots__ = ("cause_id", "margins")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    MARGINS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    margins: _containers.RepeatedCompositeFieldContainer[AttributeMargins]
    def __init__(self, cause_id: _Optional[str] = ..., margins: _Optional[_Iterable[_Union[AttributeMargins, _Mapping]]] = ...) -> None: ...

class SetPopulationMarginsResponse(_message.Message):
    __slots__ = ("margins",)
    MARGINS_FIELD_NUMBER: _ClassVar[int]
    margins: _containers.RepeatedCompositeFieldContainer[AttributeMargins]
    def __init__(self, margins: _Optional[_Iterable[_Union[AttributeMargins, _Mapping]]] = ...) -> None: ...

class GetPopulationMarginsRequest(_message.Message):
    __slots__ = ("cause_id",)
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    def __init__(self, cause_id: _Optional[str] = ...) -> None: ...

class GetPopulationMarginsResponse(_message.Message):
    __slots__ = ("margins",)
    MARGINS_FIELD_NUMBER: _ClassVar[int]
    margins: _containers.RepeatedCompositeFieldContainer[AttributeMargins]
    def __init__(self, margins: _Optional[_Iterable[_Union[AttributeMargins, _Mapping]]] = ...) -> None: ...

class ExcludeVotesRequest(_message.Message):
    __slots__ = ("cause_id", "voter_ids", "vote_ids", "reason", "requested_by")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTER_IDS_FIELD_NUMBER: _ClassVar[int]
    VOTE_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    voter_ids: _containers.RepeatedScalarFieldContainer[str]
    vote_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    requested_by: str
    def __init__(self, cause_id: _Optional[str] = ..., voter_ids: _Optional[_Iterable[str]] = ..., vote_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class ExcludeVotesResponse(_message.Message):
    __slots__ = ("voters_changed", "votes_changed", "exclusions_version")
    VOTERS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    VOTES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    voters_changed: int
    votes_changed: int
    exclusions_version: int
    def __init__(self, voters_changed: _Optional[int] = ..., votes_changed: _Optional[int] = ..., exclusions_version: _Optional[int] = ...) -> None: ...

class ReinstateVotesRequest(_message.Message):
    __slots__ = ("cause_id", "voter_ids", "vote_ids", "reason", "requested_by")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTER_IDS_FIELD_NUMBER: _ClassVar[int]
    VOTE_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    voter_ids: _containers.RepeatedScalarFieldContainer[str]
    vote_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    requested_by: str
    def __init__(self, cause_id: _Optional[str] = ..., voter_ids: _Optional[_Iterable[str]] = ..., vote_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class ReinstateVotesResponse(_message.Message):
    __slots__ = ("voters_changed", "votes_changed", "exclusions_version")
    VOTERS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    VOTES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    voters_changed: int
    votes_changed: int
    exclusions_version: int
    def __init__(self, voters_changed: _Optional[int] = ..., votes_changed: _Optional[int] = ..., exclusions_version: _Optional[int] = ...) -> None: ...

class ListExclusionsRequest(_message.Message):
    __slots__ = ("cause_id", "offset", "limit")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    offset: int
    limit: int
    def __init__(self, cause_id: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListExclusionsResponse(_message.Message):
    __slots__ = ("exclusions", "total", "exclusions_version")
    EXCLUSIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    exclusions: _containers.RepeatedCompositeFieldContainer[Exclusion]
    total: int
    exclusions_version: int
    def __init__(self, exclusions: _Optional[_Iterable[_Union[Exclusion, _Mapping]]] = ..., total: _Optional[int] = ..., exclusions_version: _Optional[int] = ...) -> None: ...

class Exclusion(_message.Message):
    __slots__ = ("voter_id", "vote_id", "reason", "excluded_by", "excluded_at_ms")
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    VOTE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_BY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    voter_id: str
    vote_id: str
    reason: str
    excluded_by: str
    excluded_at_ms: int
    def __init__(self, voter_id: _Optional[str] = ..., vote_id: _Optional[str] = ..., reason: _Optional[str] = ..., excluded_by: _Optional[str] = ..., excluded_at_ms: _Optional[int] = ...) -> None: ...

class ListExclusionAuditRequest(_message.Message):
    __slots__ = ("cause_id", "after", "limit")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    after: str
    limit: int
    def __init__(self, cause_id: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListExclusionAuditResponse(_message.Message):
    __slots__ = ("entries", "next_after")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ExclusionAuditEntry]
    next_after: str
    def __init__(self, entries: _Optional[_Iterable[_Union[ExclusionAuditEntry, _Mapping]]] = ..., next_after: _Optional[str] = ...) -> None: ...

class ExclusionAuditEntry(_message.Message):
    __slots__ = ("entry_id", "action", "voter_ids", "vote_ids", "reason", "by", "at_ms", "exclusions_version")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    VOTER_IDS_FIELD_NUMBER: _ClassVar[int]
    VOTE_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    action: str
    voter_ids: _containers.RepeatedScalarFieldContainer[str]
    vote_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    by: str
    at_ms: int
    exclusions_version: int
    def __init__(self, entry_id: _Optional[str] = ..., action: _Optional[str] = ..., voter_ids: _Optional[_Iterable[str]] = ..., vote_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., by: _Optional[str] = ..., at_ms: _Optional[int] = ..., exclusions_version: _Optional[int] = ...) -> None: ...

class ListFlaggedVotersRequest(_message.Message):
    __slots__ = ("cause_id", "offset", "limit")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    offset: int
    limit: int
    def __init__(self, cause_id: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListFlaggedVotersResponse(_message.Message):
    __slots__ = ("voters", "total", "auto_exclude_reasons")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AUTO_EXCLUDE_REASONS_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedCompositeFieldContainer[FlaggedVoter]
    total: int
    auto_exclude_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, voters: _Optional[_Iterable[_Union[FlaggedVoter, _Mapping]]] = ..., total: _Optional[int] = ..., auto_exclude_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class FlaggedVoter(_message.Message):
    __slots__ = ("voter_id", "reasons", "score", "detail", "votes", "flagged_at_ms", "auto_excluded")
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AUTO_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    voter_id: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    score: float
    detail: str
    votes: int
    flagged_at_ms: int
    auto_excluded: bool
    def __init__(self, voter_id: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., score: _Optional[float] = ..., detail: _Optional[str] = ..., votes: _Optional[int] = ..., flagged_at_ms: _Optional[int] = ..., auto_excluded: _Optional[bool] = ...) -> None: ...

class SetAutoExclusionRequest(_message.Message):
    __slots__ = ("cause_id", "auto_exclude_reasons")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTO_EXCLUDE_REASONS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    auto_exclude_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cause_id: _Optional[str] = ..., auto_exclude_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class SetAutoExclusionResponse(_message.Message):
    __slots__ = ("auto_exclude_reasons",)
    AUTO_EXCLUDE_REASONS_FIELD_NUMBER: _ClassVar[int]
    auto_exclude_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, auto_exclude_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportVotesRequest(_message.Message):
    __slots__ = ("cause_id", "through_entry_id", "raw_voter_ids", "vote_columns")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    THROUGH_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_VOTER_IDS_FIELD_NUMBER: _ClassVar[int]
    VOTE_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    through_entry_id: str
    raw_voter_ids: bool
    vote_columns: bool
    def __init__(self, cause_id: _Optional[str] = ..., through_entry_id: _Optional[str] = ..., raw_voter_ids: _Optional[bool] = ..., vote_columns: _Optional[bool] = ...) -> None: ...

class ExportVotesResponse(_message.Message):
    __slots__ = ("cause", "catalog_version", "proposals", "entries", "votes")
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    catalog_version: int
    proposals: _containers.RepeatedCompositeFieldContainer[_types_pb2.Proposal]
    entries: _containers.RepeatedCompositeFieldContainer[VoteLogEntry]
    votes: VoteColumns
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ..., catalog_version: _Optional[int] = ..., proposals: _Optional[_Iterable[_Union[_types_pb2.Proposal, _Mapping]]] = ..., entries: _Optional[_Iterable[_Union[VoteLogEntry, _Mapping]]] = ..., votes: _Optional[_Union[VoteColumns, _Mapping]] = ...) -> None: ...

class VoteColumns(_message.Message):
    __slots__ = ("entry_ids", "entry_votes", "kinds", "a", "b", "vote_ids", "voter_ids", "trust", "skip_reason_codes", "skip_reasons", "attributes")
    ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    ENTRY_VOTES_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    VOTE_IDS_FIELD_NUMBER: _ClassVar[int]
    VOTER_IDS_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_CODES_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASONS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    entry_ids: bytes
    entry_votes: bytes
    kinds: bytes
    a: bytes
    b: bytes
    vote_ids: bytes
    voter_ids: bytes
    trust: bytes
    skip_reason_codes: bytes
    skip_reasons: _containers.RepeatedScalarFieldContainer[str]
    attributes: bytes
    def __init__(self, entry_ids: _Optional[bytes] = ..., entry_votes: _Optional[bytes] = ..., kinds: _Optional[bytes] = ..., a: _Optional[bytes] = ..., b: _Optional[bytes] = ..., vote_ids: _Optional[bytes] = ..., voter_ids: _Optional[bytes] = ..., trust: _Optional[bytes] = ..., skip_reason_codes: _Optional[bytes] = ..., skip_reasons: _Optional[_Iterable[str]] = ..., attributes: _Optional[bytes] = ...) -> None: ...

class VoteLogEntry(_message.Message):
    __slots__ = ("entry_id", "kinds", "a", "b", "vote_ids", "voter_ids", "trust", "skip_reason", "attributes", "skip_reason_code")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    VOTE_IDS_FIELD_NUMBER: _ClassVar[int]
    VOTER_IDS_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_CODE_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    kinds: str
    a: str
    b: str
    vote_ids: str
    voter_ids: str
    trust: str
    skip_reason: str
    attributes: str
    skip_reason_code: _types_pb2.SkipReason
    def __init__(self, entry_id: _Optional[str] = ..., kinds: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ..., vote_ids: _Optional[str] = ..., voter_ids: _Optional[str] = ..., trust: _Optional[str] = ..., skip_reason: _Optional[str] = ..., attributes: _Optional[str] = ..., skip_reason_code: _Optional[_Union[_types_pb2.SkipReason, str]] = ...) -> None: ...

class ExportRankingRequest(_message.Message):
    __slots__ = ("cause_id",)
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    def __init__(self, cause_id: _Optional[str] = ...) -> None: ...

class ExportRankingResponse(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _types_pb2.RankingExportPage
    def __init__(self, page: _Optional[_Union[_types_pb2.RankingExportPage, _Mapping]] = ...) -> None: ...

class CloseCauseRequest(_message.Message):
    __slots__ = ("cause_id", "reason", "requested_by")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    reason: str
    requested_by: str
    def __init__(self, cause_id: _Optional[str] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class CloseCauseResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class ReopenCauseRequest(_message.Message):
    __slots__ = ("cause_id", "reason", "requested_by", "closes_at_ms")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    reason: str
    requested_by: str
    closes_at_ms: int
    def __init__(self, cause_id: _Optional[str] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ..., closes_at_ms: _Optional[int] = ...) -> None: ...

class ReopenCauseResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class ScheduleCauseRequest(_message.Message):
    __slots__ = ("cause_id", "opens_at_ms", "closes_at_ms", "reason", "requested_by")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    OPENS_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    opens_at_ms: int
    closes_at_ms: int
    reason: str
    requested_by: str
    def __init__(self, cause_id: _Optional[str] = ..., opens_at_ms: _Optional[int] = ..., closes_at_ms: _Optional[int] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class ScheduleCauseResponse(_message.Message):
    __slots__ = ("cause",)
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ...) -> None: ...

class ArchiveCauseRequest(_message.Message):
    __slots__ = ("cause_id", "reason", "requested_by")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    reason: str
    requested_by: str
    def __init__(self, cause_id: _Optional[str] = ..., reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class ArchiveCauseResponse(_message.Message):
    __slots__ = ("cause", "votes_archived", "keys_released")
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    VOTES_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    KEYS_RELEASED_FIELD_NUMBER: _ClassVar[int]
    cause: _types_pb2.Cause
    votes_archived: int
    keys_released: int
    def __init__(self, cause: _Optional[_Union[_types_pb2.Cause, _Mapping]] = ..., votes_archived: _Optional[int] = ..., keys_released: _Optional[int] = ...) -> None: ...

class ListCauseAuditRequest(_message.Message):
    __slots__ = ("cause_id", "after", "limit")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    after: str
    limit: int
    def __init__(self, cause_id: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListCauseAuditResponse(_message.Message):
    __slots__ = ("entries", "next_after")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[CauseAuditEntry]
    next_after: str
    def __init__(self, entries: _Optional[_Iterable[_Union[CauseAuditEntry, _Mapping]]] = ..., next_after: _Optional[str] = ...) -> None: ...

class CauseAuditEntry(_message.Message):
    __slots__ = ("entry_id", "action", "state_before", "state_after", "reason", "by", "at_ms", "votes", "opens_at_ms", "closes_at_ms", "default_view", "default_view_attribute")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    STATE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATE_AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    OPENS_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VIEW_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    action: str
    state_before: _types_pb2.CauseState
    state_after: _types_pb2.CauseState
    reason: str
    by: str
    at_ms: int
    votes: int
    opens_at_ms: int
    closes_at_ms: int
    default_view: _types_pb2.RankingView
    default_view_attribute: str
    def __init__(self, entry_id: _Optional[str] = ..., action: _Optional[str] = ..., state_before: _Optional[_Union[_types_pb2.CauseState, str]] = ..., state_after: _Optional[_Union[_types_pb2.CauseState, str]] = ..., reason: _Optional[str] = ..., by: _Optional[str] = ..., at_ms: _Optional[int] = ..., votes: _Optional[int] = ..., opens_at_ms: _Optional[int] = ..., closes_at_ms: _Optional[int] = ..., default_view: _Optional[_Union[_types_pb2.RankingView, str]] = ..., default_view_attribute: _Optional[str] = ...) -> None: ...

class ListCausesRequest(_message.Message):
    __slots__ = ("after", "limit")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after: str
    limit: int
    def __init__(self, after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListCausesResponse(_message.Message):
    __slots__ = ("causes", "next_after")
    CAUSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    causes: _containers.RepeatedCompositeFieldContainer[_types_pb2.Cause]
    next_after: str
    def __init__(self, causes: _Optional[_Iterable[_Union[_types_pb2.Cause, _Mapping]]] = ..., next_after: _Optional[str] = ...) -> None: ...
