"""The voters the rankers' detector flagged in a cause (ranker.voter_anomaly says why a voter
is flagged), and which of its reasons exclude a voter automatically: their Redis format, the
ranker's writer and the gateway's reader.

Keys (pairwise.keys, hash-tagged by cause):

    flags           hash: voter_id -> JSON {"reasons": [str], "score": float,
                    "detail": str, "votes": int, "at_ms": int, "auto_excluded": bool}
    flags_order     sorted set: the same voter ids, scored by when first flagged (ms)
    auto_exclusion  string: the reasons that exclude automatically, space-separated

A flag is advice to the admin and changes no count: the ranking changes only through an
exclusion (pairwise.exclusions), made by an admin or, for the reasons in `auto_exclusion`,
by the ranker itself, whose audit entry then names the detector as its author.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from pairwise import keys
from pairwise.errors import InvalidArgument, NotFound

# The detector's reasons (ranker.voter_anomaly.REASONS; repeated here so that the gateway
# checks a setting without importing the ranker).
REASONS = ("fit", "pace", "too_fast", "coordinated")
# The author of automatic exclusions in the audit trail.
DETECTOR = "detector"
# Flags one listing returns at most.
MAX_PAGE = 1_000
# Flags a cause keeps: past it new flags are not recorded (a farm of 100,000 voters is many
# times the size of those reported; each record is ~300 bytes).
MAX_PER_CAUSE = 100_000


@dataclass(frozen=True)
class FlaggedVoter:
    """One flagged voter, as listed."""

    voter_id: str
    reasons: tuple[str, ...]
    score: float
    detail: str
    votes: int
    at_ms: int
    auto_excluded: bool


def check_reasons(reasons: Iterable[str]) -> tuple[str, ...]:
    """The reasons without repeats, in REASONS order, or InvalidArgument naming the field."""
    wanted = set(reasons)
    unknown = sorted(wanted - set(REASONS))
    if unknown:
        raise InvalidArgument("auto_exclude_reasons", f"unknown reason {unknown[0][:40]!r}; "
                              f"one of {', '.join(REASONS)}")
    return tuple(reason for reason in REASONS if reason in wanted)


class VoterFlagStore:
    """Reads and writes one Redis' voter flags (every cause's)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def auto_exclusion(self, cause_id: str) -> tuple[str, ...]:
        """The reasons whose voters the cause excludes automatically."""
        raw = await self._client.get(keys.auto_exclusion(cause_id))
        return check_reasons(_text(raw or b"").split())

    async def set_auto_exclusion(self, cause_id: str, reasons: Sequence[str]) -> tuple[str, ...]:
        """Exclude the voters flagged for `reasons` automatically from now on (none: stop);
        NotFound for an unknown cause. Returns the checked reasons."""
        checked = check_reasons(reasons)
        if not await self._client.exists(keys.cause(cause_id)):
            raise NotFound(f"cause {cause_id!r} not found")
        await self._client.set(keys.auto_exclusion(cause_id), " ".join(checked))
        return checked

    async def record(self, cause_id: str, flagged: Sequence[FlaggedVoter]) -> int:
        """Record (or update) these voters' flags; keeps each one's first flag time. Returns
        how many were recorded (none past MAX_PER_CAUSE)."""
        held = int(await self._client.zcard(keys.voter_flags_order(cause_id)))
        flagged = flagged[:max(0, MAX_PER_CAUSE - held)]
        if not flagged:
            return 0
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.voter_flags(cause_id),
                      mapping={flag.voter_id: _encode(flag) for flag in flagged})
            pipe.zadd(keys.voter_flags_order(cause_id),
                      {flag.voter_id: flag.at_ms for flag in flagged}, nx=True)
            await pipe.execute()
        return len(flagged)

    async def page(self, cause_id: str, offset: int,
                   limit: int) -> tuple[list[FlaggedVoter], int]:
        """Flags `offset` .. `offset + limit - 1`, oldest first, and how many there are."""
        order = keys.voter_flags_order(cause_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrange(order, offset, offset + limit - 1)
            pipe.zcard(order)
            members, total = await pipe.execute()
        names = [_text(member) for member in members]
        records = await self._client.hmget(keys.voter_flags(cause_id), names) if names else []
        return [_decode(name, raw) for name, raw in zip(names, records, strict=True)
                if raw], int(total)


def _encode(flag: FlaggedVoter) -> str:
    return json.dumps({"reasons": list(flag.reasons), "score": flag.score,
                       "detail": flag.detail, "votes": flag.votes, "at_ms": flag.at_ms,
                       "auto_excluded": flag.auto_excluded})


def _decode(voter_id: str, raw: bytes | str) -> FlaggedVoter:
    record = json.loads(raw)
    return FlaggedVoter(voter_id=voter_id, reasons=tuple(record.get("reasons", ())),
                        score=float(record.get("score", 0.0)),
                        detail=str(record.get("detail", "")),
                        votes=int(record.get("votes", 0)), at_ms=int(record.get("at_ms", 0)),
                        auto_excluded=bool(record.get("auto_excluded", False)))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
