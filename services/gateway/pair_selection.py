"""NextPair: a uniformly random pair of accepted proposals that this voter has not been shown.

The choice and its recording happen in one Lua script over the cause's keys:

1. Rejection sampling: SRANDMEMBER draws two distinct accepted indices (uniform over
   unordered pairs); a pair already in the voter's `seen` set is redrawn, at most `tries`
   times. Conditioned on success this is uniform over the unseen pairs.
2. Exact fallback, when every draw hit a seen pair (the voter has seen most pairs): count
   each accepted proposal's unseen higher-index partners from the `seen` set, draw one of the
   U unseen pairs by rank with a uniform number from Python, and walk to it. Cost
   O(n_accepted log n_accepted + |seen|), paid only near exhaustion, where it is exact.

The pair is recorded as seen ("lo:hi", indices) in the same script, when it is shown.
Pairs seen before a proposal was rejected stay in the set and are ignored while it is out.
"""

from __future__ import annotations

import random

from redis.asyncio import Redis

from gateway.catalog import Proposal
from pairwise import keys
from pairwise.errors import FailedPrecondition, NotFound
from pairwise.redis_scripts import Script, ScriptRunner

# KEYS: cause, accepted, seen, pids, proposals.  ARGV: tries, u in [0, 1).
# Returns {'ok', lo_id, lo_record, hi_id, hi_record}, {'no_cause'}, {'few', n_accepted}
# or {'exhausted', n_accepted}.
_NEXT_PAIR = Script("""
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local n = redis.call('SCARD', KEYS[2])
if n < 2 then return {'few', n} end
local lo, hi
for _ = 1, tonumber(ARGV[1]) do
  local drawn = redis.call('SRANDMEMBER', KEYS[2], 2)
  local a, b = tonumber(drawn[1]), tonumber(drawn[2])
  if a > b then a, b = b, a end
  if redis.call('SISMEMBER', KEYS[3], a .. ':' .. b) == 0 then
    lo, hi = a, b
    break
  end
end
if not lo then
  local sorted = {}
  for i, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do sorted[i] = tonumber(m) end
  table.sort(sorted)
  local rank = {}
  for r, index in ipairs(sorted) do rank[index] = r end
  -- seen_above[r]: ranks q > r already paired with rank r; n_seen[r]: how many.
  local seen_above, n_seen = {}, {}
  for _, pair in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    local colon = string.find(pair, ':', 1, true)
    local r = rank[tonumber(string.sub(pair, 1, colon - 1))]
    local q = rank[tonumber(string.sub(pair, colon + 1))]
    if r and q then
      local above = seen_above[r]
      if not above then above = {}; seen_above[r] = above end
      above[q] = true
      n_seen[r] = (n_seen[r] or 0) + 1
    end
  end
  local unseen = 0
  for r = 1, n do unseen = unseen + (n - r) - (n_seen[r] or 0) end
  if unseen == 0 then return {'exhausted', n} end
  local k = math.floor(tonumber(ARGV[2]) * unseen)
  if k >= unseen then k = unseen - 1 end
  for r = 1, n - 1 do
    local here = (n - r) - (n_seen[r] or 0)
    if k < here then
      local above = seen_above[r] or {}
      for q = r + 1, n do
        if not above[q] then
          if k == 0 then lo, hi = sorted[r], sorted[q]; break end
          k = k - 1
        end
      end
      break
    end
    k = k - here
  end
end
redis.call('SADD', KEYS[3], lo .. ':' .. hi)
local lo_id = redis.call('LINDEX', KEYS[4], lo)
local hi_id = redis.call('LINDEX', KEYS[4], hi)
local records = redis.call('HMGET', KEYS[5], lo_id, hi_id)
return {'ok', lo_id, records[1], hi_id, records[2]}
""")

DEFAULT_TRIES = 32


class PairSelector:
    """Chooses and records the next pair shown to a voter (Redis adapter).

    `tries` bounds the rejection-sampling draws before the exact fallback (0 = always exact).
    Concurrent choices share round trips through `scripts` (one of its own when not given).
    """

    def __init__(self, redis: Redis, *, tries: int = DEFAULT_TRIES,
                 rng: random.Random | None = None, scripts: ScriptRunner | None = None) -> None:
        self._scripts = scripts or ScriptRunner(redis)
        self._tries = tries
        self._rng = rng or random.Random()

    async def next_pair(self, cause_id: str, voter_id: str) -> tuple[Proposal, Proposal]:
        """`(left, right)`: an unseen pair of accepted proposals, in random order, now
        recorded as seen by `voter_id`.

        Raises NotFound (unknown cause) or FailedPrecondition (fewer than two accepted
        proposals, or the voter has been shown every pair).
        """
        reply = await self._scripts.run(
            _NEXT_PAIR,
            (keys.cause(cause_id), keys.accepted(cause_id), keys.seen_pairs(cause_id, voter_id),
             keys.proposal_ids(cause_id), keys.proposals(cause_id)),
            (self._tries, repr(self._rng.random())))
        outcome = reply[0].decode()
        if outcome == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        if outcome == "few":
            raise FailedPrecondition(
                f"cause {cause_id!r} has {reply[1]} accepted proposal(s); a pair needs 2")
        if outcome == "exhausted":
            raise FailedPrecondition(
                f"voter {voter_id!r} has been shown every pair of the {reply[1]} accepted "
                f"proposals of cause {cause_id!r}")
        first = Proposal.from_record(reply[1].decode(), reply[2])
        second = Proposal.from_record(reply[3].decode(), reply[4])
        return (first, second) if self._rng.random() < 0.5 else (second, first)
