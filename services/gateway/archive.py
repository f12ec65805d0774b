"""Archiving a closed cause: its votes and final ranking to an export folder on disk, its
Redis memory released, the final ranking kept for reads.

Why the log leaves Redis: a cause's vote log takes about 40 % of its memory (its entries
hold every vote id and voter id), so no archive that keeps it could come near 5 % of the
open cause's memory. The archive is an export folder (publishing: manifest.json, votes,
ranking, with raw voter ids, so that exclusions by voter and a re-import keep their
meaning), written and checked before anything is deleted; `python -m pairwise rank` recomputes
the final ranking from it, and `python -m pairwise import` brings it back as a new cause.

The steps, each safe to repeat (ArchiveCause called again goes on from where one stopped):
1. The cause must be CLOSED and its served ranking final (it counted the log's last entry).
2. The export is written into `<root>/<cause_id>/` through this gateway's own ExportRanking
   and ExportVotes (`publishing.exporter`, over loopback).
3. One script marks the cause ARCHIVED — if its log still ends where the export does — with
   the final vote count and last entry, and keeps the exported ranking pages
   (`keys.final_ranking`). From here no vote, pair or ranker load is taken
   (pairwise.cause_life), and reads answer from what is kept.
4. Once no ranker holds the cause's lease (the holder lets an archived cause go within its
   discovery interval, and no ranker takes an archived cause's lease), the memory is
   released: receipts, checkpoint, selection state, seen pairs, rate-limit state, used
   tokens; the log is trimmed to nothing (the stream and its group stay, a few hundred
   bytes, so that a ranker read still in flight meets an empty log, not an error). Kept: the
   cause and its catalog, counters, voters' estimate, exclusions and both audit trails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from pairwise import cause_life, keys
from pairwise.errors import FailedPrecondition, NotFound, Unavailable
from pairwise.redis_scripts import Script, ScriptRunner
from pairwise.v1 import types_pb2

logger = logging.getLogger(__name__)

# How often the release looks whether the ranker let the cause go (seconds).
_LEASE_POLL_S = 0.1
# Keys deleted per command while releasing a cause's per-voter keys.
_UNLINK_BATCH = 1_000

# KEYS: cause, vote_stats, votes, audit, final_ranking. ARGV: last entry id the archive holds
# ('' none), votes it holds, archive folder, reason, by, then the ranking pages (serialized).
# Returns {'no_cause'}, {'state', state} (not CLOSED), {'moved', last entry} (the log ends
# elsewhere: reopened meanwhile) or {'ok'}.
_MARK = Script(cause_life.STATE_LUA + cause_life.AUDIT_LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no_cause'} end
local state = cause_state(KEYS[1])
if state ~= 'CLOSED' then return {'state', state} end
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local last = top[1] and top[1][1] or ''
if last ~= ARGV[1] then return {'moved', last} end
local now = now_ms()
local closes = redis.call('HGET', KEYS[1], 'closes_at_ms')
if not redis.call('HGET', KEYS[1], 'closed_at_ms') then
  redis.call('HSET', KEYS[1], 'closed_at_ms', closes or now)
end
redis.call('HSET', KEYS[1], 'state', 'ARCHIVED', 'votes_final', ARGV[2],
           'last_entry_final', ARGV[1], 'archived_at_ms', now, 'archive', ARGV[3],
           'release', 'pending')
redis.call('DEL', KEYS[5])
for i = 6, #ARGV do redis.call('RPUSH', KEYS[5], ARGV[i]) end
audit(KEYS[4], 'archive', 'CLOSED', 'ARCHIVED', ARGV[4], ARGV[5], now, ARGV[2], KEYS[1])
return {'ok'}
""")

# KEYS: cause, lease, votes, then the keys to delete. Returns {'held'} while a ranker holds
# the lease (nothing done), else {'ok', keys deleted}.
_RELEASE = Script("""
if redis.call('EXISTS', KEYS[2]) == 1 then return {'held'} end
redis.call('XTRIM', KEYS[3], 'MAXLEN', 0)
local deleted = 0
for i = 4, #KEYS do deleted = deleted + redis.call('UNLINK', KEYS[i]) end
redis.call('HDEL', KEYS[1], 'release')
return {'ok', deleted}
""")


