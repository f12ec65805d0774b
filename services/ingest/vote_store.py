"""The Redis side of ingest: every vote-log write, de-duplication and counter, each in Lua.

One script call records one interactive vote, or all of one cause's votes of a batch, so a
batch costs one round trip whatever its size. Calls reply only after the script returned
(and, with `wait_aof`, after Redis fsynced it), so an OK means Redis holds the vote (on
disk, with `wait_aof`). Redis unreachable or too slow raises redis
ConnectionError/TimeoutError, which the gRPC edge maps to UNAVAILABLE.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio
import redis.exceptions
from redis.asyncio.cluster import RedisCluster

from ingest.votes import CauseImport, InteractiveVote, Receipt, VoteStats
from pairwise import awake_causes, cause_life, checkpoint_fields, keys, vote_log
from pairwise.errors import FailedPrecondition, NotFound, PairwiseError, Unavailable
from pairwise.redis_client import is_cluster_client, when_reachable
from pairwise.redis_scripts import Call, FollowUp, Script, ScriptRunner

logger = logging.getLogger(__name__)

# Lua defining `difference`, the one comparison of a request with the vote recorded under its
# vote_id; every script that answers replays starts with this text.
#   difference(first, kind, a, b, voter, reason) -> nil when the request is the recorded vote,
# else what differs (ingest.votes.REUSED_AS): 'u' the voter, 'p' the proposals (another
# prompt), 'c' the outcome (the same proposals, another kind or side), 'r' the skip reason.
# `first` is the recorded vote as vote_log's votes_in_entry reads it, or nil when its entry
# is not in the log (nothing to compare with: the receipt stands); a skip reason recorded
# before reasons had codes is compared as it reads today; `a`, `b` are proposal
# indices in vote-log order (false for an unknown proposal). The trust flag is not compared:
# a retry is slower than its first attempt.
SAME_VOTE_LUA = vote_log.VOTES_IN_ENTRY_LUA + vote_log.SKIP_REASON_CODED_LUA + """
local function difference(first, kind, a, b, voter, reason)
  if not first then return nil end
  a, b = tostring(a), tostring(b)
  if first.u ~= voter then return 'u' end
  if not ((first.a == a and first.b == b) or (first.a == b and first.b == a)) then
    return 'p'
  end
  if first.k ~= kind or first.a ~= a then return 'c' end
  if first.r ~= reason and skip_reason_coded(first.r or '') ~= reason then return 'r' end
  return nil
end
"""

# KEYS: cause, receipts, used_token, pidx, votes, vstats, voters
# ARGV: vote_id, nonce_ttl_ms, a_id, b_id, kind, voter_id, skip_reason, trust, expired (1/0),
# the voter's attribute code (pairwise.voter_attributes; "-" for none)
# Order matters: a replay is answered before the token is looked at (the nonce is consumed
# by the first submission, and a retry may come after the token expired), and the nonce is
# consumed only once the vote will be written. A cause not OPEN takes no new vote (replays
# still get their receipts): asked in this script, the close falls between two votes. A
# replay always writes a counter: that write makes the WAITAOF after it cover the first
# recording too (the AOF is one sequence).
# The vote goes to the log as an entry of its own (pairwise.vote_log writes it).
RECORD_ONE = Script(vote_log.APPEND_VOTES_LUA + SAME_VOTE_LUA + cause_life.STATE_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local stats = KEYS[6]
local index = redis.call('HMGET', KEYS[4], ARGV[3], ARGV[4])
local prior = redis.call('HGET', KEYS[2], ARGV[1])
if prior then
  local recorded = votes_in_entry(KEYS[5], prior)
  local differs = difference(recorded and recorded[ARGV[1]], ARGV[5], index[1], index[2],
                             ARGV[6], ARGV[7])
  if differs then
    redis.call('HINCRBY', stats, 'rejected:vote_id_reused', 1)
    return {'reused', differs}
  end
  redis.call('HINCRBY', stats, 'duplicates', 1)
  return {'duplicate', prior}
end
local state = cause_state(KEYS[1])
if state ~= 'OPEN' then return {'state', state} end
if ARGV[9] == '1' then return {'expired'} end
if not index[1] or not index[2] then
  redis.call('HINCRBY', stats, 'rejected:unknown_proposal', 1)
  return {'no_proposal', index[1] and ARGV[4] or ARGV[3]}
end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HINCRBY', stats, 'rejected:prompt_token_used', 1)
  return {'token_used'}
end
local kind = ARGV[5]
local entry = append_votes(KEYS[5], 1, {kind}, {index[1]}, {index[2]}, {ARGV[1]}, {ARGV[6]},
                           ARGV[8], kind == 's' and ARGV[7] or nil,
                           ARGV[10] ~= '-' and {ARGV[10]} or nil)
redis.call('HSET', KEYS[2], ARGV[1], entry)
redis.call('HINCRBY', stats, 'accepted', 1)
if kind == 't' then
  redis.call('HINCRBY', stats, 'ties', 1)
elseif kind == 's' then
  redis.call('HINCRBY', stats, 'skips', 1)
  -- By the reason code (the r field's first word), never by the free text after it.
  redis.call('HINCRBY', stats, 'skip:' .. string.match(ARGV[7], '^%S*'), 1)
end
redis.call('PFADD', KEYS[7], ARGV[6])
return {'accepted', entry}
""")

