"""A cause's life — SCHEDULED, OPEN, CLOSED, ARCHIVED — its Redis format, the Lua that every
vote, pair and lease script asks it of, the scripts that change it, and its audit trail.

The state is kept in the cause hash (`keys.cause`), beside the title:

    state             absent: the clock decides (SCHEDULED before opens_at_ms, CLOSED from
                      closes_at_ms, OPEN between); "CLOSED" (CloseCause) or "ARCHIVED"
    opens_at_ms       Unix ms, absent or 0: none
    closes_at_ms      Unix ms, absent or 0: none
    closed_at_ms      when CloseCause closed it
    votes_final       ARCHIVED: the votes its log held (the log itself is in the archive)
    last_entry_final  ARCHIVED: the id of the log's last entry
    archived_at_ms, archive
                      ARCHIVED: when, and the folder the archive was written to

Every time is Redis' own (TIME, in the scripts), the clock that also stamps the log's
entries: a vote script asks `cause_state` in the same script that appends the vote, so a
close — by CloseCause or by the clock — falls between two votes, never inside one. A vote
acknowledged before it is in the log; none is after it, so the log's votes then (the
`vote_stats` "accepted" counter, which counts exactly the votes appended) are the final
ranking's `votes_counted`. Replays of votes recorded before the close still get their
receipts (until the cause is archived and its receipts released).

The audit trail (`keys.cause_audit`) is a stream, one entry per change: action ("schedule",
"close", "reopen", "archive", "default_view"), before / after (states), reason, by (the admin
token's id, then the name the request gave), at_ms, votes (in the log then), opens_at_ms,
closes_at_ms; and for "default_view", the view chosen and its attribute.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis.asyncio as aioredis

from pairwise import ids, keys
from pairwise.errors import FailedPrecondition, InvalidArgument, NotFound
from pairwise.redis_scripts import Script, ScriptRunner

MAX_REASON_CHARS = 500
MAX_REQUESTED_BY_CHARS = 128
# Audit entries one listing returns at most.
MAX_PAGE = 1_000


class State(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    ARCHIVED = "ARCHIVED"


# Lua defining `now_ms()` (Redis' clock) and `cause_state(cause_key)`, the state now of the
# cause whose hash is `cause_key` (which must exist): every script that takes votes, shows
# pairs, loads a cause or changes its life starts with this text.
STATE_LUA = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function cause_state(cause_key)
  local f = redis.call('HMGET', cause_key, 'state', 'opens_at_ms', 'closes_at_ms')
  if f[1] then return f[1] end
  local now, closes = now_ms(), tonumber(f[3] or '0')
  if closes > 0 and now >= closes then return 'CLOSED' end
  if tonumber(f[2] or '0') > now then return 'SCHEDULED' end
  return 'OPEN'
end
"""

# Lua defining `audit(audit_key, action, before, after, reason, by, at, votes, cause_key)`:
# appends one audit entry with the cause's schedule after the change.
AUDIT_LUA = """
local function audit(key, action, before, after, reason, by, at, votes, cause_key)
  local s = redis.call('HMGET', cause_key, 'opens_at_ms', 'closes_at_ms')
  redis.call('XADD', key, '*', 'action', action, 'before', before, 'after', after,
             'reason', reason, 'by', by, 'at_ms', at, 'votes', votes,
             'opens_at_ms', s[1] or '0', 'closes_at_ms', s[2] or '0')
end
"""