@dataclass(frozen=True)
class Archived:
    votes: int
    keys_released: int


# Writes the export of a cause into a folder and returns the ranking pages it exported:
# (cause_id, folder) -> pages. Runs in a thread (publishing.exporter is synchronous).
ExportWriter = Callable[[str, Path], list[types_pb2.RankingExportPage]]


class Archives:
    """Archives closed causes into folders under `root`, and serves their final rankings.

    `write_export` is set once the gateway serves (it exports through the gateway itself).
    """

    def __init__(self, redis: Redis, scripts: ScriptRunner, root: Path) -> None:
        self._redis = redis
        self._scripts = scripts
        self._root = root
        self.write_export: ExportWriter | None = None
        self._running: dict[str, asyncio.Task[Archived]] = {}

    async def pages(self, cause_id: str) -> list[types_pb2.RankingExportPage]:
        """The final ranking's pages kept for an archived cause (as ExportRanking sent
        them)."""
        raw = await self._redis.lrange(keys.final_ranking(cause_id), 0, -1)  # type: ignore[misc]
        return [types_pb2.RankingExportPage.FromString(page) for page in raw]

    async def final_ranking(self, cause_id: str, offset: int, limit: int) -> types_pb2.Ranking:
        """Entries `offset` .. `offset + limit - 1` of an archived cause's final ranking."""
        pages = await self.pages(cause_id)
        if not pages:
            raise NotFound(f"cause {cause_id!r} keeps no final ranking")
        ranking = types_pb2.Ranking()
        ranking.CopyFrom(pages[0].ranking)
        del ranking.entries[:]
        entries = [entry for page in pages for entry in page.ranking.entries]
        ranking.entries.extend(entries[offset:offset + limit])
        return ranking

    async def archive(self, cause_id: str, life: cause_life.Life, *, reason: str, by: str,
                      wait_s: float) -> Archived:
        """Archive the cause (module doc), waiting at most `wait_s` for its ranker to let it
        go. Concurrent calls for one cause share one run.

        Raises FailedPrecondition (not CLOSED, or already archived and released),
        Unavailable (the ranking is not final yet, or the ranker still holds the cause:
        call again), NotFound.
        """
        running = self._running.get(cause_id)
        if running is None:
            running = asyncio.get_running_loop().create_task(
                self._archive(cause_id, life, reason, by, wait_s), name=f"archive:{cause_id}")
            self._running[cause_id] = running
            running.add_done_callback(lambda _: self._running.pop(cause_id, None))
        return await asyncio.shield(running)

    async def _archive(self, cause_id: str, life: cause_life.Life, reason: str, by: str,
                       wait_s: float) -> Archived:
        deadline = time.monotonic() + wait_s
        if life.state is cause_life.State.ARCHIVED:
            if not await self._redis.hget(keys.cause(cause_id), "release"):
                raise FailedPrecondition(f"cause {cause_id!r} is ARCHIVED already (in "
                                         f"{life.archive})")
        elif life.state is not cause_life.State.CLOSED:
            raise FailedPrecondition(f"cause {cause_id!r} is {life.state}: close it first "
                                     "(CloseCause)")
        else:
            await self._write_and_mark(cause_id, life, reason, by)
        released = await self._release(cause_id, deadline)
        return Archived(votes=life.votes, keys_released=released)

    async def _write_and_mark(self, cause_id: str, life: cause_life.Life, reason: str,
                              by: str) -> None:
        if self.write_export is None:
            raise Unavailable("this gateway is not serving yet; retry")
        folder = self._root / cause_id
        started = time.perf_counter()
        pages = await asyncio.to_thread(self.write_export, cause_id, folder)
        header = pages[0].ranking
        if header.votes_counted != life.votes or header.last_vote_entry_id != life.last_entry_id:
            raise Unavailable(
                f"the ranking of cause {cause_id!r} counts {header.votes_counted:,} of its "
                f"{life.votes:,} votes so far; the archive waits for the final ranking: retry")
        reply = await self._scripts.run_now(
            _MARK, [keys.cause(cause_id), keys.vote_stats(cause_id), keys.votes(cause_id),
                    keys.cause_audit(cause_id), keys.final_ranking(cause_id)],
            [life.last_entry_id, life.votes, str(folder.absolute()), reason, by,
             *(page.SerializeToString() for page in pages)])
        status = _text(reply[0])
        if status == "no_cause":
            raise NotFound(f"cause {cause_id!r} not found")
        if status == "state":
            raise FailedPrecondition(f"cause {cause_id!r} is {_text(reply[1])}: cannot "
                                     "archive it")
        if status == "moved":
            raise FailedPrecondition(f"cause {cause_id!r} took votes during the archive (its "
                                     "log moved on): close it, then archive again")
        logger.info("cause archived", extra={
            "cause_id": cause_id, "votes": life.votes, "folder": str(folder),
            "seconds": round(time.perf_counter() - started, 2)})

    async def _release(self, cause_id: str, deadline: float) -> int:
        """Delete what an archived cause no longer needs once no ranker holds it; the keys
        deleted."""
        per_voter = []
        for family in ("seen", "rate", "token"):
            per_voter += await self._matching(f"{family}:{{{_glob_escape(cause_id)}}}:*")
        fixed = [keys.receipts(cause_id), keys.checkpoint(cause_id),
                 keys.checkpoint_base(cause_id), keys.checkpoint_deltas(cause_id),
                 keys.checkpoint_staging(cause_id), keys.newcomers(cause_id),
                 keys.selection_summary(cause_id), keys.cause_rate_limit(cause_id)]
        deleted = 0
        for start in range(0, len(per_voter), _UNLINK_BATCH):
            deleted += await self._redis.unlink(*per_voter[start:start + _UNLINK_BATCH])
        while True:
            reply = await self._scripts.run_now(
                _RELEASE, [keys.cause(cause_id), keys.lease(cause_id), keys.votes(cause_id),
                           *fixed], [])
            if _text(reply[0]) == "ok":
                deleted += int(reply[1])
                break
            if time.monotonic() >= deadline:
                raise Unavailable(
                    f"cause {cause_id!r} is archived; its memory is released once its ranker "
                    "lets it go (within a few seconds): call ArchiveCause again")
            await asyncio.sleep(_LEASE_POLL_S)
        logger.info("archived cause's memory released",
                    extra={"cause_id": cause_id, "keys": deleted})
        return deleted

    async def _matching(self, pattern: str) -> list[str]:
        found = []
        async for key in self._redis.scan_iter(match=pattern, count=1_000):
            found.append(_text(key))
        return found


def export_writer(gateway_addr: str, admin_token: str) -> ExportWriter:
    """An ExportWriter exporting through the gateway's loopback port at `gateway_addr`
    (pairwise.grpc_server: local credentials; Parquet, raw voter ids)."""
    def write(cause_id: str, folder: Path) -> list[types_pb2.RankingExportPage]:
        import grpc

        from pairwise.v1 import gateway_pb2_grpc
        from publishing.exporter import CHANNEL_OPTIONS, ExportFailed, export

        with grpc.secure_channel(gateway_addr, grpc.local_channel_credentials(
                grpc.LocalConnectionType.LOCAL_TCP), options=CHANNEL_OPTIONS) as channel:
            try:
                result = export(gateway_pb2_grpc.GatewayServiceStub(channel), admin_token,
                                cause_id, "parquet", folder, raw_voter_ids=True)
            except ExportFailed as exc:
                raise Unavailable(f"the archive of cause {cause_id!r} could not be "
                                  f"written: {exc}; retry") from exc
        return result.pages

    return write


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
