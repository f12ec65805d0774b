"""Causes and proposals in Redis: the gateway owns these writes; ingest and ranker read them.

Layout (pairwise.keys, all hash-tagged `{cause_id}` so each script stays in one slot):
`cause` hash, `proposals` hash of records (pairwise.proposal_record), `pidx` id -> index,
`pids` list by index, `accepted` set of indices, `pstatus:<STATUS>` sorted sets of ids by
index, and `catalog_version`, bumped on every add and status change. The cause hash holds
`title`, `auto_accept` (0/1), `created_at_ms`, and the selection config `pair_selection`
(UNIFORM | ADAPTIVE), `top_k` and `newcomer_votes`; a cause stored before these existed reads
as UNIFORM, DEFAULT_TOP_K and DEFAULT_NEWCOMER_VOTES. Indices are assigned in
the same Lua script that stores the record, so they are dense and in creation order. The
scripts that accept or reject a proposal also add it to or remove it from the `newcomers`
pool of adaptive pair selection (gateway.pair_selection).
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from gateway import default_view
from gateway.catalog import (
    DEFAULT_NEWCOMER_VOTES,
    DEFAULT_TOP_K,
    Cause,
    NewProposal,
    PairSelection,
    Proposal,
    Status,
)
from pairwise import declared_attributes, keys, proposal_record
from pairwise.errors import AlreadyExists, NotFound, ResourceExhausted, Unavailable
from pairwise.redis_scripts import Script, ScriptRunner
from pairwise.voter_attributes import (
    Declaration,
    Margins,
    margins_from_json,
    margins_to_json,
)

# KEYS: cause.  ARGV: title, auto_accept (0/1), created_at_ms, pair_selection, top_k,
# newcomer_votes, opens_at_ms, closes_at_ms (0: none; pairwise.cause_life).  Returns 1, or 0
# when the cause exists (nothing written).
_CREATE_CAUSE = Script("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'title', ARGV[1], 'auto_accept', ARGV[2], 'created_at_ms', ARGV[3],
           'pair_selection', ARGV[4], 'top_k', ARGV[5], 'newcomer_votes', ARGV[6])
if tonumber(ARGV[7]) > 0 then redis.call('HSET', KEYS[1], 'opens_at_ms', ARGV[7]) end
if tonumber(ARGV[8]) > 0 then redis.call('HSET', KEYS[1], 'closes_at_ms', ARGV[8]) end
return 1
""")

# KEYS: cause, pstatus:PENDING, :ACCEPTED, :REJECTED.  ARGV: pair_selection, top_k ('' keeps
# the current value).  Returns {'ok', fields (HGETALL), n_pending, n_accepted, n_rejected}
# or {'no_cause'}. Only these two fields change: the catalog version is not bumped, since no
# proposal or status changed.
_UPDATE_PAIR_SELECTION = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'pair_selection', ARGV[1]) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'top_k', ARGV[2]) end
return {'ok', redis.call('HGETALL', KEYS[1]), redis.call('ZCARD', KEYS[2]),
        redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4])}
""")

# KEYS: cause, proposals, pidx, pids, accepted, catalog_version, pstatus:<status>, newcomers
# ARGV: status, the most proposals a cause may hold, then (proposal_id, record without
# index) pairs (pairwise.proposal_record). Returns {'ok', index...}, {'no_cause'},
# {'full', proposals held} or {'exists', proposal_id}; nothing is written unless every id is
# new and all fit (all-or-nothing).
_ADD_PROPOSALS = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local held = redis.call('LLEN', KEYS[4])
if held + (#ARGV - 2) / 2 > tonumber(ARGV[2]) then return {'full', held} end
for i = 3, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 then return {'exists', ARGV[i]} end
end
local accepted = ARGV[1] == 'ACCEPTED'
local out = {'ok'}
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local index = redis.call('RPUSH', KEYS[4], id) - 1
  local record = cjson.decode(ARGV[i + 1])
  record['index'] = index
  redis.call('HSET', KEYS[2], id, cjson.encode(record))
  redis.call('HSET', KEYS[3], id, index)
  redis.call('ZADD', KEYS[7], index, id)
  if accepted then
    redis.call('SADD', KEYS[5], index)
    redis.call('ZADD', KEYS[8], 0, index)
  end
  out[#out + 1] = index
end
redis.call('INCR', KEYS[6])
return out
""")

