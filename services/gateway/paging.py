"""Offset/limit paging of lists returned to clients (proposals, ranking entries)."""

from __future__ import annotations

from pairwise.errors import InvalidArgument

MAX_LIMIT = 1000


def check_page(offset: int, limit: int, *, default_limit: int,
               max_limit: int = MAX_LIMIT) -> tuple[int, int]:
    """`(offset, limit)` with limit 0 replaced by `default_limit`.

    Raises InvalidArgument naming "offset" when it is negative, or "limit" when it is
    negative or above `max_limit`.
    """
    if offset < 0:
        raise InvalidArgument("offset", f"must be >= 0, got {offset}")
    if not 0 <= limit <= max_limit:
        raise InvalidArgument("limit", f"must be between 0 and {max_limit}, got {limit}")
    return offset, limit or default_limit
