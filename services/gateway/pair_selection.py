"""NextPair: the pair a voter is shown next, chosen by the cause's strategy.

UNIFORM: a uniformly random pair of accepted proposals this voter has not been shown.
ADAPTIVE: the gateway draws a plan from the cause's adaptive selection structures
(gateway.adaptive_selection, rebuilt from the ranker's latest fit summary): whether to show
a newcomer first, and candidate pairs, best first. The script then takes, in order:
1. when the plan says so, the newcomer with the fewest estimated votes (`keys.newcomers`,
   under the cause's `newcomer_votes`), with a uniformly random accepted partner the voter
   has not seen it with;
2. the first candidate whose two proposals are accepted, distinct and unseen by the voter
   (the fit may be a second old: a proposal rejected since is never shown);
3. else the uniform pair, which is also the plan's randomness floor and the answer while a
   cause has no fit yet.

The uniform pair, in the same Lua script over the cause's keys:
- Rejection sampling: SRANDMEMBER draws two distinct accepted indices (uniform over unordered
  pairs); a pair already in the voter's `seen` set is redrawn, at most `tries` times.
  Conditioned on success this is uniform over the unseen pairs.
- Exact fallback, when every draw hit a seen pair (the voter has seen most pairs): count each
  accepted proposal's unseen higher-index partners from the `seen` set, draw one of the U
  unseen pairs by rank with a uniform number from Python, and walk to it. Cost
  O(n_accepted log n_accepted + |seen|), paid only near exhaustion, where it is exact.

The pair is recorded as seen ("lo:hi", indices) in the same script, when it is shown, and a
newcomer shown gains one estimated vote (the ranker resets the estimate to the votes counted
after each fit). Pairs seen before a proposal was rejected stay in the set and are ignored
while it is out. The script also returns the cause's strategy, top_k and summary version, so
the gateway notices a new fit or a changed strategy without a round trip of its own.

A voter's seen pairs are bounded, in count and in time, so that no caller can grow Redis
without limit by asking for pairs: past `max_seen` pairs of one cause the voter is refused
(RESOURCE_EXHAUSTED; a person casts 10–20 votes, a script asking for thousands is not one),
and the set expires `seen_ttl_s` after the voter's last pair (a voter back after that may
be shown a pair again). The set is a Redis set of "lo:hi" strings, see docs/performance.md
for its memory per voter.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from dataclasses import dataclass

from redis.asyncio import Redis

from gateway.adaptive_selection import AdaptiveSelection, Draw
from gateway.catalog import Proposal
from pairwise import cause_life, keys, selection_summary
from pairwise.errors import FailedPrecondition, NotFound, ResourceExhausted
from pairwise.redis_scripts import Script, ScriptRunner

logger = logging.getLogger(__name__)

# KEYS: cause, accepted, seen, pids, proposals, newcomers, selection summary.
# ARGV: tries, u in [0, 1), exposure (0/1), max seen pairs (0: no cap), seen-set lifetime in
# seconds (0: none), then candidate pairs a1, b1, a2, b2, ...
# Returns {'ok', lo_id, lo_record, hi_id, hi_record, strategy, top_k, summary_version},
# {'no_cause'}, {'state', state} (not OPEN: pairwise.cause_life), {'few', n_accepted},
# {'capped', n_seen} or {'exhausted', n_accepted}.
_NEXT_PAIR = Script(cause_life.STATE_LUA + """
local conf = redis.call('HMGET', KEYS[1], 'title', 'pair_selection', 'top_k', 'newcomer_votes')
if not conf[1] then return {'no_cause'} end
local state = cause_state(KEYS[1])
if state ~= 'OPEN' then return {'state', state} end
local n = redis.call('SCARD', KEYS[2])
if n < 2 then return {'few', n} end
local max_seen = tonumber(ARGV[4])
if max_seen > 0 then
  local n_seen = redis.call('SCARD', KEYS[3])
  if n_seen >= max_seen then return {'capped', n_seen} end
end
local function unseen(a, b)
  if a > b then a, b = b, a end
  if redis.call('SISMEMBER', KEYS[3], a .. ':' .. b) == 0 then return a, b end
  return nil, nil
