"""The voters and votes an admin excluded from a cause's official ranking, and the audit
trail of those decisions: their Redis format, the Lua that changes them, and their readers.

Nothing is deleted: an exclusion only names voters or vote ids whose votes, still in the log,
the ranker leaves out when it counts (ranker.vote_admission). Keys (pairwise.keys, all
hash-tagged by cause, changed together by one script):

    exclusions          hash: "voter:<voter_id>" or "vote:<vote_id>" -> JSON record
                        {"reason": str, "by": str, "at_ms": int}
    exclusions_order    sorted set of the same members, every score 0 (listings page it)
    exclusions_version  integer, bumped by every change that excluded or reinstated anything
    exclusions_audit    stream, one entry per such change: action ("exclude" | "reinstate"),
                        voters and votes (the ids it changed, space-separated), reason, by
                        (the admin's token id, then the name the request gave), at_ms, version

Excluding an id already excluded keeps its first record; reinstating one not excluded does
nothing; a request that changes nothing writes no audit entry and keeps the version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from pairwise import keys
from pairwise.errors import InvalidArgument, NotFound, ResourceExhausted
from pairwise.ids import VOTE_ID_PATTERN, VOTER_ID_PATTERN, check_id, is_entry_id
from pairwise.redis_scripts import Script, ScriptRunner

# Ids (voters and votes together) one request may name: one script call, ~130 KB at most.
MAX_IDS_PER_REQUEST = 1_000
# Exclusions a cause may hold: ~200 bytes each in Redis and ~100 in every ranker that loads
# the cause (20 MB, 10 MB), enough for a bot farm many times the size of those reported.
MAX_PER_CAUSE = 100_000
MAX_REASON_CHARS = 500
MAX_REQUESTED_BY_CHARS = 128
# Exclusions or audit entries one listing returns at most.
MAX_PAGE = 1_000

EXCLUDE = "exclude"
REINSTATE = "reinstate"
VOTER = "voter"
VOTE = "vote"


@dataclass(frozen=True)
class Exclusions:
    """The exclusions of a cause at `version` (0: none ever made)."""

    version: int = 0
    voters: frozenset[str] = field(default_factory=frozenset)
    votes: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.voters or self.votes)


@dataclass(frozen=True)
class Exclusion:
    """One excluded voter (`kind` VOTER) or vote (VOTE), with its record."""

    kind: str
    id: str
    reason: str
    by: str
    at_ms: int


@dataclass(frozen=True)
class Change:
    """What a request changed: `voters` and `votes` newly excluded (or reinstated), and the
    version the exclusions are at afterwards."""

    version: int
    voters: int
    votes: int


@dataclass(frozen=True)
class AuditEntry:
    """One change, as the audit trail keeps it (`entry_id` orders and pages them)."""

    entry_id: str
    action: str
    voter_ids: tuple[str, ...]
    vote_ids: tuple[str, ...]
    reason: str
    by: str
    at_ms: int
    version: int


@dataclass(frozen=True)
class Request:
    """A checked request to exclude or reinstate (see `check_request`)."""

    voter_ids: tuple[str, ...]
    vote_ids: tuple[str, ...]
    reason: str


def check_request(voter_ids: Sequence[str], vote_ids: Sequence[str], reason: str) -> Request:
    """The ids without repeats (in order) and the reason, or InvalidArgument naming the
    field: no id at all, more than MAX_IDS_PER_REQUEST, a malformed id, no reason or one
    longer than MAX_REASON_CHARS."""
    voters = tuple(dict.fromkeys(voter_ids))
    votes = tuple(dict.fromkeys(vote_ids))
    if not voters and not votes:
        raise InvalidArgument("voter_ids", "name at least one voter or vote id")
    if len(voters) + len(votes) > MAX_IDS_PER_REQUEST:
        raise InvalidArgument("voter_ids", f"at most {MAX_IDS_PER_REQUEST} voter and vote ids "
                              f"a request, got {len(voters) + len(votes)}")
    for voter_id in voters:
        check_id("voter_ids", voter_id, pattern=VOTER_ID_PATTERN)
    for vote_id in votes:
        check_id("vote_ids", vote_id, pattern=VOTE_ID_PATTERN)
    if not reason.strip():
        raise InvalidArgument("reason", "is required (the audit trail keeps it)")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgument("reason", f"at most {MAX_REASON_CHARS} characters, "
                              f"got {len(reason)}")
    return Request(voters, votes, reason)


_MAX_U64 = 2**64 - 1  # the largest part of a stream entry id


def check_audit_cursor(after: str) -> str:
    """`after` ("" or an audit entry id, as ListExclusionAudit pages them), or
    InvalidArgument."""
    if after and not is_entry_id(after):
        raise InvalidArgument("after", f"not an audit entry id (like 1700000000000-0): "
                              f"{after[:40]!r}")
    return after


def check_requested_by(value: str) -> str:
    """The optional name of the person behind an admin call, or InvalidArgument."""
    if len(value) > MAX_REQUESTED_BY_CHARS or any(c in value for c in "\r\n\t"):
        raise InvalidArgument("requested_by", f"one line of at most {MAX_REQUESTED_BY_CHARS} "
                              "characters")
    return value


# KEYS: cause, exclusions, exclusions_order, exclusions_version, exclusions_audit.
# ARGV: action, reason, by, at_ms, max_per_cause, number of voter ids, then the voter ids,
# then the vote ids (no repeats). Returns {'no_cause'}, {'full', held} (nothing written),
# or {'ok', version, voters changed, votes changed}.
_CHANGE = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local action, n_voters = ARGV[1], tonumber(ARGV[6])
local members = {}
for k = 7, #ARGV do
  members[#members + 1] = (k < 7 + n_voters and 'voter:' or 'vote:') .. ARGV[k]
end
local changed = {}
for _, member in ipairs(members) do
  local present = redis.call('HEXISTS', KEYS[2], member) == 1
  if present == (action == 'reinstate') then changed[#changed + 1] = member end
end
if #changed == 0 then
  return {'ok', tonumber(redis.call('GET', KEYS[4]) or '0'), 0, 0}
end
if action == 'exclude' then
  local held = redis.call('HLEN', KEYS[2])
  if held + #changed > tonumber(ARGV[5]) then return {'full', held} end
  local record = cjson.encode({reason = ARGV[2], by = ARGV[3], at_ms = tonumber(ARGV[4])})
  for _, member in ipairs(changed) do
    redis.call('HSET', KEYS[2], member, record)
    redis.call('ZADD', KEYS[3], 0, member)
  end
else
  for _, member in ipairs(changed) do
    redis.call('HDEL', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
  end
end
local voters, votes = {}, {}
for _, member in ipairs(changed) do
  if string.sub(member, 1, 6) == 'voter:' then voters[#voters + 1] = string.sub(member, 7)
  else votes[#votes + 1] = string.sub(member, 6) end
end
local version = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[5], '*', 'action', action, 'voters', table.concat(voters, ' '),
           'votes', table.concat(votes, ' '), 'reason', ARGV[2], 'by', ARGV[3],
           'at_ms', ARGV[4], 'version', version)
return {'ok', version, #voters, #votes}
""")


