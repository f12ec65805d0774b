"""Redis adapter for one cause's vote log: consumer-group reads, claims, and checkpoints.

The ranker's exactly-once effect rests on one invariant: Redis holds a checkpoint
(last applied entry id, votes counted, pair counts, written by one atomic script) and an
entry is XACKed only after a checkpoint covering it is stored. A crash at any instant
therefore leaves every unreflected entry pending in the consumer group; the next owner
loads the checkpoint, claims all pending entries, re-applies exactly those after `last_id`
and acks the others. Acking is thus idempotent rather than part of the checkpoint script:
one script acking 80,000 entries blocked Redis for 0.4 s, so acks go in short scripts.

The counts are stored incrementally: a base snapshot (a list of parts) plus one delta per
save since (the votes applied since the previous save, 9 bytes a vote). Writing the whole
snapshot each time (110 MB at 34,000 proposals and 5.4M pairs) blocked Redis and the
ranker's event loop for ~1 s every checkpoint. A new base is written part by part into a
staging list nobody reads, then one fenced script renames it into place and drops the
deltas; a delta is appended by that same script. Either way the hash, base and deltas change
together or not at all, so the invariant above holds at every instant.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis

from pairwise import awake_causes, checkpoint_fields, exclusions, keys
from pairwise.redis_scripts import Script, ScriptRunner
from pairwise.vote_log import RawEntry
from ranker.log_consumer import Checkpoint, CheckpointConflict
from ranker.pair_counts import (
    PairCounts,
    decode_votes,
    encoded_votes_length,
    snapshot_length,
)
from ranker.segment_counts import SegmentCounts
from ranker.vote_admission import LeftOut
from ranker.vote_reader import VoteReader

logger = logging.getLogger(__name__)

# Checkpoints up to this size are restored on the event loop (about a millisecond: a few
# thousand pairs, or deltas of ~7,000 votes); larger ones in a thread. When a ranker takes
# over another's causes, its threads are busy with their first fits, and small restores
# queued behind them slowed every load.
_INLINE_RESTORE_BYTES = 64 << 10

# A base snapshot goes to Redis in RPUSH calls of about this many bytes: each is a few ms
# of Redis and event-loop time, where one 110 MB HSET blocked both for ~1 s.
_BASE_CALL_BYTES = 4 << 20


# KEYS[1] checkpoint hash, KEYS[2] vote log, KEYS[3] base list, KEYS[4] deltas list,
# KEYS[5] staging list, KEYS[6] the cause's lease (ranker.cause_leases).
# ARGV[1] group, ARGV[2] consumer, ARGV[3] token of the checkpoint the caller loaded or last
# saved ("" = none), ARGV[4] token of an earlier save by the caller whose reply was lost
# ("" = none), ARGV[5] new token, ARGV[6] new last_id, ARGV[7] votes_counted,
# ARGV[8] saved_at_ms, ARGV[9] "base" or "delta", ARGV[10] for a base the number of parts
# staged (after the token that heads the staging list), for a delta the encoded votes
# applied since the stored checkpoint ("" = none), ARGV[11] the caller's lease token,
# ARGV[12] votes_untrusted, ARGV[13] votes_excluded, ARGV[14] exclusions_version.
# Fencing: refuse when the caller does not hold the cause's lease (it ran out, and another
# ranker may be counting the cause), when the stored checkpoint was written by anyone else
# since the caller's load or last save, and when another consumer holds a pending entry at
# or below the new last_id (an entry this state may never have seen). Refusing writes
# nothing, so the stored checkpoint never skips or double-counts an entry. A delta extends
# the stored state, so the caller saves one only after a save of its own whose outcome it
# knows.
_SAVE = Script(checkpoint_fields.lua("""
local lease = redis.call('GET', KEYS[6])
if lease ~= ARGV[11] then
  return {0, 'the lease of this cause is held by ' .. (lease or 'nobody') .. ', not ' .. ARGV[11]}
end
local current = redis.call('HGET', KEYS[1], '$token') or ''
if current ~= ARGV[3] and (ARGV[4] == '' or current ~= ARGV[4]) then
  return {0, 'checkpoint was saved by someone else (' .. current .. ')'}
end
local summary = redis.call('XPENDING', KEYS[2], ARGV[1])
if summary[4] then
  for _, holder in ipairs(summary[4]) do
    if holder[1] ~= ARGV[2] then
      local theirs = redis.call('XPENDING', KEYS[2], ARGV[1], '-', ARGV[6], 1, holder[1])
      if #theirs > 0 then
        return {0, 'consumer ' .. holder[1] .. ' holds pending entry ' .. theirs[1][1]}
      end
    end
  end