# KEYS: cause, proposals, accepted, catalog_version, pstatus:PENDING, :ACCEPTED, :REJECTED,
# newcomers
# ARGV: proposal_id, new status, reason. Returns {'ok', record}, {'no_cause'}, {'no_proposal'}.
_MODERATE = Script("""
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
  return {'no_proposal'}
end
local record = cjson.decode(raw)
local old = record['status']
local index = record['index']
record['status'] = ARGV[2]
record['reason'] = ARGV[3]
raw = cjson.encode(record)
redis.call('HSET', KEYS[2], ARGV[1], raw)
if old ~= ARGV[2] then
  local by_status = {PENDING = KEYS[5], ACCEPTED = KEYS[6], REJECTED = KEYS[7]}
  redis.call('ZREM', by_status[old], ARGV[1])
  redis.call('ZADD', by_status[ARGV[2]], index, ARGV[1])
  if ARGV[2] == 'ACCEPTED' then
    redis.call('SADD', KEYS[3], index)
    -- Back among the newcomers until the ranker's next fit says how many votes it has.
    redis.call('ZADD', KEYS[8], 'NX', 0, index)
  else
    redis.call('SREM', KEYS[3], index)
    redis.call('ZREM', KEYS[8], index)
  end
  redis.call('INCR', KEYS[4])
end
return {'ok', raw}
""")

# KEYS: cause.  ARGV: field, the value the caller checked its change against ('' = none),
# the new value.  Returns 'ok', 'no_cause', or 'changed' (someone changed it meanwhile:
# nothing written).
_COMPARE_AND_SET = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return 'no_cause' end
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 'changed' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 'ok'
""")

_MAX_REDIS_INDEX = 2**63 - 1
# KEYS: cause, source (pids for every status, or pstatus:<status>), proposals.
# ARGV: offset, stop (inclusive), 'z' when the source is a sorted set, 'l' for the list.
# Returns {'ok', total, id1, record1, id2, record2, ...} or {'no_cause'}.
_LIST = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local ids, total
if ARGV[3] == 'z' then
  total = redis.call('ZCARD', KEYS[2])
  ids = redis.call('ZRANGE', KEYS[2], ARGV[1], ARGV[2])
else
  total = redis.call('LLEN', KEYS[2])
  ids = redis.call('LRANGE', KEYS[2], ARGV[1], ARGV[2])
end
local out = {'ok', total}
if #ids == 0 then return out end
local records = redis.call('HMGET', KEYS[3], unpack(ids))
for i, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = records[i]
end
return out
""")

# Causes are never deleted, so a cause seen once can skip the existence check afterwards.
_KNOWN_CAUSES_MAX = 100_000


# Proposals a cause may hold: above any consultation's tens of thousands, and below the
# index the ranker takes for malformed (RANKER_MAX_PROPOSALS, 1,000,000), so that no vote on
# an accepted proposal is ever acknowledged and then dropped.
DEFAULT_MAX_PROPOSALS = 100_000