# KEYS: cause, vote_stats, audit. ARGV: reason, by.
# Returns {'no_cause'}, {'state', state} (not OPEN or SCHEDULED: nothing written) or {'ok'}.
_CLOSE = Script(STATE_LUA + AUDIT_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local state = cause_state(KEYS[1])
if state ~= 'OPEN' and state ~= 'SCHEDULED' then return {'state', state} end
local now = now_ms()
redis.call('HSET', KEYS[1], 'state', 'CLOSED', 'closed_at_ms', now)
audit(KEYS[3], 'close', state, 'CLOSED', ARGV[1], ARGV[2], now,
      redis.call('HGET', KEYS[2], 'accepted') or '0', KEYS[1])
return {'ok'}
""")

# KEYS: cause, vote_stats, audit. ARGV: reason, by, closes_at_ms (0: none).
# Returns {'no_cause'}, {'state', state} (not CLOSED: nothing written) or {'ok'}. A closing
# time not in the future is cleared: it would close the cause again at once.
_REOPEN = Script(STATE_LUA + AUDIT_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local state = cause_state(KEYS[1])
if state ~= 'CLOSED' then return {'state', state} end
local now = now_ms()
redis.call('HDEL', KEYS[1], 'state', 'closed_at_ms')
if tonumber(ARGV[3]) > now then redis.call('HSET', KEYS[1], 'closes_at_ms', ARGV[3])
else redis.call('HDEL', KEYS[1], 'closes_at_ms') end
audit(KEYS[3], 'reopen', state, cause_state(KEYS[1]), ARGV[1], ARGV[2], now,
      redis.call('HGET', KEYS[2], 'accepted') or '0', KEYS[1])
return {'ok'}
""")

# KEYS: cause, vote_stats, audit. ARGV: opens_at_ms, closes_at_ms (0: none), reason, by.
# Returns {'no_cause'}, {'state', state} (CLOSED or ARCHIVED: nothing written), {'past', now}
# (a closing time not in the future: CloseCause closes now) or {'ok'}.
_SCHEDULE = Script(STATE_LUA + AUDIT_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local state = cause_state(KEYS[1])
if state ~= 'OPEN' and state ~= 'SCHEDULED' then return {'state', state} end
local now = now_ms()
local closes = tonumber(ARGV[2])
if closes > 0 and closes <= now then return {'past', now} end
for i, field in ipairs({'opens_at_ms', 'closes_at_ms'}) do
  if tonumber(ARGV[i]) > 0 then redis.call('HSET', KEYS[1], field, ARGV[i])
  else redis.call('HDEL', KEYS[1], field) end
end
audit(KEYS[3], 'schedule', state, cause_state(KEYS[1]), ARGV[3], ARGV[4], now,
      redis.call('HGET', KEYS[2], 'accepted') or '0', KEYS[1])
return {'ok'}
""")

# KEYS: cause, vote_stats, votes. Returns {'no_cause'} or {'ok', state, opens_at_ms,
# closes_at_ms, closed_at_ms, votes, last entry id, archived_at_ms, archive}: for a cause
# not archived, votes and the last entry are the log's now.
# KEYS: cause, vote_stats, audit. ARGV: view, attribute, reason, by.
# Returns {'no_cause'}, {'state', 'ARCHIVED'} (nothing written) or {'ok'}. The audit entry
# carries the view chosen beside the usual fields (the state is unchanged).
_SET_DEFAULT_VIEW = Script(STATE_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local state = cause_state(KEYS[1])
if state == 'ARCHIVED' then return {'state', state} end
local now = now_ms()
redis.call('HSET', KEYS[1], 'default_view', ARGV[1], 'default_view_attribute', ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'opens_at_ms', 'closes_at_ms')
redis.call('XADD', KEYS[3], '*', 'action', 'default_view', 'before', state, 'after', state,
           'reason', ARGV[3], 'by', ARGV[4], 'at_ms', now,
           'votes', redis.call('HGET', KEYS[2], 'accepted') or '0',
           'opens_at_ms', s[1] or '0', 'closes_at_ms', s[2] or '0',
           'default_view', ARGV[1], 'default_view_attribute', ARGV[2])
return {'ok'}
""")