end
if ARGV[9] == 'base' then
  if redis.call('LLEN', KEYS[5]) ~= tonumber(ARGV[10]) + 1
      or redis.call('LINDEX', KEYS[5], 0) ~= ARGV[5] then
    return {0, 'the staged snapshot is incomplete or was overwritten'}
  end
  redis.call('LPOP', KEYS[5])
  redis.call('RENAME', KEYS[5], KEYS[3])
  redis.call('DEL', KEYS[4])
else
  if redis.call('EXISTS', KEYS[3]) == 0 then
    return {0, 'no base snapshot to add a delta to'}
  end
  if ARGV[10] ~= '' then
    redis.call('RPUSH', KEYS[4], ARGV[10])
  end
end
redis.call('HSET', KEYS[1], '$token', ARGV[5], '$last_id', ARGV[6], '$votes_counted', ARGV[7],
           '$votes_untrusted', ARGV[12], '$votes_excluded', ARGV[13],
           '$exclusions_version', ARGV[14], '$consumer', ARGV[2], '$saved_at_ms', ARGV[8],
           '$base_parts', redis.call('LLEN', KEYS[3]), '$deltas', redis.call('LLEN', KEYS[4]))
return {1, 'saved'}
"""))

# KEYS[1] vote log. ARGV[1] group, ARGV[2] consumer, ARGV[3] last_id, ARGV[4] count.
# XACK up to `count` of the consumer's pending entries at or below last_id; returns how many.
# The consumer's pending entries up to a stored checkpoint are exactly the ones it reflects
# (it applies everything it reads or claims, in id order), so they are listed here rather
# than shipped as arguments.
_ACK = Script("""
local mine = redis.call('XPENDING', KEYS[1], ARGV[1], '-', ARGV[3], tonumber(ARGV[4]), ARGV[2])
if #mine == 0 then return 0 end
local ids = {}
for k, entry in ipairs(mine) do ids[k] = entry[1] end
-- unpack() is limited to ~8000 values: XACK in slices.
local acked = 0
for s = 1, #ids, 4000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, s, math.min(s + 3999, #ids)))
end
return acked
""")
# KEYS[1] vote log. ARGV[1] group, ARGV[2] consumer. Deletes the group's other consumers
# that hold no pending entry (rankers gone: each process reads under a name of its own, so
# they would pile up), in one script so that none gets an entry between the look and the
# delete. Returns how many it deleted.
_FORGET_IDLE_CONSUMERS_LUA = """
local function forget_idle_consumers()
  local deleted = 0
  for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
    local name, pending
    for i = 1, #consumer, 2 do
      if consumer[i] == 'name' then name = consumer[i + 1] end
      if consumer[i] == 'pending' then pending = consumer[i + 1] end
    end
    if name ~= ARGV[2] and pending == 0 then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
      deleted = deleted + 1
    end
  end
  return deleted
end
"""
_FORGET_IDLE_CONSUMERS = Script(_FORGET_IDLE_CONSUMERS_LUA + "return forget_idle_consumers()\n")

# KEYS[1] vote log, KEYS[2] checkpoint hash, KEYS[3] base list, KEYS[4] deltas list,
# KEYS[5] exclusions version, KEYS[6] exclusions order. ARGV[1] group, ARGV[2] consumer,
# ARGV[3] entries to claim, ARGV[4] most bytes (as MEMORY USAGE counts them) of base and
# deltas returned here. Everything a load reads, in one call: creates the group at the start
# of the log (and the log) if absent; returns the checkpoint hash (flat), its base and deltas
# (nil each when larger than ARGV[4]: the caller reads them apart, off Redis' script path),
# the exclusions version and members, and the first page XAUTOCLAIM claims for the consumer
# (cursor, entries, deleted ids); once that page ends the claim, forgets the idle consumers.
_OPEN = Script(_FORGET_IDLE_CONSUMERS_LUA + """
local created = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
-- SAMPLES 0: every element counted (the default samples 5 and extrapolates, which a list
-- of small parts followed by large ones would fool).
local size = (redis.call('MEMORY', 'USAGE', KEYS[3], 'SAMPLES', 0) or 0)
             + (redis.call('MEMORY', 'USAGE', KEYS[4], 'SAMPLES', 0) or 0)
local base, deltas = false, false
if size <= tonumber(ARGV[4]) then
  base = redis.call('LRANGE', KEYS[3], 0, -1)
  deltas = redis.call('LRANGE', KEYS[4], 0, -1)