class CatalogStore:
    """Redis adapter for causes and proposals. Every method may raise redis connection errors
    (mapped to UNAVAILABLE at the gRPC edge).

    Each script call goes in a round trip of its own (`ScriptRunner.run_now`): an import of a
    thousand proposals must not hold back the rate-limit and pair scripts grouped by `scripts`.
    """

    def __init__(self, redis: Redis, *, scripts: ScriptRunner | None = None,
                 max_proposals: int = DEFAULT_MAX_PROPOSALS) -> None:
        self._redis = redis
        self._max_proposals = max_proposals
        self._scripts = scripts or ScriptRunner(redis)
        self._known_causes: set[str] = set()

    async def create_cause(self, cause: Cause, *, opens_at_ms: int = 0,
                           closes_at_ms: int = 0) -> None:
        """Store a new cause, with its schedule (0: none); AlreadyExists if the id is
        taken."""
        created = await self._scripts.run_now(
            _CREATE_CAUSE, [keys.cause(cause.cause_id)],
            [cause.title, int(cause.auto_accept), cause.created_at_ms,
             str(cause.pair_selection), cause.top_k, cause.newcomer_votes, opens_at_ms,
             closes_at_ms])
        # Registering is idempotent and also repairs a create whose SADD was lost to a crash
        # (the set is global, so it cannot join the cause's single-slot script).
        await self._redis.sadd(keys.CAUSES, cause.cause_id)
        if not created:
            raise AlreadyExists(f"cause_id {cause.cause_id!r} already exists")
        self._remember(cause.cause_id)

    async def get_cause(self, cause_id: str) -> Cause:
        """The cause with its proposal counts by status; NotFound if unknown."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.cause(cause_id))
            for status in Status:
                pipe.zcard(keys.proposals_with_status(cause_id, status))
            fields, pending, accepted, rejected = await pipe.execute()
        if not fields:
            raise NotFound(f"cause {cause_id!r} not found")
        self._remember(cause_id)
        return _cause_from_hash(cause_id, fields, pending, accepted, rejected)

    async def update_pair_selection(self, cause_id: str, pair_selection: PairSelection | None,
                                    top_k: int | None) -> Cause:
        """Set the cause's strategy and/or top_k (None keeps the current one) in one atomic
        step; returns the cause as it now is. NotFound if unknown."""
        reply = await self._scripts.run_now(
            _UPDATE_PAIR_SELECTION,
            [keys.cause(cause_id), *(keys.proposals_with_status(cause_id, s) for s in Status)],
            ["" if pair_selection is None else str(pair_selection),
             "" if top_k is None else top_k])
        if reply[0] == b"no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        flat = reply[1]
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return _cause_from_hash(cause_id, fields, *(int(n) for n in reply[2:5]))

    async def change_voter_attributes(
            self, cause_id: str, change: Callable[[Declaration], Declaration]) -> Cause:
        """Replace the cause's declared attributes with `change(current)` (which raises to
        refuse), atomically against concurrent changes; the cause as it now is. NotFound
        if unknown."""
        await self._compare_and_set(
            cause_id, declared_attributes.FIELD,
            lambda text: change(Declaration.from_json(text)).to_json())
        return await self.get_cause(cause_id)

    async def population_margins(self, cause_id: str) -> tuple[Declaration, Margins]:
        """The cause's declared attributes and its population margins; NotFound if unknown."""
        fields = await self._redis.hmget(
            keys.cause(cause_id), ["title", declared_attributes.FIELD,
                                   declared_attributes.MARGINS_FIELD])
        if fields[0] is None:
            raise NotFound(f"cause {cause_id!r} not found")
        return Declaration.from_json(fields[1]), margins_from_json(fields[2])

    async def default_view(self, cause_id: str) -> tuple[str, str]:
        """The cause's default ranking view and its attribute; NotFound if unknown."""
        fields = await self._redis.hmget(
            keys.cause(cause_id), ["title", default_view.FIELD, default_view.ATTRIBUTE_FIELD])
        if fields[0] is None:
            raise NotFound(f"cause {cause_id!r} not found")
        return default_view.stored_default_view(fields[1], fields[2])

    async def set_population_margins(
            self, cause_id: str, check: Callable[[Declaration], Margins]) -> Margins:
        """Store `check(declared attributes)` as the cause's margins (it raises to refuse);
        the margins stored. The declaration is read once: one declared meanwhile is only
        appended to, so margins checked against the older one stay valid for it."""
        declaration, _ = await self.population_margins(cause_id)
        margins = check(declaration)
        await self._compare_and_set(cause_id, declared_attributes.MARGINS_FIELD,
                                    lambda _: margins_to_json(margins))
        return margins

    async def _compare_and_set(self, cause_id: str, field: str,
                               change: Callable[[str], str]) -> None:
        for _ in range(10):
            current = await self._redis.hget(keys.cause(cause_id), field)
            text = current.decode() if isinstance(current, bytes) else (current or "")
            outcome = await self._scripts.run_now(
                _COMPARE_AND_SET, [keys.cause(cause_id)], [field, text, change(text)])
            if outcome == b"no_cause":
                raise NotFound(f"cause {cause_id!r} not found")
            if outcome == b"ok":
                return
        raise Unavailable(f"cause {cause_id!r}: {field} changed by others meanwhile; retry")
    async def list_causes(self, after: int, limit: int) -> tuple[list[Cause], int]:
        """About `limit` causes from the set of causes, read on from SSCAN cursor `after`
        (0: the start), each with its proposal counts; and the cursor of the next page (0:
        this was the last). A cause registered in the set whose hash is gone is skipped."""
        cursor, raw_ids = await self._redis.sscan(keys.CAUSES, after, count=limit)
        cause_ids = sorted({raw.decode() if isinstance(raw, bytes) else raw for raw in raw_ids})
        if not cause_ids:
            return [], int(cursor)
        async with self._redis.pipeline(transaction=False) as pipe:
            for cause_id in cause_ids:
                pipe.hgetall(keys.cause(cause_id))
                for status in Status:
                    pipe.zcard(keys.proposals_with_status(cause_id, status))
            replies = await pipe.execute()
        per_cause = 1 + len(Status)
        causes = [_cause_from_hash(cause_id, *replies[i * per_cause:(i + 1) * per_cause])
                  for i, cause_id in enumerate(cause_ids) if replies[i * per_cause]]
        return causes, int(cursor)

    async def require_cause(self, cause_id: str) -> None:
        """Return if the cause exists, else raise NotFound."""
        if cause_id in self._known_causes:
            return
        if not await self._redis.exists(keys.cause(cause_id)):
            raise NotFound(f"cause {cause_id!r} not found")
        self._remember(cause_id)

    async def add_proposals(self, cause_id: str, new: list[NewProposal], status: Status,
                            now_ms: int) -> list[Proposal]:
        """Store `new` with `status`, all or nothing, assigning the next indices in order.

        Raises NotFound (unknown cause), ResourceExhausted (the cause would hold more than
        its most proposals) or AlreadyExists naming the first id already stored.
        """
        args: list[str | int] = [str(status), self._max_proposals]
        for proposal in new:
            args += [proposal.proposal_id,
                     proposal_record.encode_new(proposal.text, proposal.author_id, str(status),
                                                now_ms)]
        reply = await self._scripts.run_now(
            _ADD_PROPOSALS,
            [keys.cause(cause_id), keys.proposals(cause_id), keys.proposal_index(cause_id),
             keys.proposal_ids(cause_id), keys.accepted(cause_id),
             keys.catalog_version(cause_id), keys.proposals_with_status(cause_id, status),
             keys.newcomers(cause_id)],
            args)
        outcome = reply[0].decode()
        if outcome == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        if outcome == "full":
            raise ResourceExhausted(
                f"cause {cause_id!r} holds {int(reply[1]):,} proposals; {len(new):,} more would "
                f"pass its limit of {self._max_proposals:,}; nothing was added")
        if outcome == "exists":
            raise AlreadyExists(f"proposal_id {reply[1].decode()!r} already exists in cause "
                                f"{cause_id!r}; nothing was added")
        return [Proposal(p.proposal_id, p.text, p.author_id, status, "", int(index), now_ms)
                for p, index in zip(new, reply[1:], strict=True)]

    async def moderate(self, cause_id: str, proposal_id: str, status: Status,
                       reason: str) -> Proposal:
        """Set a proposal's status and reason; NotFound for an unknown cause or proposal."""
        reply = await self._scripts.run_now(
            _MODERATE,
            [keys.cause(cause_id), keys.proposals(cause_id), keys.accepted(cause_id),
             keys.catalog_version(cause_id),
             *(keys.proposals_with_status(cause_id, s) for s in Status),
             keys.newcomers(cause_id)],
            [proposal_id, str(status), reason])
        outcome = reply[0].decode()
        if outcome == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        if outcome == "no_proposal":
            raise NotFound(f"proposal {proposal_id!r} not found in cause {cause_id!r}")
        return Proposal.from_record(proposal_id, reply[1])

    async def list_proposals(self, cause_id: str, status: Status | None, offset: int,
                             limit: int) -> tuple[list[Proposal], int]:
        """One page of proposals in creation order, optionally only those with `status`,
        and the total matching; NotFound for an unknown cause."""
        source = (keys.proposal_ids(cause_id) if status is None
                  else keys.proposals_with_status(cause_id, status))
        # Redis indices are signed 64-bit: a last index past that is refused as "not an
        # integer", where it only means "to the end".
        last = min(offset + limit - 1, _MAX_REDIS_INDEX)
        reply = await self._scripts.run_now(
            _LIST, [keys.cause(cause_id), source, keys.proposals(cause_id)],
            [offset, last, "l" if status is None else "z"])
        if reply[0] == b"no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        rows = reply[2:]
        proposals = [Proposal.from_record(rows[i].decode(), rows[i + 1])
                     for i in range(0, len(rows), 2)]
        return proposals, int(reply[1])

    def _remember(self, cause_id: str) -> None:
        if len(self._known_causes) >= _KNOWN_CAUSES_MAX:
            self._known_causes.clear()
        self._known_causes.add(cause_id)


def _cause_from_hash(cause_id: str, fields: dict[bytes, bytes], pending: int, accepted: int,
                     rejected: int) -> Cause:
    """The cause stored as `fields` (its hash), with its proposal counts by status."""
    view, view_attribute = default_view.stored_default_view(
        fields.get(default_view.FIELD.encode()),
        fields.get(default_view.ATTRIBUTE_FIELD.encode()))
    return Cause(cause_id=cause_id, title=fields[b"title"].decode(),
                 auto_accept=fields.get(b"auto_accept") == b"1",
                 created_at_ms=int(fields.get(b"created_at_ms", 0)),
                 pair_selection=(PairSelection(fields[b"pair_selection"].decode())
                                 if b"pair_selection" in fields else PairSelection.UNIFORM),
                 top_k=int(fields.get(b"top_k", DEFAULT_TOP_K)),
                 newcomer_votes=int(fields.get(b"newcomer_votes", DEFAULT_NEWCOMER_VOTES)),
                 voter_attributes=Declaration.from_json(
                     fields.get(declared_attributes.FIELD.encode())),
                 default_view=view, default_view_attribute=view_attribute,
                 accepted=accepted, pending=pending, rejected=rejected)