def loaded(version: bytes | str | None, members: list[bytes | str]) -> Exclusions:
    """The exclusions from their `version` (GET of keys.exclusions_version) and the `members`
    of their order (ZRANGE of keys.exclusions_order), read together."""
    voters: list[str] = []
    votes: list[str] = []
    for member in map(_text, members):
        kind, _, ident = member.partition(":")
        (voters if kind == VOTER else votes).append(ident)
    return Exclusions(int(version or 0), frozenset(voters), frozenset(votes))


class ExclusionStore:
    """The gateway's side of every cause's exclusions: changes, listings, the audit trail."""

    def __init__(self, client: aioredis.Redis, scripts: ScriptRunner) -> None:
        self._client = client
        self._scripts = scripts

    async def change(self, cause_id: str, action: str, request: Request, *, by: str,
                     at_ms: int) -> Change:
        """Exclude (`action` EXCLUDE) or reinstate (REINSTATE) the request's voters and
        votes, recording who (`by`), when and why in the audit trail, all in one script.

        Raises NotFound for an unknown cause and ResourceExhausted when the cause would
        hold more than MAX_PER_CAUSE exclusions (nothing is written then).
        """
        if action not in (EXCLUDE, REINSTATE):
            raise ValueError(f"unknown action {action!r}")
        reply = await self._scripts.run_now(
            _CHANGE,
            [keys.cause(cause_id), keys.exclusions(cause_id), keys.exclusions_order(cause_id),
             keys.exclusions_version(cause_id), keys.exclusions_audit(cause_id)],
            [action, request.reason, by, at_ms, MAX_PER_CAUSE, len(request.voter_ids),
             *request.voter_ids, *request.vote_ids])
        status = _text(reply[0])
        if status == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        if status == "full":
            raise ResourceExhausted(f"cause {cause_id!r} holds {int(reply[1])} exclusions; at "
                                    f"most {MAX_PER_CAUSE} (reinstate some first)")
        return Change(version=int(reply[1]), voters=int(reply[2]), votes=int(reply[3]))

    async def page(self, cause_id: str, offset: int,
                   limit: int) -> tuple[list[Exclusion], int, int]:
        """Exclusions `offset` .. `offset + limit - 1` (votes, then voters, each in order of
        id), how many there are, and their version; read together (one MULTI)."""
        order = keys.exclusions_order(cause_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrange(order, offset, offset + limit - 1)
            pipe.zcard(order)
            pipe.get(keys.exclusions_version(cause_id))
            members, total, version = await pipe.execute()
        names = [_text(member) for member in members]
        records = await self._client.hmget(keys.exclusions(cause_id), names) if names else []
        listed = []
        for name, raw in zip(names, records, strict=True):
            kind, _, ident = name.partition(":")
            record = json.loads(raw) if raw else {}
            listed.append(Exclusion(kind=kind, id=ident, reason=record.get("reason", ""),
                                    by=record.get("by", ""),
                                    at_ms=int(record.get("at_ms", 0))))
        return listed, int(total), int(version or 0)

    async def audit(self, cause_id: str, after: str, limit: int) -> list[AuditEntry]:
        """Up to `limit` audit entries after entry id `after` ("" = from the first), oldest
        first."""
        if after == f"{_MAX_U64}-{_MAX_U64}":
            return []  # nothing can follow it (and Redis refuses the exclusive range)
        start = f"({after}" if after else "-"
        raw: list[tuple[bytes, dict[bytes, bytes]]] = await self._client.xrange(  # type: ignore[assignment]
            keys.exclusions_audit(cause_id), start, "+", count=limit)
        entries = []
        for entry_id, fields in raw:
            text = {_text(name): _text(value) for name, value in fields.items()}
            entries.append(AuditEntry(
                entry_id=_text(entry_id), action=text.get("action", ""),
                voter_ids=tuple(text.get("voters", "").split()),
                vote_ids=tuple(text.get("votes", "").split()), reason=text.get("reason", ""),
                by=text.get("by", ""), at_ms=int(text.get("at_ms", 0) or 0),
                version=int(text.get("version", 0) or 0)))
        return entries


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