end
local lo, hi
if conf[2] == 'ADAPTIVE' then
  if ARGV[3] == '1' then
    local threshold = tonumber(conf[4]) or 10
    local lowest = redis.call('ZRANGE', KEYS[6], 0, 3, 'WITHSCORES')
    for i = 1, #lowest, 2 do
      if tonumber(lowest[i + 1]) >= threshold then break end
      local x = tonumber(lowest[i])
      if redis.call('SISMEMBER', KEYS[2], x) == 1 then
        for _ = 1, 4 do
          local y = tonumber(redis.call('SRANDMEMBER', KEYS[2]))
          if y ~= x then
            lo, hi = unseen(x, y)
            if lo then break end
          end
        end
      end
      if lo then break end
    end
  end
  if not lo then
    for i = 6, #ARGV - 1, 2 do
      local a, b = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
      if a ~= b and redis.call('SISMEMBER', KEYS[2], a) == 1
          and redis.call('SISMEMBER', KEYS[2], b) == 1 then
        lo, hi = unseen(a, b)
        if lo then break end
      end
    end
  end
end
if not lo then
  for _ = 1, tonumber(ARGV[1]) do
    local drawn = redis.call('SRANDMEMBER', KEYS[2], 2)
    local a, b = unseen(tonumber(drawn[1]), tonumber(drawn[2]))
    if a then
      lo, hi = a, b
      break
    end
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
  local unseen_pairs = 0
  for r = 1, n do unseen_pairs = unseen_pairs + (n - r) - (n_seen[r] or 0) end
  if unseen_pairs == 0 then return {'exhausted', n} end
  local k = math.floor(tonumber(ARGV[2]) * unseen_pairs)
  if k >= unseen_pairs then k = unseen_pairs - 1 end
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
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
redis.call('ZADD', KEYS[6], 'XX', 'INCR', 1, lo)
redis.call('ZADD', KEYS[6], 'XX', 'INCR', 1, hi)
local lo_id = redis.call('LINDEX', KEYS[4], lo)
local hi_id = redis.call('LINDEX', KEYS[4], hi)
local records = redis.call('HMGET', KEYS[5], lo_id, hi_id)
return {'ok', lo_id, records[1], hi_id, records[2], conf[2] or 'UNIFORM', conf[3] or '',
        redis.call('HGET', KEYS[7], 'version') or '0'}