_READ = Script(STATE_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local state = cause_state(KEYS[1])
local f = redis.call('HMGET', KEYS[1], 'opens_at_ms', 'closes_at_ms', 'closed_at_ms',
                     'votes_final', 'last_entry_final', 'archived_at_ms', 'archive')
local votes, last = f[4], f[5]
if state ~= 'ARCHIVED' then
  votes = redis.call('HGET', KEYS[2], 'accepted')
  local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
  last = top[1] and top[1][1] or ''
end
local closed_at = f[3]
if state == 'CLOSED' and not closed_at then closed_at = f[2] end
return {'ok', state, f[1] or '0', f[2] or '0', closed_at or '0', votes or '0', last or '',
        f[6] or '0', f[7] or ''}
""")


@dataclass(frozen=True)
class Life:
    """Where a cause is in its life, read at one moment.

    `votes` and `last_entry_id` are the log's votes and last entry id then (kept in the
    cause hash once ARCHIVED): for a CLOSED or ARCHIVED cause, the final ranking's
    `votes_counted` and `last_vote_entry_id`. `closed_at_ms` is the closing time once closed
    by the clock.
    """

    state: State
    opens_at_ms: int = 0
    closes_at_ms: int = 0
    closed_at_ms: int = 0
    votes: int = 0
    last_entry_id: str = ""
    archived_at_ms: int = 0
    archive: str = ""

    @property
    def closed(self) -> bool:
        return self.state in (State.CLOSED, State.ARCHIVED)

    def is_final(self, votes_counted: int) -> bool:
        """Whether a ranking that counted `votes_counted` votes counts every vote the cause
        took: it will not change with votes any more."""
        return self.closed and votes_counted >= self.votes


@dataclass(frozen=True)
class AuditEntry:
    entry_id: str
    action: str
    before: str
    after: str
    reason: str
    by: str
    at_ms: int
    votes: int
    opens_at_ms: int
    closes_at_ms: int
    # "default_view" entries: the view chosen ("RAW", "REPRESENTATIVE", "CONSENSUS") and
    # its attribute.
    default_view: str = ""
    default_view_attribute: str = ""


def refusal(cause_id: str, state: str) -> FailedPrecondition:
    """What a vote or a pair on a cause not OPEN is answered."""
    return FailedPrecondition(not_open(cause_id, state))


def not_open(cause_id: str, state: str) -> str:
    """Why a cause in `state` (not OPEN) takes no vote: "cause 'x' is CLOSED: ..."."""
    why = {"SCHEDULED": "it is not open yet (see its opens_at_ms)",
           "CLOSED": "it takes no votes (ReopenCause opens it again)",
           "ARCHIVED": "it takes no votes and its votes are archived"}.get(
               state, "it takes no votes")
    return f"cause {cause_id!r} is {state}: {why}"


def check_reason(reason: str, *, required: bool) -> str:
    if required and not reason.strip():
        raise InvalidArgument("reason", "is required (the audit trail keeps it)")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidArgument("reason", f"at most {MAX_REASON_CHARS} characters, "
                              f"got {len(reason)}")
    return reason


def check_requested_by(value: str) -> str:
    if len(value) > MAX_REQUESTED_BY_CHARS or any(c in value for c in "\r\n\t"):
        raise InvalidArgument("requested_by", f"one line of at most {MAX_REQUESTED_BY_CHARS} "
                              "characters")
    return value


def check_schedule(opens_at_ms: int, closes_at_ms: int) -> tuple[int, int]:
    """The schedule, or InvalidArgument: negative times, or a closing time not after the
    opening time."""
    if opens_at_ms < 0:
        raise InvalidArgument("opens_at_ms", f"must be >= 0, got {opens_at_ms}")
    if closes_at_ms < 0:
        raise InvalidArgument("closes_at_ms", f"must be >= 0, got {closes_at_ms}")
    if opens_at_ms and closes_at_ms and closes_at_ms <= opens_at_ms:
        raise InvalidArgument("closes_at_ms", f"{closes_at_ms} is not after opens_at_ms "
                              f"{opens_at_ms}")
    return opens_at_ms, closes_at_ms


def check_audit_cursor(after: str) -> str:
    if after and not ids.is_entry_id(after):
        raise InvalidArgument("after", f"not an audit entry id (like 1700000000000-0): "
                              f"{after[:40]!r}")
    return after


class LifeStore:
    """The gateway's side of every cause's life: reads, changes, the audit trail."""

    def __init__(self, client: aioredis.Redis, scripts: ScriptRunner) -> None:
        self._client = client
        self._scripts = scripts

    async def read(self, cause_id: str) -> Life:
        """The cause's life now; NotFound for an unknown cause. Reads made at about the same
        time share a round trip (reads ask it on every GetRanking)."""
        reply = await self._scripts.run(
            _READ, [keys.cause(cause_id), keys.vote_stats(cause_id), keys.votes(cause_id)], [])
        if _text(reply[0]) == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        (state, opens, closes, closed, votes, last, archived, archive) = map(_text, reply[1:9])
        return Life(State(state), int(opens), int(closes), int(closed), int(votes), last,
                    int(archived), archive)

    async def close(self, cause_id: str, *, reason: str, by: str) -> None:
        """Close the cause now. NotFound, or FailedPrecondition naming the state when it is
        not OPEN or SCHEDULED."""
        await self._change(_CLOSE, cause_id, [reason, by], "close it")

    async def reopen(self, cause_id: str, *, reason: str, by: str, closes_at_ms: int) -> None:
        """Open a CLOSED cause again, to close at `closes_at_ms` (0: none; a past one is
        cleared). NotFound, or FailedPrecondition naming the state."""
        await self._change(_REOPEN, cause_id, [reason, by, closes_at_ms], "reopen it")

    async def schedule(self, cause_id: str, opens_at_ms: int, closes_at_ms: int, *,
                       reason: str, by: str) -> None:
        """Set when the cause opens and closes (0: none). NotFound, FailedPrecondition for a
        cause CLOSED or ARCHIVED, InvalidArgument for a closing time already past."""
        await self._change(_SCHEDULE, cause_id, [opens_at_ms, closes_at_ms, reason, by],
                           "schedule it")

    async def set_default_view(self, cause_id: str, view: str, attribute: str, *,
                               reason: str, by: str) -> None:
        """Make `view` (with `attribute`) the cause's default ranking view, with an audit
        entry "default_view" in the same step. NotFound, or FailedPrecondition for an
        ARCHIVED cause (only its raw final ranking is kept)."""
        await self._change(_SET_DEFAULT_VIEW, cause_id, [view, attribute, reason, by],
                           "choose its default ranking view (only its raw final ranking "
                           "is kept)")

    async def _change(self, script: Script, cause_id: str, args: list[str | int],
                      what: str) -> None:
        reply = await self._scripts.run_now(
            script, [keys.cause(cause_id), keys.vote_stats(cause_id),
                     keys.cause_audit(cause_id)], args)
        status = _text(reply[0])
        if status == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        if status == "state":
            raise FailedPrecondition(f"cause {cause_id!r} is {_text(reply[1])}: cannot {what}")
        if status == "past":
            raise InvalidArgument("closes_at_ms", f"is not in the future (now {int(reply[1])} "
                                  "ms): CloseCause closes a cause now")

    async def audit(self, cause_id: str, after: str, limit: int) -> list[AuditEntry]:
        """Up to `limit` audit entries after entry id `after` ("" = from the first)."""
        if after == ids.LAST_ENTRY_ID:
            return []
        start = f"({after}" if after else "-"
        raw: list[tuple[bytes, dict[bytes, bytes]]] = await self._client.xrange(  # type: ignore[assignment]
            keys.cause_audit(cause_id), start, "+", count=limit)
        entries = []
        for entry_id, fields in raw:
            text = {_text(name): _text(value) for name, value in fields.items()}
            entries.append(AuditEntry(
                entry_id=_text(entry_id), action=text.get("action", ""),
                before=text.get("before", ""), after=text.get("after", ""),
                reason=text.get("reason", ""), by=text.get("by", ""),
                at_ms=int(text.get("at_ms") or 0), votes=int(text.get("votes") or 0),
                opens_at_ms=int(text.get("opens_at_ms") or 0),
                closes_at_ms=int(text.get("closes_at_ms") or 0),
                default_view=text.get("default_view", ""),
                default_view_attribute=text.get("default_view_attribute", "")))
        return entries


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
