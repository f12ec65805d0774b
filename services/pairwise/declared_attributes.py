"""The voter attributes a cause declares, read from Redis and kept a short while: gateway and
ingest check and encode every vote's attributes against them (pairwise.voter_attributes).

Stored as the `voter_attributes` field of the cause hash (JSON, `Declaration.to_json`).
Declarations only grow, so a cached one is never wrong about what it holds, only possibly
missing what was added since: a lookup that misses reads Redis again before refusing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

from redis.asyncio import Redis

from pairwise import keys
from pairwise.errors import InvalidArgument
from pairwise.voter_attributes import NO_ATTRIBUTES, Declaration

FIELD = "voter_attributes"
MARGINS_FIELD = "population_margins"
# A cached declaration is used this long (seconds) before being read again.
FRESH_S = 5.0
# A miss re-reads a declaration older than this: an admin's new value is usable at once,
# while a client sending unknown values costs at most this many reads a second per cause.
MISS_REREAD_S = 0.1
_MAX_CACHED = 10_000


class DeclaredAttributes:
    """The declarations of causes, cached per process."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.monotonic) -> None:
        self._redis = redis
        self._clock = clock
        self._declarations: dict[str, Declaration] = {}
        self._read_at: dict[str, float] = {}

    async def get(self, cause_id: str, *, max_age_s: float = FRESH_S) -> Declaration:
        """The cause's declaration, read within the last `max_age_s` seconds (empty for a
        cause without one, or unknown)."""
        now = self._clock()
        if now - self._read_at.get(cause_id, -math.inf) <= max_age_s:
            return self._declarations[cause_id]
        declaration = Declaration.from_json(await self._redis.hget(keys.cause(cause_id), FIELD))
        if len(self._declarations) >= _MAX_CACHED:
            self._declarations.clear()
            self._read_at.clear()
        self._declarations[cause_id], self._read_at[cause_id] = declaration, now
        return declaration

    def cached(self) -> Mapping[str, Declaration]:
        """The declarations read so far, whatever their age (for a check that reads a
        cause's again when a vote's attributes are missing from it); a live view."""
        return MappingProxyType(self._declarations)

    def forget(self, cause_id: str) -> None:
        """The declaration changed here: read it again next time."""
        self._read_at.pop(cause_id, None)

    async def encode(self, cause_id: str, attributes: Mapping[str, str],
                     field: str = "attributes") -> str:
        """The log code of `attributes` in the cause (voter_attributes.NO_ATTRIBUTES for
        none); InvalidArgument naming `field` when a key or value is not declared."""
        if not attributes:
            return NO_ATTRIBUTES
        try:
            return (await self.get(cause_id)).encode(attributes, field)
        except InvalidArgument:
            return (await self.get(cause_id, max_age_s=MISS_REREAD_S)).encode(attributes, field)