end
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, '0-0', 'COUNT', ARGV[3])
if claimed[1] == '0-0' then forget_idle_consumers() end
return {redis.call('HGETALL', KEYS[2]), base, deltas, redis.call('GET', KEYS[5]) or false,
        redis.call('ZRANGE', KEYS[6], 0, -1), claimed}
""")

# Entries acked per script call: about 50 ms of Redis time (~5 us an entry), no longer than
# one of ingest's 10,000-vote batches. While imports keep Redis busy every round trip waits
# behind their scripts (~75 ms under a bulk load test), so 1,000 per call capped acking at
# ~13,000 entries/s: a checkpoint took 7 s and the consumer starved.
_ACK_CHUNK = 10_000

# A recount reads the log in pages of about this many votes, and at most this many entries:
# a page of interactive entries (a vote each) costs ~12 us a vote to decode and apply at 1,000
# entries, twice that at 100 (the fixed cost of a page), while 100,000 imported votes are
# ~1.5 MB of reply.
_RECOUNT_PAGE_VOTES = 100_000
_RECOUNT_PAGE_ENTRIES = 2_000

# Saves of a delta up to this many bytes (~7,000 votes) and acks of up to this many entries
# share their round trip with other causes' calls (ScriptRunner.run): hundreds of active
# causes each saving every few seconds, a round trip each, kept every pooled connection busy
# and left other commands waiting for one past their timeout. Larger ones, a few ms of Redis
# each, go alone so as not to hold the small ones back.
_SHARED_MAX_BYTES = 64 << 10
_SHARED_MAX_ACKS = 1_000


class RedisVoteStream:
    """One cause's vote log (format: pairwise.vote_log) seen through the ranker consumer
    group, as consumer `consumer`, and the cause's checkpoint (pairwise.checkpoint_fields),
    which it saves only while `lease_token` holds the cause's lease (ranker.cause_leases).

    New entries come through `reader`, the process's one reader of every log (subscribed
    from construction until `close`); its scripts run through `scripts` (the process's one
    runner), each call in a round trip of its own.
    """

    def __init__(self, client: aioredis.Redis, cause_id: str, *, consumer: str,
                 lease_token: str, read_batch: int, reader: VoteReader,
                 scripts: ScriptRunner) -> None:
        self.cause_id = cause_id
        self._redis = client
        self._stream = keys.votes(cause_id)
        self._checkpoint_key = keys.checkpoint(cause_id)
        self._base_key = keys.checkpoint_base(cause_id)
        self._deltas_key = keys.checkpoint_deltas(cause_id)
        self._staging_key = keys.checkpoint_staging(cause_id)
        self._lease_key = keys.lease(cause_id)
        self.consumer = consumer
        self._lease_token = lease_token
        self._read_batch = read_batch
        self._subscription = reader.subscribe(self._stream)
        self._scripts = scripts
        # The first page of pending entries `open` claimed, for `claim_pending`.
        self._claimed: list[Any] | None = None

    def close(self) -> None:
        """Stop reading new entries (what was delivered and not applied stays pending)."""
        self._subscription.close()

    async def open(self) -> tuple[Checkpoint, exclusions.Exclusions]:
        """Mark the cause awake (pairwise.awake_causes), create the consumer group at the
        start of the log (and the log if absent), and read the stored checkpoint (or an empty
        one) and the cause's exclusions now, claiming the first page of pending entries
        (`claim_pending`). One script on the cause's slot, beside the mark: both share their
        round trip with the other causes' calls (a ranker taking over another's causes
        opens dozens at once). A page read before and not taken is dropped: the load that
        calls this claims it.

        A crash leaves the cause marked with anything this process claimed or read: the
        entries claimed here were pending already, so their cause was marked by the consumer
        they were delivered to, and new entries are read only after this returns.

        Raises ValueError when the stored counts do not parse or are incomplete: starting
        from zero instead would silently lose every entry already acknowledged.
        """
        self._subscription.reset()
        self._claimed = None
        cause_id = self.cause_id
        _, (stored, base, deltas, version, members, claimed) = await asyncio.gather(
            awake_causes.wake(self._scripts, self.cause_id),
            self._scripts.run(
                _OPEN, [keys.votes(cause_id), keys.checkpoint(cause_id),
                        keys.checkpoint_base(cause_id), keys.checkpoint_deltas(cause_id),
                        keys.exclusions_version(cause_id), keys.exclusions_order(cause_id)],
                [keys.RANKER_GROUP, self.consumer, self._read_batch,
                 _INLINE_RESTORE_BYTES]))
        if base is None or deltas is None:
            # Large counts: read with the hash they were saved with, outside the script.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._checkpoint_key)
                pipe.lrange(self._base_key, 0, -1)
                pipe.lrange(self._deltas_key, 0, -1)
                fields, base, deltas = await pipe.execute()
        else:
            fields = dict(zip(stored[::2], stored[1::2], strict=True))
        cursor, entries, deleted = claimed[0], claimed[1], claimed[2] if len(claimed) > 2 else []
        self._claimed = [cursor, [(entry[0], dict(zip(entry[1][::2], entry[1][1::2],
                                                      strict=True)))
                                  for entry in entries if entry], deleted]
        return await self._checkpoint(fields, base, deltas), exclusions.loaded(version, members)

    async def _checkpoint(self, stored: dict[bytes, bytes], base: list[bytes],
                          deltas: list[bytes]) -> Checkpoint:
        """The checkpoint of the stored hash, base parts and deltas."""
        fields = {name.decode(): value for name, value in stored.items()}
        if checkpoint_fields.LAST_ID not in fields:
            return Checkpoint("", 0, PairCounts())
        last_id = fields[checkpoint_fields.LAST_ID].decode()
        votes_counted = int(fields[checkpoint_fields.VOTES_COUNTED])
        token = fields.get(checkpoint_fields.TOKEN, b"").decode()
        if len(base) != int(fields.get(checkpoint_fields.BASE_PARTS, -1)) \
                or len(deltas) != int(fields.get(checkpoint_fields.DELTAS, -1)):
            raise ValueError(f"cause {self.cause_id!r}: checkpoint lists {len(base)} base "
                             f"parts and {len(deltas)} deltas, its hash says otherwise")
        stored_bytes = sum(map(len, base)) + sum(map(len, deltas))
        counts, segments = _restore(base, deltas) if stored_bytes <= _INLINE_RESTORE_BYTES \
            else await asyncio.to_thread(_restore, base, deltas)
        left_out = None
        if checkpoint_fields.EXCLUSIONS_VERSION in fields:
            left_out = LeftOut(int(fields[checkpoint_fields.VOTES_UNTRUSTED]),
                               int(fields[checkpoint_fields.VOTES_EXCLUDED]),
                               int(fields[checkpoint_fields.EXCLUSIONS_VERSION]))
        return Checkpoint(last_id, votes_counted, counts, token, has_base=True,
                          base_bytes=sum(map(len, base)), delta_bytes=sum(map(len, deltas)),
                          left_out=left_out, segments=segments)

    async def read_through(self, last_id: str) -> AsyncIterator[list[RawEntry]]:
        """Every entry of the log up to `last_id`, in id order, in pages of about
        `_RECOUNT_PAGE_VOTES` votes (XRANGE: the consumer group does not see these reads)."""
        start, count = "-", self._read_batch
        while True:
            entries: list[RawEntry] = await self._redis.xrange(  # type: ignore[assignment]
                self._stream, start, last_id, count=count)
            if not entries:
                return
            yield entries
            if len(entries) < count:
                return
            start = f"({_text(entries[-1][0])}"
            votes = sum(len(fields.get(b"k", b"")) for _, fields in entries if fields)
            count = max(1, min(_RECOUNT_PAGE_ENTRIES,
                               _RECOUNT_PAGE_VOTES * len(entries) // max(votes, 1)))

    def wake(self) -> None:
        """End a `read_new` that waits now (it returns what it has, maybe nothing)."""
        self._subscription.interrupt()

    async def claim_pending(self) -> AsyncIterator[list[RawEntry]]:
        """Take over every pending entry of the group (any consumer's), in id order, in pages
        (the first claimed by `open`); then forget the other consumers, which hold nothing
        any more.

        Entries trimmed from the log while pending are dropped from the group by XAUTOCLAIM
        (Redis >= 7 reports them): those votes are lost, which is logged as an error.
        """
        reply, self._claimed = self._claimed, None
        # The script of `open` forgot the idle consumers if its page ended the claim.
        opened = reply is not None
        cursor: bytes | str = "0-0"
        while True:
            if reply is None:
                opened = False
                reply = await self._redis.xautoclaim(
                    self._stream, keys.RANKER_GROUP, self.consumer, min_idle_time=0,
                    start_id=cursor, count=self._read_batch)
            cursor, entries = reply[0], reply[1]
            deleted = reply[2] if len(reply) > 2 else []
            reply = None
            if deleted:
                logger.error("pending vote-log entries were trimmed before being counted",
                             extra={"cause_id": self.cause_id, "lost_entries": len(deleted),
                                    "first_lost": _text(deleted[0])})
            if entries:
                yield entries
            if _text(cursor) == "0-0":
                if not opened:
                    await self._scripts.run(_FORGET_IDLE_CONSUMERS, [self._stream],
                                            [keys.RANKER_GROUP, self.consumer])
                return

    async def read_new(self, wait_s: float | None) -> list[RawEntry]:
        """Entries never delivered to the group, up to the reader's batch, waiting up to
        `wait_s` seconds (None: until some come) for the reader to deliver some."""
        return await self._subscription.next_page(wait_s)

    async def save_base(self, *, previous_token: str, unknown_token: str, token: str,
                        last_id: str, votes_counted: int, left_out: LeftOut,
                        parts: Sequence[bytes | memoryview]) -> None:
        """Store a checkpoint whose counts are the snapshot `parts` (concatenated in order).

        The parts go to the cause's staging list in calls of ~4 MB; then one script
        checks fencing and moves them into place. `previous_token` names the checkpoint this
        consumer loaded or last saved; `unknown_token` an earlier save of its own whose
        reply was lost ("" if none), which may or may not have been applied. Raises
        CheckpointConflict when another consumer got in the way (nothing is written).
        """
        await self._redis.delete(self._staging_key)
        await self._redis.rpush(self._staging_key, token)
        call: list[bytes | memoryview] = []
        size = 0
        for part in parts:
            call.append(part)
            size += len(part)
            if size >= _BASE_CALL_BYTES:
                await self._redis.rpush(self._staging_key, *call)  # type: ignore[arg-type]
                call, size = [], 0
        if call:
            await self._redis.rpush(self._staging_key, *call)  # type: ignore[arg-type]
        await self._save(previous_token, unknown_token, token, last_id, votes_counted,
                         left_out, "base", len(parts))

    async def save_delta(self, *, previous_token: str, token: str, last_id: str,
                         votes_counted: int, left_out: LeftOut, votes: bytes) -> None:
        """Store a checkpoint that adds `votes` (pair_counts.encode_votes, b"" for none) to
        the stored one, which must be the one this consumer loaded or last saved, with a
        base. Raises CheckpointConflict otherwise (nothing is written)."""
        await self._save(previous_token, "", token, last_id, votes_counted, left_out,
                         "delta", votes, shared=len(votes) <= _SHARED_MAX_BYTES)

    async def _save(self, previous_token: str, unknown_token: str, token: str, last_id: str,
                    votes_counted: int, left_out: LeftOut, mode: str, payload: bytes | int, *,
                    shared: bool = False) -> None:
        run = self._scripts.run if shared else self._scripts.run_now
        status, detail = await run(
            _SAVE,
            [self._checkpoint_key, self._stream, self._base_key, self._deltas_key,
             self._staging_key, self._lease_key],
            [keys.RANKER_GROUP, self.consumer, previous_token, unknown_token, token, last_id,
             votes_counted, int(time.time() * 1000), mode, payload, self._lease_token,
             left_out.untrusted, left_out.excluded, left_out.exclusions_version])
        if int(status) != 1:
            raise CheckpointConflict(f"cause {self.cause_id!r}: {_text(detail)}")

    async def ack_through(self, last_id: str, *, about: int) -> int:
        """XACK this consumer's pending entries up to `last_id` (call only once a checkpoint
        at `last_id` is stored), in short scripts; returns the number acked. `about`, the
        entries expected, says whether the first script may share its round trip."""
        acked = 0
        run = self._scripts.run if about <= _SHARED_MAX_ACKS else self._scripts.run_now
        while True:
            n = int(await run(
                _ACK, [self._stream], [keys.RANKER_GROUP, self.consumer, last_id, _ACK_CHUNK]))
            run = self._scripts.run_now
            acked += n
            if n < _ACK_CHUNK:
                return acked


def _restore(base: list[bytes], deltas: list[bytes]) -> tuple[PairCounts, SegmentCounts]:
    """The counts and segment counts of a base snapshot in parts plus the deltas after it,
    in order. Each holds the overall counts' part first, then the segments' (if any)."""
    snapshot = memoryview(b"".join(base))
    overall = snapshot_length(snapshot)
    counts = PairCounts.from_bytes(snapshot[:overall])
    segments = SegmentCounts.from_bytes(snapshot[overall:])
    for delta in deltas:
        votes = encoded_votes_length(delta)
        counts.apply(*decode_votes(memoryview(delta)[:votes]))
        if len(delta) > votes:
            segments.apply_encoded(memoryview(delta)[votes:])
    return counts, segments


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
