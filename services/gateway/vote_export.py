"""What ExportVotes reads: a snapshot of a cause's catalog, and its vote log in batches.

The log is read with XRANGE in id order, a bounded number of votes at a time, so an export
of millions of votes holds one batch in memory. A batch is passed on as columns
(publishing.log_columns: thousands of votes a message) or, for clients that do not ask for
columns, as entries as recorded (format in pairwise.vote_log); voter ids replaced by their
pseudonyms (gateway.pseudonyms) unless the admin asked for them raw.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from gateway.catalog import Proposal
from gateway.pseudonyms import PSEUDONYM_HEX_DIGITS, Pseudonyms
from pairwise import keys, submitted_vote, vote_log
from pairwise.errors import FailedPrecondition, InvalidArgument
from pairwise.ids import is_entry_id
from pairwise.redis_client import is_cluster_client
from pairwise.v1 import gateway_pb2
from publishing import log_columns

if TYPE_CHECKING:
    import pyarrow as pa

# Votes per XRANGE reply (and per ExportVotes message): ~1 MB of fields, big enough that
# the per-call costs vanish, small enough to keep an export's memory flat.
BATCH_VOTES = 20_000
# Entries asked for by the first XRANGE; later calls ask for as many as held BATCH_VOTES
# votes in the previous reply (imported entries hold up to 1,000 votes, interactive ones 1).
_FIRST_COUNT = 64
_MAX_COUNT = 10_000


def check_entry_id(field: str, value: str) -> str:
    """A vote-log entry id ("<ms>-<seq>"), or "" (none given)."""
    if value and not is_entry_id(value):
        raise InvalidArgument(field, f"not a log entry id: {value[:40]!r}")
    return value


@dataclass(frozen=True)
class CatalogSnapshot:
    """Every proposal of a cause in index order, read together with `version`."""

    version: int
    proposals: list[Proposal]


class VoteExport:
    """Reads what an export of one cause needs from Redis (bytes replies)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        # XRANGE answered as Redis sends it, each entry [id, [field, value, ...]]: redis-py's
        # conversion of every entry into a tuple and a dictionary costs 3-4 µs an entry, most
        # of what exporting a log of one-vote entries costs. A client of its own on the same
        # pool, so that no other caller's XRANGE changes; a Redis Cluster client (no shared
        # pool) keeps redis-py's form, which the columns read too.
        self._raw_xrange = redis
        if not is_cluster_client(redis):
            self._raw_xrange = Redis(connection_pool=redis.connection_pool)
            self._raw_xrange.set_response_callback("XRANGE", _as_sent)

    async def catalog(self, cause_id: str) -> CatalogSnapshot:
        """The cause's proposals and catalog version, read in one transaction."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(keys.catalog_version(cause_id))
            pipe.hgetall(keys.proposals(cause_id))
            version, records = await pipe.execute()
        proposals = sorted((Proposal.from_record(pid.decode(), record)
                            for pid, record in records.items()), key=lambda p: p.index)
        return CatalogSnapshot(version=int(version or 0), proposals=proposals)

    async def pseudonyms(self, cause_id: str) -> Pseudonyms:
        """The cause's pseudonyms; its salt is drawn by the first export that asks."""
        salt_key = keys.pseudonym_salt(cause_id)
        await self._redis.set(salt_key, secrets.token_hex(32), nx=True)
        salt: bytes = await self._redis.get(salt_key)  # type: ignore[assignment]
        return Pseudonyms(bytes.fromhex(salt.decode()))

    async def entries(self, cause_id: str, through_entry_id: str,
                      pseudonyms: Pseudonyms | None,
                      ) -> AsyncIterator[list[gateway_pb2.VoteLogEntry]]:
        """The log's entries up to `through_entry_id` ("" = to the end), oldest first, in
        batches of about BATCH_VOTES votes; voter ids through `pseudonyms` unless None."""
        async for reply in self._replies(cause_id, through_entry_id):
            # Off the event loop: hashing a batch's voter ids takes tens of milliseconds, which
            # the other calls of the gateway would otherwise wait for.
            yield await asyncio.to_thread(_entry_messages, reply, pseudonyms)

    async def columns(self, cause_id: str, through_entry_id: str,
                      pseudonyms: Pseudonyms | None,
                      ) -> AsyncIterator[gateway_pb2.VoteColumns]:
        """The log's votes up to `through_entry_id` ("" = to the end), oldest first, as
        columns of about BATCH_VOTES votes (whole entries); voter ids through `pseudonyms`
        unless None."""
        def converted(reply: list[tuple[bytes, dict[bytes, bytes]]]) -> gateway_pb2.VoteColumns:
            columns = log_columns.from_log(reply)
            if pseudonyms is not None and columns.voter_ids:
                columns.voter_ids = pseudonyms.of_list(columns.voter_ids)
            return columns

        async for reply in self._replies(cause_id, through_entry_id, self._raw_xrange):
            yield await asyncio.to_thread(converted, reply)

    async def _replies(self, cause_id: str, through_entry_id: str, redis: Redis | None = None,
                       ) -> AsyncIterator[list[Any]]:
        """XRANGE replies (through `redis`, by default the parsing client) covering the log
        up to `through_entry_id` ("" = to the end), each of about BATCH_VOTES votes."""
        redis = redis or self._redis
        log = keys.votes(cause_id)
        end = through_entry_id or "+"
        count = _FIRST_COUNT
        # The next reply is asked for before this one's parts are passed on, so that Redis
        # reads it (on another core) while they are converted and sent.
        asked: asyncio.Future[Any] | None = asyncio.ensure_future(
            redis.xrange(log, "-", end, count=count))
        try:
            while asked is not None:
                reply: list[Any] = await asked
                asked = None
                if not reply:
                    return
                sizes = list(map(len, _kinds(reply)))
                if len(reply) == count:
                    last_id = reply[-1][0]
                    start = "(" + (last_id.decode() if isinstance(last_id, bytes) else last_id)
                    count = max(1, min(_MAX_COUNT, count * BATCH_VOTES // max(sum(sizes), 1)))
                    asked = asyncio.ensure_future(redis.xrange(log, start, end, count=count))
                for part in _parts(reply, sizes):
                    yield part
        finally:
            if asked is not None:  # the export ended early: the reply asked for is not needed
                if asked.done() and not asked.cancelled():
                    asked.exception()  # retrieved, or asyncio would log it as lost
                asked.cancel()


def _parts(reply: list[Any], sizes: list[int]) -> Iterator[list[Any]]:
    """`reply` cut into runs of whole entries of at most BATCH_VOTES votes (an entry larger
    than that alone): after a stretch of one-vote entries the count asked for is large, and
    the imported entries that may follow hold up to 1,000 votes each, which in one message
    would pass what a client accepts."""
    begin = held = 0
    for k, size in enumerate(sizes):
        if held and held + size > BATCH_VOTES:
            yield reply[begin:k]
            begin, held = k, 0
        held += size
    if begin < len(reply):
        yield reply[begin:]


async def archived_entries(folder: Path, through_entry_id: str,
                           pseudonyms: Pseudonyms | None, proposal_ids: list[str],
                           ) -> AsyncIterator[list[gateway_pb2.VoteLogEntry]]:
    """An archived cause's log entries up to `through_entry_id` ("" = all), read back from
    its archive folder, in batches of about BATCH_VOTES votes, as `entries` sends them;
    voter ids through `pseudonyms` unless None. `proposal_ids` holds the id of each catalog
    index. Raises as `archived_rows` does."""
    from publishing import vote_table

    def converted(batch: pa.RecordBatch) -> list[gateway_pb2.VoteLogEntry]:
        entries = vote_table.entries_from_batch(batch, catalog)
        if pseudonyms is not None:
            each = _pseudonymised_each([entry.voter_ids.encode() for entry in entries],
                                       pseudonyms)
            for entry, voter_ids in zip(entries, each, strict=True):
                entry.voter_ids = voter_ids.decode()
        return entries

    catalog = _catalog_array(proposal_ids)
    async for batch in archived_rows(folder, through_entry_id):
        yield await asyncio.to_thread(converted, batch)


async def archived_columns(folder: Path, through_entry_id: str,
                           pseudonyms: Pseudonyms | None, proposal_ids: list[str],
                           ) -> AsyncIterator[gateway_pb2.VoteColumns]:
    """An archived cause's votes up to `through_entry_id` ("" = all), read back from its
    archive folder, as columns of about BATCH_VOTES votes, as `columns` sends them; voter
    ids through `pseudonyms` unless None. `proposal_ids` holds the id of each catalog index.
    Raises as `archived_rows` does."""
    from publishing import vote_columns

    def converted(batch: pa.RecordBatch) -> gateway_pb2.VoteColumns:
        columns = vote_columns.from_rows(batch, catalog)
        if pseudonyms is not None and columns.voter_ids:
            columns.voter_ids = pseudonyms.of_list(columns.voter_ids)
        return columns

    catalog = _catalog_array(proposal_ids)
    async for batch in archived_rows(folder, through_entry_id):
        yield await asyncio.to_thread(converted, batch)


def _catalog_array(proposal_ids: list[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(proposal_ids, pa.string())


async def archived_rows(folder: Path, through_entry_id: str) -> AsyncIterator[pa.RecordBatch]:
    """An archived cause's vote rows up to `through_entry_id` ("" = all), read back from its
    archive folder (an export with raw voter ids, gateway.archive), in batches of at most
    BATCH_VOTES rows.

    Raises FailedPrecondition when the folder is gone, or its votes file no longer has the
    SHA-256 its manifest gives (nothing is sent from a changed archive).
    """
    # Imported here: only archived causes need them, and pyarrow takes half a second to load.
    import pyarrow.parquet as pq

    from publishing import manifest

    def opened() -> Iterator[pa.RecordBatch]:
        try:
            document = manifest.read(folder)
            checks = manifest.check_files(folder, document)
        except (manifest.NotAnExport, OSError) as exc:
            raise FailedPrecondition(f"the archive {folder} cannot be read: {exc}") from None
        changed = [check.name for check in checks if not check.ok]
        if changed:
            raise FailedPrecondition(f"the archive {folder} was changed since it was written "
                                     f"({', '.join(changed)}: SHA-256 differs)")
        return pq.ParquetFile(folder / document["votes"]["file"]).iter_batches(
            batch_size=BATCH_VOTES)

    batches = await asyncio.to_thread(opened)
    last = _entry_order(through_entry_id) if through_entry_id else None
    while True:
        batch = await asyncio.to_thread(next, batches, None)
        if batch is None or batch.num_rows == 0:
            return
        if last is not None and _entry_order(batch.column("entry_id")[-1].as_py()) > last:
            # Rows are in log order: the first row past `last` ends the export.
            entry_ids = batch.column("entry_id").to_pylist()
            kept = next(row for row, entry_id in enumerate(entry_ids)
                        if _entry_order(entry_id) > last)
            if kept:
                yield batch.slice(0, kept)
            return
        yield batch


def _as_sent(response: Any, **options: Any) -> Any:
    return response


def _kinds(reply: list[Any]) -> list[bytes]:
    """The k field of each entry of an XRANGE reply, parsed or as sent."""
    if reply and isinstance(reply[0][1], dict):
        return [fields.get(b"k", b"") for _, fields in reply]
    return [fields[1] if fields[:1] == [b"k"] else dict(
        zip(fields[0::2], fields[1::2], strict=True)).get(b"k", b"") for _, fields in reply]


def _entry_order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence)


def _entry_messages(reply: list[tuple[bytes, dict[bytes, bytes]]],
                    pseudonyms: Pseudonyms | None) -> list[gateway_pb2.VoteLogEntry]:
    voter_ids = [fields.get(b"u", b"") for _, fields in reply]
    if pseudonyms is not None:
        voter_ids = _pseudonymised_each(voter_ids, pseudonyms)
    return [_entry_message(entry_id, fields, voters)
            for (entry_id, fields), voters in zip(reply, voter_ids, strict=True)]


def _pseudonymised_each(lists: list[bytes], pseudonyms: Pseudonyms) -> list[bytes]:
    """The pseudonyms of each list of space-separated voter ids (an empty list stays empty),
    all looked up in one call."""
    kept = [voter_ids for voter_ids in lists if voter_ids]
    if not kept:
        return lists
    joined = pseudonyms.of_list(b" ".join(kept))
    width = PSEUDONYM_HEX_DIGITS + 1
    out, at = [], 0
    for voter_ids in lists:
        length = (voter_ids.count(b" ") + 1) * width if voter_ids else 0
        out.append(joined[at:at + length - 1] if length else voter_ids)
        at += length
    return out


def _entry_message(entry_id: bytes, fields: dict[bytes, bytes],
                   voter_ids: bytes) -> gateway_pb2.VoteLogEntry:
    kinds = fields.get(b"k", b"").decode()
    reason_code, reason_text = vote_log.skip_reason_parts(
        fields.get(b"r", b"").decode(errors="replace"))
    return gateway_pb2.VoteLogEntry(
        entry_id=entry_id.decode(), kinds=kinds, a=fields.get(b"a", b"").decode(),
        b=fields.get(b"b", b"").decode(), vote_ids=fields.get(b"v", b"").decode(),
        voter_ids=voter_ids.decode(),
        # An entry without trust flags is trusted (pairwise.vote_log: every writer adds q).
        trust=fields.get(b"q", b"1" * len(kinds)).decode(),
        skip_reason=reason_text,
        skip_reason_code=submitted_vote.SKIP_REASON_NAMES.get(reason_code,
                                                              "SKIP_REASON_UNSPECIFIED"),
        attributes=fields.get(b"g", b"").decode(errors="replace"))