""")

DEFAULT_TRIES = 32
# A voter's seen pairs per cause, at most, and how long the set outlives their last pair.
DEFAULT_MAX_SEEN_PAIRS = 1_000
DEFAULT_SEEN_PAIRS_TTL_S = 30 * 24 * 3600
# Causes whose adaptive structures a gateway keeps (least recently used dropped first).
DEFAULT_MAX_CAUSES = 256
ADAPTIVE = "ADAPTIVE"
_UNIFORM_DRAW = Draw(exposure=False, candidates=())


@dataclass(frozen=True)
class _CauseSelection:
    """What this gateway knows of one cause's selection: the strategy and top_k the script
    last returned, and for an adaptive cause the structures built from summary `version`
    for that top_k."""

    strategy: str
    top_k: int
    version: int
    selection: AdaptiveSelection | None = None


class PairSelector:
    """Chooses and records the next pair shown to a voter (Redis adapter).

    `tries` bounds the rejection-sampling draws before the exact fallback (0 = always exact).
    `newcomer_share` is the share of an adaptive cause's prompts that show a newcomer first.
    `max_seen` caps a voter's seen pairs per cause (0: no cap) and `seen_ttl_s` is how long
    they are kept after the voter's last pair (0: for ever).
    Concurrent choices share round trips through `scripts` (one of its own when not given).
    """

    def __init__(self, redis: Redis, *, tries: int = DEFAULT_TRIES,
                 newcomer_share: float = 0.3, rng: random.Random | None = None,
                 scripts: ScriptRunner | None = None,
                 max_causes: int = DEFAULT_MAX_CAUSES,
                 max_seen: int = DEFAULT_MAX_SEEN_PAIRS,
                 seen_ttl_s: int = DEFAULT_SEEN_PAIRS_TTL_S) -> None:
        self._redis = redis
        self._scripts = scripts or ScriptRunner(redis)
        self._tries = tries
        self._newcomer_share = newcomer_share
        self._rng = rng or random.Random()
        self._max_causes = max_causes
        self._max_seen = max_seen
        self._seen_ttl_s = seen_ttl_s
        self._causes: OrderedDict[str, _CauseSelection] = OrderedDict()
        self._loading: dict[str, asyncio.Task[None]] = {}

    async def next_pair(self, cause_id: str, voter_id: str) -> tuple[Proposal, Proposal]:
        """`(left, right)`: an unseen pair of accepted proposals, in random order, now
        recorded as seen by `voter_id`.

        Raises NotFound (unknown cause), FailedPrecondition (the cause is not OPEN, has
        fewer than two accepted proposals, or the voter has been shown every pair) or
        ResourceExhausted (the voter has been shown the most pairs one voter is shown).
        """
        known = self._causes.get(cause_id)
        draw = _UNIFORM_DRAW if known is None or known.selection is None \
            else known.selection.draw(self._rng)
        args: list[int | str] = [self._tries, repr(self._rng.random()), int(draw.exposure),
                                 self._max_seen, self._seen_ttl_s]
        for a, b in draw.candidates:
            args += [a, b]
        reply = await self._scripts.run(
            _NEXT_PAIR,
            (keys.cause(cause_id), keys.accepted(cause_id), keys.seen_pairs(cause_id, voter_id),
             keys.proposal_ids(cause_id), keys.proposals(cause_id), keys.newcomers(cause_id),
             keys.selection_summary(cause_id)),
            args)
        outcome = reply[0].decode()
        if outcome == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        if outcome == "state":
            raise cause_life.refusal(cause_id, reply[1].decode())
        if outcome == "few":
            raise FailedPrecondition(
                f"cause {cause_id!r} has {reply[1]} accepted proposal(s); a pair needs 2")
        if outcome == "capped":
            raise ResourceExhausted(
                f"voter {voter_id!r} has been shown {int(reply[1])} pairs of cause "
                f"{cause_id!r}, the most one voter is shown (setting GATEWAY_MAX_SEEN_PAIRS)")
        if outcome == "exhausted":
            raise FailedPrecondition(
                f"voter {voter_id!r} has been shown every pair of the {reply[1]} accepted "
                f"proposals of cause {cause_id!r}")
        self._note(cause_id, known, reply[5].decode(), int(reply[6] or 0), int(reply[7]))
        first = Proposal.from_record(reply[1].decode(), reply[2])
        second = Proposal.from_record(reply[3].decode(), reply[4])
        return (first, second) if self._rng.random() < 0.5 else (second, first)

    def _note(self, cause_id: str, known: _CauseSelection | None, strategy: str, top_k: int,
              version: int) -> None:
        """Keep what the script said of the cause; rebuild its structures in the background
        when it turned adaptive, its top_k changed or a newer fit was published."""
        if known is not None:
            self._causes.move_to_end(cause_id)
            if known.strategy == strategy and (
                    strategy != ADAPTIVE or (known.top_k == top_k and known.version == version)):
                return
        if strategy != ADAPTIVE:
            self._remember(cause_id, _CauseSelection(strategy, top_k, version))
            return
        if cause_id not in self._loading:
            task = asyncio.get_running_loop().create_task(
                self._load(cause_id, top_k), name=f"selection:{cause_id}")
            self._loading[cause_id] = task
            task.add_done_callback(lambda _: self._loading.pop(cause_id, None))

    async def _load(self, cause_id: str, top_k: int) -> None:
        """Build the cause's adaptive structures from its latest fit summary (none yet:
        newcomers and uniform pairs only). Until they are built, calls use the previous
        ones; a failure is logged and retried on a later call."""
        try:
            version, data = await self._redis.hmget(keys.selection_summary(cause_id),
                                                    ["version", "data"])
            summary = None if not isinstance(data, bytes) \
                else selection_summary.decode(int(version or 0), data)
            selection = await asyncio.to_thread(
                AdaptiveSelection.build, summary, top_k=top_k,
                newcomer_share=self._newcomer_share)
        except Exception as exc:
            logger.warning("adaptive selection not rebuilt; keeping the previous one",
                           extra={"cause_id": cause_id, "error": repr(exc)})
            return
        self._remember(cause_id, _CauseSelection(
            ADAPTIVE, top_k, 0 if summary is None else summary.version, selection))

    def _remember(self, cause_id: str, known: _CauseSelection) -> None:
        self._causes[cause_id] = known
        self._causes.move_to_end(cause_id)
        while len(self._causes) > self._max_causes:
            self._causes.popitem(last=False)
