"""Domain errors every service raises; the gRPC edge maps each to one status code.

    PairwiseError
    ├── InvalidArgument      a malformed field (names the field)      -> INVALID_ARGUMENT
    ├── NotFound             unknown cause or proposal                -> NOT_FOUND
    ├── AlreadyExists        a client-chosen id already taken         -> ALREADY_EXISTS
    ├── FailedPrecondition   expired or used prompt token, no pair    -> FAILED_PRECONDITION
    ├── PermissionDenied     authenticated but not allowed            -> PERMISSION_DENIED
    ├── Unauthenticated      missing or wrong bearer token            -> UNAUTHENTICATED
    ├── ResourceExhausted    rate limit, a cap reached                -> RESOURCE_EXHAUSTED
    └── Unavailable          Redis down, buffer full (retryable)      -> UNAVAILABLE

Domain code raises these and never imports grpc; `pairwise.grpc_server` does the mapping.
"""

from __future__ import annotations


class PairwiseError(Exception):
    """Base class: `str(error)` is the message the client sees."""


class InvalidArgument(PairwiseError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(PairwiseError):
    pass


class AlreadyExists(PairwiseError):
    pass


class FailedPrecondition(PairwiseError):
    pass


class PermissionDenied(PairwiseError):
    pass


class Unauthenticated(PairwiseError):
    pass


class ResourceExhausted(PairwiseError):
    pass


class Unavailable(PairwiseError):
    pass
