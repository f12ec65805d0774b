from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CauseState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAUSE_STATE_UNSPECIFIED: _ClassVar[CauseState]
    CAUSE_STATE_SCHEDULED: _ClassVar[CauseState]
    CAUSE_STATE_OPEN: _ClassVar[CauseState]
    CAUSE_STATE_CLOSED: _ClassVar[CauseState]
    CAUSE_STATE_ARCHIVED: _ClassVar[CauseState]

class PairSelection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAIR_SELECTION_UNSPECIFIED: _ClassVar[PairSelection]
    PAIR_SELECTION_UNIFORM: _ClassVar[PairSelection]
    PAIR_SELECTION_ADAPTIVE: _ClassVar[PairSelection]

class ProposalStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROPOSAL_STATUS_UNSPECIFIED: _ClassVar[ProposalStatus]
    PROPOSAL_STATUS_PENDING: _ClassVar[ProposalStatus]
    PROPOSAL_STATUS_ACCEPTED: _ClassVar[ProposalStatus]
    PROPOSAL_STATUS_REJECTED: _ClassVar[ProposalStatus]

class Choice(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHOICE_UNSPECIFIED: _ClassVar[Choice]
    CHOICE_LEFT: _ClassVar[Choice]
    CHOICE_RIGHT: _ClassVar[Choice]
    CHOICE_TIE: _ClassVar[Choice]
    CHOICE_SKIP: _ClassVar[Choice]

class RankingView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RANKING_VIEW_UNSPECIFIED: _ClassVar[RankingView]
    RANKING_VIEW_RAW: _ClassVar[RankingView]
    RANKING_VIEW_REPRESENTATIVE: _ClassVar[RankingView]
    RANKING_VIEW_CONSENSUS: _ClassVar[RankingView]

class SkipReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SKIP_REASON_UNSPECIFIED: _ClassVar[SkipReason]
    SKIP_REASON_LIKE_BOTH: _ClassVar[SkipReason]
    SKIP_REASON_LIKE_NEITHER: _ClassVar[SkipReason]
    SKIP_REASON_UNFAMILIAR_LEFT: _ClassVar[SkipReason]
    SKIP_REASON_UNFAMILIAR_RIGHT: _ClassVar[SkipReason]
    SKIP_REASON_UNFAMILIAR_BOTH: _ClassVar[SkipReason]
    SKIP_REASON_SAME: _ClassVar[SkipReason]
    SKIP_REASON_CANNOT_DECIDE: _ClassVar[SkipReason]
    SKIP_REASON_OTHER: _ClassVar[SkipReason]
CAUSE_STATE_UNSPECIFIED: CauseState
CAUSE_STATE_SCHEDULED: CauseState
CAUSE_STATE_OPEN: CauseState
CAUSE_STATE_CLOSED: CauseState
CAUSE_STATE_ARCHIVED: CauseState
PAIR_SELECTION_UNSPECIFIED: PairSelection
PAIR_SELECTION_UNIFORM: PairSelection
PAIR_SELECTION_ADAPTIVE: PairSelection
PROPOSAL_STATUS_UNSPECIFIED: ProposalStatus
PROPOSAL_STATUS_PENDING: ProposalStatus
PROPOSAL_STATUS_ACCEPTED: ProposalStatus
PROPOSAL_STATUS_REJECTED: ProposalStatus
CHOICE_UNSPECIFIED: Choice
CHOICE_LEFT: Choice
CHOICE_RIGHT: Choice
CHOICE_TIE: Choice
CHOICE_SKIP: Choice
RANKING_VIEW_UNSPECIFIED: RankingView
RANKING_VIEW_RAW: RankingView
RANKING_VIEW_REPRESENTATIVE: RankingView
RANKING_VIEW_CONSENSUS: RankingView
SKIP_REASON_UNSPECIFIED: SkipReason
SKIP_REASON_LIKE_BOTH: SkipReason
SKIP_REASON_LIKE_NEITHER: SkipReason
SKIP_REASON_UNFAMILIAR_LEFT: SkipReason
SKIP_REASON_UNFAMILIAR_RIGHT: SkipReason
SKIP_REASON_UNFAMILIAR_BOTH: SkipReason
SKIP_REASON_SAME: SkipReason
SKIP_REASON_CANNOT_DECIDE: SkipReason
SKIP_REASON_OTHER: SkipReason

class Cause(_message.Message):
    __slots__ = ("cause_id", "title", "auto_accept_proposals", "created_at_ms", "proposals_accepted", "proposals_pending", "proposals_rejected", "pair_selection", "top_k", "voter_attributes", "state", "opens_at_ms", "closes_at_ms", "closed_at_ms", "votes_final", "archived_at_ms", "archive", "default_view", "default_view_attribute")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AUTO_ACCEPT_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_PENDING_FIELD_NUMBER: _ClassVar[int]
    PROPOSALS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    PAIR_SELECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    VOTER_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OPENS_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VOTES_FINAL_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VIEW_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    title: str
    auto_accept_proposals: bool
    created_at_ms: int
    proposals_accepted: int
    proposals_pending: int
    proposals_rejected: int
    pair_selection: PairSelection
    top_k: int
    voter_attributes: _containers.RepeatedCompositeFieldContainer[VoterAttribute]
    state: CauseState
    opens_at_ms: int
    closes_at_ms: int
    closed_at_ms: int
    votes_final: int
    archived_at_ms: int
    archive: str
    default_view: RankingView
    default_view_attribute: str
    def __init__(self, cause_id: _Optional[str] = ..., title: _Optional[str] = ..., auto_accept_proposals: _Optional[bool] = ..., created_at_ms: _Optional[int] = ..., proposals_accepted: _Optional[int] = ..., proposals_pending: _Optional[int] = ..., proposals_rejected: _Optional[int] = ..., pair_selection: _Optional[_Union[PairSelection, str]] = ..., top_k: _Optional[int] = ..., voter_attributes: _Optional[_Iterable[_Union[VoterAttribute, _Mapping]]] = ..., state: _Optional[_Union[CauseState, str]] = ..., opens_at_ms: _Optional[int] = ..., closes_at_ms: _Optional[int] = ..., closed_at_ms: _Optional[int] = ..., votes_final: _Optional[int] = ..., archived_at_ms: _Optional[int] = ..., archive: _Optional[str] = ..., default_view: _Optional[_Union[RankingView, str]] = ..., default_view_attribute: _Optional[str] = ...) -> None: ...

class VoterAttribute(_message.Message):
    __slots__ = ("key", "values")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    key: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class NewProposal(_message.Message):
    __slots__ = ("proposal_id", "text", "author_id")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    text: str
    author_id: str
    def __init__(self, proposal_id: _Optional[str] = ..., text: _Optional[str] = ..., author_id: _Optional[str] = ...) -> None: ...

class Proposal(_message.Message):
    __slots__ = ("proposal_id", "cause_id", "text", "author_id", "status", "moderation_reason", "created_at_ms")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODERATION_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    cause_id: str
    text: str
    author_id: str
    status: ProposalStatus
    moderation_reason: str
    created_at_ms: int
    def __init__(self, proposal_id: _Optional[str] = ..., cause_id: _Optional[str] = ..., text: _Optional[str] = ..., author_id: _Optional[str] = ..., status: _Optional[_Union[ProposalStatus, str]] = ..., moderation_reason: _Optional[str] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class ImportedVote(_message.Message):
    __slots__ = ("vote_id", "cause_id", "voter_id", "winner_id", "loser_id", "tie", "attributes", "skip", "untrusted")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VOTE_ID_FIELD_NUMBER: _ClassVar[int]
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTER_ID_FIELD_NUMBER: _ClassVar[int]
    WINNER_ID_FIELD_NUMBER: _ClassVar[int]
    LOSER_ID_FIELD_NUMBER: _ClassVar[int]
    TIE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    UNTRUSTED_FIELD_NUMBER: _ClassVar[int]
    vote_id: str
    cause_id: str
    voter_id: str
    winner_id: str
    loser_id: str
    tie: bool
    attributes: _containers.ScalarMap[str, str]
    skip: bool
    untrusted: bool
    def __init__(self, vote_id: _Optional[str] = ..., cause_id: _Optional[str] = ..., voter_id: _Optional[str] = ..., winner_id: _Optional[str] = ..., loser_id: _Optional[str] = ..., tie: _Optional[bool] = ..., attributes: _Optional[_Mapping[str, str]] = ..., skip: _Optional[bool] = ..., untrusted: _Optional[bool] = ...) -> None: ...

class VoteError(_message.Message):
    __slots__ = ("index", "vote_id", "reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VOTE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    vote_id: str
    reason: str
    def __init__(self, index: _Optional[int] = ..., vote_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RankedProposal(_message.Message):
    __slots__ = ("proposal_id", "rank", "ability", "std_error", "ci_low", "ci_high", "score", "wins", "losses", "ties", "appearances", "skips", "text")
    PROPOSAL_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    ABILITY_FIELD_NUMBER: _ClassVar[int]
    STD_ERROR_FIELD_NUMBER: _ClassVar[int]
    CI_LOW_FIELD_NUMBER: _ClassVar[int]
    CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WINS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    APPEARANCES_FIELD_NUMBER: _ClassVar[int]
    SKIPS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    proposal_id: str
    rank: int
    ability: float
    std_error: float
    ci_low: float
    ci_high: float
    score: float
    wins: int
    losses: int
    ties: int
    appearances: int
    skips: int
    text: str
    def __init__(self, proposal_id: _Optional[str] = ..., rank: _Optional[int] = ..., ability: _Optional[float] = ..., std_error: _Optional[float] = ..., ci_low: _Optional[float] = ..., ci_high: _Optional[float] = ..., score: _Optional[float] = ..., wins: _Optional[int] = ..., losses: _Optional[int] = ..., ties: _Optional[int] = ..., appearances: _Optional[int] = ..., skips: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class Ranking(_message.Message):
    __slots__ = ("cause_id", "votes_counted", "total_proposals", "entries", "fitted_at_ms", "prior_strength", "last_vote_entry_id", "votes_untrusted", "votes_excluded", "exclusions_version", "segment", "segment_votes", "segment_without_votes", "view", "view_attribute", "weighting", "effective_votes", "trimmed_votes", "margin_gap", "weighted_keys")
    CAUSE_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_COUNTED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PROPOSALS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    FITTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    LAST_VOTE_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    VOTES_UNTRUSTED_FIELD_NUMBER: _ClassVar[int]
    VOTES_EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_VOTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_WITHOUT_VOTES_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEW_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTING_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_VOTES_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_VOTES_FIELD_NUMBER: _ClassVar[int]
    MARGIN_GAP_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_KEYS_FIELD_NUMBER: _ClassVar[int]
    cause_id: str
    votes_counted: int
    total_proposals: int
    entries: _containers.RepeatedCompositeFieldContainer[RankedProposal]
    fitted_at_ms: int
    prior_strength: float
    last_vote_entry_id: str
    votes_untrusted: int
    votes_excluded: int
    exclusions_version: int
    segment: Segment
    segment_votes: int
    segment_without_votes: bool
    view: RankingView
    view_attribute: str
    weighting: str
    effective_votes: float
    trimmed_votes: int
    margin_gap: float
    weighted_keys: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, cause_id: _Optional[str] = ..., votes_counted: _Optional[int] = ..., total_proposals: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[RankedProposal, _Mapping]]] = ..., fitted_at_ms: _Optional[int] = ..., prior_strength: _Optional[float] = ..., last_vote_entry_id: _Optional[str] = ..., votes_untrusted: _Optional[int] = ..., votes_excluded: _Optional[int] = ..., exclusions_version: _Optional[int] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., segment_votes: _Optional[int] = ..., segment_without_votes: _Optional[bool] = ..., view: _Optional[_Union[RankingView, str]] = ..., view_attribute: _Optional[str] = ..., weighting: _Optional[str] = ..., effective_votes: _Optional[float] = ..., trimmed_votes: _Optional[int] = ..., margin_gap: _Optional[float] = ..., weighted_keys: _Optional[_Iterable[int]] = ...) -> None: ...

class SkipReasonCount(_message.Message):
    __slots__ = ("reason", "count", "code")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    code: SkipReason
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ..., code: _Optional[_Union[SkipReason, str]] = ...) -> None: ...

class FitSettings(_message.Message):
    __slots__ = ("engine", "prior_strength", "tolerance", "max_iterations", "ties", "counted_votes", "warm_start", "catalog_version", "iterations")
    class EngineEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PRIOR_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    TIES_FIELD_NUMBER: _ClassVar[int]
    COUNTED_VOTES_FIELD_NUMBER: _ClassVar[int]
    WARM_START_FIELD_NUMBER: _ClassVar[int]
    CATALOG_VERSION_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    engine: _containers.ScalarMap[str, str]
    prior_strength: float
    tolerance: float
    max_iterations: int
    ties: str
    counted_votes: str
    warm_start: bool
    catalog_version: int
    iterations: int
    def __init__(self, engine: _Optional[_Mapping[str, str]] = ..., prior_strength: _Optional[float] = ..., tolerance: _Optional[float] = ..., max_iterations: _Optional[int] = ..., ties: _Optional[str] = ..., counted_votes: _Optional[str] = ..., warm_start: _Optional[bool] = ..., catalog_version: _Optional[int] = ..., iterations: _Optional[int] = ...) -> None: ...

class RankingExportPage(_message.Message):
    __slots__ = ("ranking", "fit_start", "settings")
    RANKING_FIELD_NUMBER: _ClassVar[int]
    FIT_START_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ranking: Ranking
    fit_start: _containers.RepeatedScalarFieldContainer[float]
    settings: FitSettings
    def __init__(self, ranking: _Optional[_Union[Ranking, _Mapping]] = ..., fit_start: _Optional[_Iterable[float]] = ..., settings: _Optional[_Union[FitSettings, _Mapping]] = ...) -> None: ...