# KEYS: cause, receipts, pidx, votes, vstats, voters
# ARGV[1]: "vote_id voter_id winner_id loser_id kind attributes ..." (CauseImport.packed,
# space-joined; a kind followed by "0" is a vote flagged untrusted; attributes is the
# voter's code, "-" for none)
# ARGV[2]: most votes per log entry (vote_log.MAX_VOTES_PER_ENTRY)
# ARGV[3..]: reason, count pairs of votes rejected before Redis (counted as rejected:<reason>)
# Returns false when the cause does not exist (nothing written), "!" and its state when it is
# not OPEN and a vote of the batch is not a replay (nothing written), else one outcome
# character per vote: a accepted, d duplicate, w/l unknown winner/loser, or what differs from
# the vote recorded under its vote_id before, or earlier in the batch (`difference`'s codes;
# ingest.votes codes all).
# Accepted votes go to the log in entries of up to ARGV[2] votes (pairwise.vote_log writes
# them); each vote's receipt is its entry's id.
# Bulk reads and writes go CHUNK ids per command: Lua's unpack() is limited to ~8000 values.
RECORD_MANY = Script(vote_log.APPEND_VOTES_LUA + SAME_VOTE_LUA + cause_life.STATE_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local call, unpack, min = redis.call, unpack, math.min
local receipts_key, log, stats = KEYS[2], KEYS[4], KEYS[5]
local CHUNK = 4000
local per_entry = tonumber(ARGV[2])
local state = cause_state(KEYS[1])
local ids, voters, winners, losers, kinds, attrs, trust = {}, {}, {}, {}, {}, {}, {}
local n = 0
for v, u, w, l, k, g in string.gmatch(ARGV[1], '(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)') do
  n = n + 1
  ids[n], voters[n], winners[n], losers[n], attrs[n] = v, u, w, l, g
  kinds[n], trust[n] = string.sub(k, 1, 1), #k > 1 and '0' or '1'
end
local function count_rejected()
  for i = 3, #ARGV, 2 do call('HINCRBY', stats, 'rejected:' .. ARGV[i], ARGV[i + 1]) end
end
if n == 0 then count_rejected(); return '' end
local prior = {}
for s = 1, n, CHUNK do
  local got = call('HMGET', receipts_key, unpack(ids, s, min(s + CHUNK - 1, n)))
  for j = 1, #got do prior[s + j - 1] = got[j] end
end
if state ~= 'OPEN' then
  for i = 1, n do if not prior[i] then return '!' .. state end end
end
count_rejected()
local index, wanted, n_wanted = {}, {}, 0
for i = 1, n do
  local w, l = winners[i], losers[i]
  if index[w] == nil then index[w] = false; n_wanted = n_wanted + 1; wanted[n_wanted] = w end
  if index[l] == nil then index[l] = false; n_wanted = n_wanted + 1; wanted[n_wanted] = l end
end
for s = 1, n_wanted, CHUNK do
  local got = call('HMGET', KEYS[3], unpack(wanted, s, min(s + CHUNK - 1, n_wanted)))
  for j = 1, #got do index[wanted[s + j - 1]] = got[j] end
end
local out, fresh, new_receipts, n_receipts = {}, {}, {}, 0
local seen_voter, new_voters, n_voters = {}, {}, 0
local accepted, duplicates, ties, skips, unknown, reused = 0, 0, 0, 0, 0, 0
-- Entries holding earlier votes that the batch's replays name, read once each.
local recorded = {}
local function first_recording(i)
  local entry = prior[i]
  if recorded[entry] == nil then recorded[entry] = votes_in_entry(log, entry) or false end
  return recorded[entry] and recorded[entry][ids[i]]
end
-- The entry being filled: m votes in ek/ea/eb/ev/eu/eg/eq (slots past m are stale); with_g
-- when one of them has attributes.
local m, ek, ea, eb, ev, eu, eg, eq, with_g = 0, {}, {}, {}, {}, {}, {}, {}, false
local function flush()
  if m == 0 then return end
  local entry = append_votes(log, m, ek, ea, eb, ev, eu, table.concat(eq, '', 1, m), nil,
                             with_g and eg or nil)
  with_g = false
  for j = 1, m do
    new_receipts[n_receipts + 1] = ev[j]
    new_receipts[n_receipts + 2] = entry
    n_receipts = n_receipts + 2
  end
  m = 0
end
for i = 1, n do
  local id = ids[i]
  local first = fresh[id]
  if prior[i] or first then
    if prior[i] then
      first = first_recording(i)
    else
      first = {k = kinds[first], a = index[winners[first]], b = index[losers[first]],
               u = voters[first], r = ''}
    end
    local differs = difference(first, kinds[i], index[winners[i]], index[losers[i]],
                               voters[i], '')
    if differs then
      out[i] = differs; reused = reused + 1
    else
      out[i] = 'd'; duplicates = duplicates + 1
    end
  else
    local a, b = index[winners[i]], index[losers[i]]
    if not a then
      out[i] = 'w'; unknown = unknown + 1
    elseif not b then
      out[i] = 'l'; unknown = unknown + 1
    else
      local kind, voter = kinds[i], voters[i]
      fresh[id] = i
      m = m + 1
      ek[m], ea[m], eb[m], ev[m], eu[m], eg[m] = kind, a, b, id, voter, attrs[i]
      eq[m] = trust[i]
      if attrs[i] ~= '-' then with_g = true end
      if m == per_entry then flush() end
      if not seen_voter[voter] then
        seen_voter[voter] = true; n_voters = n_voters + 1; new_voters[n_voters] = voter
      end
      accepted = accepted + 1
      if kind == 't' then ties = ties + 1 elseif kind == 's' then skips = skips + 1 end
      out[i] = 'a'
    end
  end
end
flush()
for s = 1, n_receipts, CHUNK do
  call('HSET', receipts_key, unpack(new_receipts, s, min(s + CHUNK - 1, n_receipts)))
end
for s = 1, n_voters, CHUNK do
  call('PFADD', KEYS[6], unpack(new_voters, s, min(s + CHUNK - 1, n_voters)))
end
if accepted > 0 then call('HINCRBY', stats, 'accepted', accepted) end
if duplicates > 0 then call('HINCRBY', stats, 'duplicates', duplicates) end
if ties > 0 then call('HINCRBY', stats, 'ties', ties) end
if skips > 0 then call('HINCRBY', stats, 'skips', skips) end
if unknown > 0 then call('HINCRBY', stats, 'rejected:unknown_proposal', unknown) end
if reused > 0 then call('HINCRBY', stats, 'rejected:vote_id_reused', reused) end
return table.concat(out)
""")

# KEYS: vstats, checkpoint. Returns the votes accepted into the log that the rankers have not
# yet counted into a stored checkpoint (all of them when there is no checkpoint yet). Counted
# in votes, not log entries: an entry holds 1 to vote_log.MAX_VOTES_PER_ENTRY votes. The
# checkpoint lags what the ranker applied by its checkpoint interval (~2 s of votes).
BACKLOG = Script(checkpoint_fields.lua("""
local accepted = tonumber(redis.call('HGET', KEYS[1], 'accepted') or '0')
local counted = tonumber(redis.call('HGET', KEYS[2], '$votes_counted') or '0')
return math.max(0, accepted - counted)
"""))


class FsyncUnavailable(SystemExit):
    """Start-up stops: votes must be acknowledged only once on disk, and the server cannot
    say when they are (no WAITAOF before Redis 7.2, or appendonly off)."""

    def __init__(self, redis_shown: str, problem: str) -> None:
        super().__init__(
            f"INGEST_WAITAOF is on (the default), but the Redis at {redis_shown} cannot "
            f"confirm writes on disk: {problem}. Run Redis >= 7.2 or Valkey with appendonly "
            "yes (as `make up` and deploy/docker-compose.yml do), or set INGEST_WAITAOF=false "
            "to accept that a host crash or power loss loses the last second of acknowledged "
            "votes")


class VoteStore:
    """Writes and reads one Redis (or one hash slot per cause on a cluster).

    `redis_client` is a redis.asyncio client with bytes responses (pairwise.redis_client:
    a dead server fails fast); the scripts run through pairwise.redis_scripts. With
    `wait_aof`, every write is followed on the same connection by WAITAOF 1 0
    `wait_aof_timeout_ms`, and a write that was not fsynced in time, or a server that
    refuses WAITAOF, raises Unavailable: no OK is promised that the disk does not hold.
    With `wait_replicas`, every write is also followed by WAIT `wait_replicas`
    `wait_aof_timeout_ms`, and a write fewer replicas received in time raises Unavailable.
    `check_durability` tells at start-up whether the server can honour it.
    """

    def __init__(self, redis_client: redis.asyncio.Redis, *, wait_aof: bool = True,
                 wait_aof_timeout_ms: int = 1_000, wait_replicas: int = 0) -> None:
        self._redis = redis_client
        self._scripts = ScriptRunner(redis_client)
        self._wait_aof = wait_aof
        self._wait_aof_timeout_ms = wait_aof_timeout_ms
        self._wait_replicas = wait_replicas

    async def check_durability(self, redis_shown: str) -> None:
        """Raise FsyncUnavailable unless the server confirms an fsync on demand (WAITAOF 1 0,
        what every write will ask). Waits up to redis_client.STARTUP_WAIT_S for an unreachable
        server, then raises SystemExit; `redis_shown` names it (password hidden)."""
        async def waitaof() -> list[Any]:
            try:
                return await self._ask_each_master("WAITAOF", 1, 0, self._wait_aof_timeout_ms)
            except redis.exceptions.ResponseError as exc:
                raise FsyncUnavailable(redis_shown, f"WAITAOF refused ({exc})") from exc

        for reply in await when_reachable(waitaof, redis_shown):
            for one in reply.values() if isinstance(reply, dict) else [reply]:
                if int(one[0]) < 1:
                    raise FsyncUnavailable(redis_shown, f"WAITAOF 1 0 answered {reply!r}")

    async def check_replicas(self, redis_shown: str) -> None:
        """Stop start-up (SystemExit) unless every master has `wait_replicas` replicas in
        sync now (WAIT, what every write will ask)."""
        replies = await when_reachable(lambda: self._ask_each_master(
            "WAIT", self._wait_replicas, self._wait_aof_timeout_ms), redis_shown)
        for one in replies:
            if int(one) < self._wait_replicas:
                raise SystemExit(
                    f"INGEST_WAIT_REPLICAS={self._wait_replicas}, but a master of the Redis at "
                    f"{redis_shown} has {one} replicas in sync: start its replicas, or lower "
                    "the setting")

    async def _ask_each_master(self, *command: Any) -> list[Any]:
        """`command`'s reply from the server, or from each master of a Redis Cluster asked
        on its own: sent to several at once, the client would merge their replies (it sums
        WAIT's, so one master without a replica would pass beside one with two)."""
        if not is_cluster_client(self._redis):
            return [await self._redis.execute_command(*command)]
        cluster = cast(RedisCluster, self._redis)
        await cluster.initialize()
        return [await cluster.execute_command(*command, target_nodes=[node])
                for node in cluster.get_primaries()]

    async def record_votes_each(
            self, votes: Sequence[InteractiveVote]) -> list[Receipt | PairwiseError]:
        """Record verified interactive votes in one round trip, one script call per vote, run
        in order, each consuming its prompt nonce. Per vote: its receipt (the original one,
        duplicate=True, when the vote_id was recorded before), or NotFound (cause or proposal
        gone), FailedPrecondition (nonce already used by another vote, or the token expired
        and no vote was recorded under its id) or AlreadyExists (a vote with other fields
        was recorded under its id). Redis failures raise for all."""
        replies = await self._run_writes({v.cause_id for v in votes}, [(
            RECORD_ONE,
            (keys.cause(v.cause_id), keys.receipts(v.cause_id),
             keys.used_token(v.cause_id, v.nonce), keys.proposal_index(v.cause_id),
             keys.votes(v.cause_id), keys.vote_stats(v.cause_id), keys.voters(v.cause_id)),
            (v.vote_id, v.nonce_ttl_ms, v.a_id, v.b_id, v.kind, v.voter_id, v.skip_reason,
             "1" if v.trusted else "0", "1" if v.expired else "0", v.attributes),
        ) for v in votes])
        return [_receipt(vote, reply) for vote, reply in zip(votes, replies, strict=True)]

    async def record_imports(self, causes: Sequence[CauseImport]) -> dict[str, str | None]:
        """Record each cause's packed votes with one script call per cause, all in one round
        trip. Returns cause_id -> outcome codes (one per packed vote), None for a cause
        that does not exist, or "!" and its state for a cause not OPEN when a vote of it is
        not a replay (nothing of either was written)."""
        if not causes:
            return {}
        calls: list[Call] = []
        for batch in causes:
            c = batch.cause_id
            args: list[str | int] = [" ".join(batch.packed), vote_log.MAX_VOTES_PER_ENTRY]
            for reason, count in batch.rejected.items():
                args += (reason, count)
            calls.append((RECORD_MANY,
                          (keys.cause(c), keys.receipts(c), keys.proposal_index(c),
                           keys.votes(c), keys.vote_stats(c), keys.voters(c)),
                          args))
        replies = await self._run_writes({batch.cause_id for batch in causes}, calls)
        return {batch.cause_id: (None if reply is None else reply.decode())
                for batch, reply in zip(causes, replies, strict=True)}

    async def backlogs(self, cause_ids: Sequence[str]) -> dict[str, int]:
        """Votes of each cause accepted but not yet in a checkpoint of the rankers."""
        replies = await self._run(
            [(BACKLOG, (keys.vote_stats(c), keys.checkpoint(c)), ()) for c in cause_ids])
        return {c: int(n) for c, n in zip(cause_ids, replies, strict=True)}

    async def stats(self, cause_id: str) -> VoteStats | None:
        """The cause's counters, or None when the cause does not exist."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.cause(cause_id))
            pipe.hgetall(keys.vote_stats(cause_id))
            # Not pipe.pfcount: a Redis Cluster pipeline refuses it (PFCOUNT may name keys
            # of several slots; this one names one).
            pipe.execute_command("PFCOUNT", keys.voters(cause_id))
            exists, counters, voters = await pipe.execute()
        if not exists:
            return None
        plain: dict[str, int] = {}
        rejected: dict[str, int] = {}
        skip_reasons: dict[str, int] = {}
        for raw_name, raw_value in counters.items():
            name, value = raw_name.decode(), int(raw_value)
            if name.startswith("rejected:"):
                rejected[name.removeprefix("rejected:")] = value
            elif name.startswith("skip:"):
                skip_reasons[name.removeprefix("skip:")] = value
            else:
                plain[name] = value
        return VoteStats(accepted=plain.get("accepted", 0),
                         duplicates=plain.get("duplicates", 0), ties=plain.get("ties", 0),
                         skips=plain.get("skips", 0), voters=int(voters),
                         rejected_by_reason=rejected, skip_reasons=skip_reasons)

    async def _run_writes(self, cause_ids: set[str], calls: list[Call]) -> list[Any]:
        """`_run` for calls that write to the vote logs of `cause_ids`: the same round trip
        then marks those causes awake, so a ranker that unloaded one loads it again
        (pairwise.awake_causes), whatever each call's outcome (a replay's mark makes up for
        one lost with its first answer); then WAITAOF, when asked for."""
        follow_ups = [FollowUp(awake_causes.mark_command(cause_ids), self._check_marked)
                      ] if cause_ids else []
        if self._wait_aof:
            follow_ups.append(
                FollowUp(("WAITAOF", 1, 0, self._wait_aof_timeout_ms), self._check_fsync,
                         per_connection=True))
        if self._wait_replicas:
            follow_ups.append(
                FollowUp(("WAIT", self._wait_replicas, self._wait_aof_timeout_ms),
                         self._check_replicated, per_connection=True))
        return await self._run(calls, follow_ups)

    async def _run(self, calls: list[Call], follow_ups: list[FollowUp] | None = None,
                   ) -> list[Any]:
        """Every call in one pipelined round trip, then the `follow_ups`; the replies in call
        order. An error reply raises for all (Unavailable when Redis refused for the
        moment)."""
        replies = await self._scripts.run_all(calls, follow_ups=follow_ups or ())
        for reply in replies:
            if isinstance(reply, Exception):
                raise _transient(reply)
        return replies

    def _check_marked(self, result: Any) -> None:
        # No OK without the mark: a vote the rankers might never read could not be promised.
        if isinstance(result, Exception):
            raise _transient(result)

    def _check_fsync(self, result: Any) -> None:
        if isinstance(result, redis.exceptions.ResponseError):
            # Start-up checked that the server honours WAITAOF; it stopped since (appendonly
            # turned off, another server behind the URL). An OK would promise what it cannot
            # keep: refuse until it does again (the retries are de-duplicated).
            logger.error("WAITAOF refused: votes refused until Redis fsyncs on demand again",
                         extra={"error": str(result)})
            raise Unavailable("vote store cannot confirm writes on disk (WAITAOF refused); "
                              "retry later")
        if isinstance(result, Exception):
            raise _transient(result)
        if isinstance(result, dict):
            # A Redis Cluster's masters, each asked on the connection that wrote to it.
            for reply in result.values():
                self._check_fsync(reply)
            return
        if int(result[0]) < 1:
            raise Unavailable(
                f"vote store did not confirm the write on disk within "
                f"{self._wait_aof_timeout_ms} ms; retry (the retry is de-duplicated)")


    def _check_replicated(self, result: Any) -> None:
        if isinstance(result, Exception):
            raise _transient(result)
        if isinstance(result, dict):
            # A Redis Cluster's masters, each asked on the connection that wrote to it.
            for reply in result.values():
                self._check_replicated(reply)
            return
        if int(result) < self._wait_replicas:
            raise Unavailable(
                f"vote store did not confirm the write on {self._wait_replicas} replicas "
                f"within {self._wait_aof_timeout_ms} ms; retry (the retry is de-duplicated)")


def _receipt(vote: InteractiveVote, reply: list[bytes]) -> Receipt | PairwiseError:
    """What one RECORD_ONE reply means for `vote`."""
    status = reply[0]
    if status == b"accepted":
        return Receipt(vote.vote_id, False, reply[1].decode())
    if status == b"duplicate":
        return Receipt(vote.vote_id, True, reply[1].decode())
    if status == b"reused":
        return vote.reused_error(reply[1].decode())
    if status == b"expired":
        assert vote.expired is not None
        return vote.expired
    if status == b"token_used":
        return FailedPrecondition(
            "prompt_token already used for another vote; call NextPair again")
    if status == b"state":
        return cause_life.refusal(vote.cause_id, reply[1].decode())
    if status == b"no_proposal":
        return NotFound(f"proposal {reply[1].decode()!r} not found in cause {vote.cause_id!r}")
    return NotFound(f"cause {vote.cause_id!r} not found")


# Error replies meaning "not now" rather than "wrong": out of memory, a long script running,
# a replica or a cluster in transition. The client should retry them (UNAVAILABLE).
_TRANSIENT_ERRORS = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError,
                     redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError,
                     redis.exceptions.MasterDownError)
_TRANSIENT_PREFIXES = ("BUSY", "NOREPLICAS")


def _transient(error: Exception) -> Exception:
    """`error` as Unavailable when Redis refused for the moment, else unchanged (a bug)."""
    if isinstance(error, _TRANSIENT_ERRORS) or str(error).startswith(_TRANSIENT_PREFIXES):
        return Unavailable(f"vote store refused the write: {error}; retry")
    return error
