"""The votes file of an export: one row per vote in log order, as Parquet or CSV.

Columns:
    entry_id     the vote-log entry holding the vote (an imported batch holds up to 1,000)
    kind         "win" (proposal_a beat proposal_b), "tie", or "skip" (proposal_a was shown
                 left, proposal_b right)
    proposal_a, proposal_b   proposal ids
    vote_id      SubmitVote's receipt, or the ImportedVote's vote_id
    voter_id     the voter's pseudonym in the cause (or the raw id when exported so)
    trusted      false for a vote flagged suspicious at ingest (kept in the log)
    skip_reason  the free text given with a skip (null for other kinds; may be empty)
    skip_reason_code  the skip's reason (SkipReason's full name, e.g.
                 SKIP_REASON_LIKE_BOTH; null for other kinds)
    attributes   the voter's declared attributes as the vote log codes them: one character
                 per attribute of the cause's `voter_attributes` (the manifest's cause, in order),
                 the position of the value among that attribute's values in
                 "0123456789abcdefghijklmnopqrstuv", "-" for unknown; "-" when none is known

Batches are built from ExportVotes messages with a few numpy and Arrow calls per message
(no Python loop per vote), and written as they arrive: the writer holds at most one row
group (`ROW_GROUP_VOTES`) in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pairwise import vote_log
from pairwise.v1 import gateway_pb2, types_pb2
from pairwise.voter_attributes import NO_ATTRIBUTES

PARQUET, CSV = "parquet", "csv"
FORMATS = (PARQUET, CSV)

KIND_NAMES = ("win", "tie", "skip")  # position = vote_log's kind code
KIND_DICTIONARY = pa.array(KIND_NAMES)
LETTER_OF_KIND = dict(zip(KIND_NAMES, (vote_log.WIN, vote_log.TIE, vote_log.SKIP), strict=True))
CODE_OF_LETTER = np.full(256, 255, dtype=np.uint8)
for _letter, _code in ((vote_log.WIN, vote_log.WIN_CODE), (vote_log.TIE, vote_log.TIE_CODE),
                       (vote_log.SKIP, vote_log.SKIP_CODE)):
    CODE_OF_LETTER[ord(_letter)] = _code

SCHEMA = pa.schema([
    ("entry_id", pa.string()),
    ("kind", pa.dictionary(pa.int8(), pa.string())),
    ("proposal_a", pa.dictionary(pa.int32(), pa.string())),
    ("proposal_b", pa.dictionary(pa.int32(), pa.string())),
    ("vote_id", pa.string()),
    ("voter_id", pa.string()),
    ("trusted", pa.bool_()),
    ("skip_reason", pa.string()),
    ("skip_reason_code", pa.string()),
    ("attributes", pa.string()),
])
# CSV has no dictionaries: the same columns as plain strings.
CSV_SCHEMA = pa.schema([pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
                        for f in SCHEMA])

# Columns with few distinct values. Dictionaries of the id columns, nearly all distinct,
# halved the write speed and saved nothing once zstd had compressed them.
_DICTIONARY_COLUMNS = ["kind", "proposal_a", "proposal_b"]
# Columns whose row groups carry min / max statistics (a reader skips row groups outside
# the entry ids it wants). Those of the id and text columns took 40 % of the write time.
_STATISTICS_COLUMNS = ["entry_id", "kind", "trusted"]
_SPACE = ord(" ")
# Rows per Parquet row group: ~20 MB of Arrow memory, large enough for good compression.
ROW_GROUP_VOTES = 262_144


class MalformedEntries(ValueError):
    """Log entries whose per-vote fields disagree, or name proposals the export lacks."""


def file_name(fmt: str) -> str:
    return f"votes.{fmt}"


def batch_from_entries(entries: Sequence[gateway_pb2.VoteLogEntry],
                       proposal_ids: pa.Array) -> pa.RecordBatch:
    """The rows of `entries` (one per vote); `proposal_ids` holds the id of each index.

    Raises MalformedEntries when an entry's fields do not hold one item per vote.
    """
    n_entries = len(entries)
    kinds = "".join([e.kinds for e in entries]).encode("ascii", errors="replace")
    n = len(kinds)
    votes_per_entry = np.fromiter((len(e.kinds) for e in entries), dtype=np.int64,
                                  count=n_entries)
    entry_of_vote = pa.array(np.repeat(np.arange(n_entries, dtype=np.int32), votes_per_entry))
    codes = CODE_OF_LETTER[np.frombuffer(kinds, dtype=np.uint8)]
    if (codes == 255).any():
        raise MalformedEntries(f"unknown vote kinds in entries {_first_ids(entries)}")
    a = _indices([e.a for e in entries], n, len(proposal_ids), entries)
    b = _indices([e.b for e in entries], n, len(proposal_ids), entries)
    trust = "".join([e.trust for e in entries]).encode("ascii", errors="replace")
    if len(trust) != n:
        raise MalformedEntries(f"trust flags do not match kinds in {_first_ids(entries)}")
    is_skip = codes == vote_log.SKIP_CODE
    if is_skip.any():
        skips = pa.array(is_skip)
        reasons = pc.if_else(skips, pa.array([e.skip_reason for e in entries], pa.string())
                             .take(entry_of_vote), pa.nulls(n, pa.string()))
        reason_codes = pc.if_else(skips, pa.array(
            [types_pb2.SkipReason.Name(e.skip_reason_code) for e in entries], pa.string())
            .take(entry_of_vote), pa.nulls(n, pa.string()))
    else:
        reasons = reason_codes = pa.nulls(n, pa.string())
    attributes = [e.attributes for e in entries]
    columns = [
        pa.array([e.entry_id for e in entries], pa.string()).take(entry_of_vote),
        pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)), KIND_DICTIONARY),
        pa.DictionaryArray.from_arrays(a, proposal_ids),
        pa.DictionaryArray.from_arrays(b, proposal_ids),
        _words([e.vote_ids for e in entries], n, entries),
        _words([e.voter_ids for e in entries], n, entries),
        pa.array(np.frombuffer(trust, dtype=np.uint8) == ord("1")),
        reasons,
        reason_codes,
        _words([coded or " ".join(NO_ATTRIBUTES * len(e.kinds))
                for coded, e in zip(attributes, entries, strict=True)], n, entries)
        if any(attributes) else repeated(NO_ATTRIBUTES, n),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def _first_ids(entries: Sequence[gateway_pb2.VoteLogEntry]) -> str:
    return f"{entries[0].entry_id} .. {entries[-1].entry_id}"


def _indices(parts: list[str], n: int, n_proposals: int,
             entries: Sequence[gateway_pb2.VoteLogEntry]) -> pa.Int32Array:
    """The decimal proposal indices of `parts`, checked to be `n` indices of the catalog."""
    try:
        values = _words(parts, n, entries).cast(pa.int32())
    except (pa.ArrowInvalid, MalformedEntries):
        raise MalformedEntries(
            f"proposal indices do not match kinds in {_first_ids(entries)}") from None
    if n and values.null_count == 0:
        low, high = pc.min_max(values).values()
        if low.as_py() >= 0 and high.as_py() < n_proposals:
            return values
    elif not n:
        return values
    raise MalformedEntries(f"a proposal index outside the catalog in {_first_ids(entries)}")


def _words(parts: list[str], n: int, entries: Sequence[gateway_pb2.VoteLogEntry]) -> pa.Array:
    """The space-separated words of `parts`, as one string array of `n` strings."""
    try:
        return words(" ".join(parts).encode(), n)
    except MalformedEntries:
        raise MalformedEntries(f"ids do not match kinds in {_first_ids(entries)}") from None


def words(text: bytes, n: int) -> pa.StringArray:
    """The space-separated words of `text`, as a string array of `n` strings.

    Built without a Python object per word: words all of one width (pseudonyms) are copied
    as items of that width; others are first taken with the space that follows each (the
    spaces' positions are the offsets), then Arrow cuts that last byte off every word in one
    pass. Raises MalformedEntries unless `text` holds `n` words.
    """
    if n == 0:
        if text:
            raise MalformedEntries(f"no votes but a list of {len(text)} bytes")
        return pa.array([], pa.string())
    spaced = np.frombuffer(text + b" ", dtype=np.uint8)
    width, rest = divmod(len(spaced), n)
    if not rest and width > 1:
        # Words of one width (pseudonyms: 32 hex digits), if the spaces fall between them:
        # each word copied as one item of its width, without the space after it.
        if (spaced[width - 1::width] == _SPACE).all() and \
                np.count_nonzero(spaced == _SPACE) == n:
            packed = np.ndarray((n,), dtype=f"V{width - 1}", buffer=spaced,
                                strides=(width,)).copy()
            return pa.StringArray.from_buffers(
                n, pa.py_buffer(np.arange(0, n * (width - 1) + 1, width - 1, dtype=np.int32)),
                pa.py_buffer(packed))
    ends = np.flatnonzero(spaced == _SPACE)
    if len(ends) != n:
        raise MalformedEntries(f"{n} votes but a list of {len(ends)} ids")
    offsets = np.empty(n + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = ends + 1
    spaced_words = pa.BinaryArray.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets),
                                                               pa.py_buffer(spaced)])
    return pc.binary_slice(spaced_words, 0, -1).view(pa.string())


def repeated(word: str, n: int) -> pa.Array:
    """`word` (one ASCII character) `n` times, as a string array."""
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(n + 1, dtype=np.int32)),
                                       pa.py_buffer(word.encode() * n))


class VoteFileWriter:
    """Writes vote batches to `path` as they come, a row group at a time. Use as a context
    manager; `rows` counts the votes written.

    Each row group is encoded and written in a thread of its own while the caller builds the
    next (Arrow releases the GIL while it encodes): at most two row groups are in memory,
    the one being written and the one filling.
    """

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
        self.path = path
        self.rows = 0
        self._format = fmt
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | pa_csv.CSVWriter = (
            pq.ParquetWriter(path, SCHEMA, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS,
                             write_statistics=_STATISTICS_COLUMNS)
            if fmt == PARQUET else pa_csv.CSVWriter(path, CSV_SCHEMA))
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vote-file")
        self._writing: Future[None] | None = None

    def __enter__(self) -> VoteFileWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= ROW_GROUP_VOTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        table = pa.Table.from_batches(self._pending, schema=SCHEMA)
        self._pending, self._pending_rows = [], 0
        self._wait()
        self._writing = self._thread.submit(self._write_table, table)

    def _write_table(self, table: pa.Table) -> None:
        if self._format == PARQUET:
            self._writer.write_table(table, row_group_size=table.num_rows)
        else:
            self._writer.write_table(table.cast(CSV_SCHEMA))

    def _wait(self) -> None:
        """Until the row group being written is written (raising what writing it raised)."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self) -> None:
        try:
            self._flush()
            self._wait()
        finally:
            self._thread.shutdown()
            self._writer.close()


def entry_starts(entry_ids: pa.Array) -> np.ndarray:
    """Where each run of rows of one log entry begins, in rows in log order (non-empty)."""
    changes = np.flatnonzero(pc.not_equal(entry_ids[1:], entry_ids[:-1]).to_numpy(
        zero_copy_only=False)) + 1
    return np.concatenate([[0], changes])


def catalog_indices(column: pa.DictionaryArray, proposal_ids: pa.Array) -> np.ndarray:
    """Each row's proposal (a dictionary-encoded id column) as its catalog index in
    `proposal_ids`. Raises MalformedEntries for a proposal not in the catalog."""
    catalog = pc.index_in(column.dictionary, value_set=proposal_ids)
    if catalog.null_count:
        unknown = column.dictionary.filter(pc.is_null(catalog))[0]
        raise MalformedEntries(f"proposal {unknown} is not in the catalog")
    indices: np.ndarray = catalog.to_numpy()[column.indices.to_numpy(zero_copy_only=False)]
    return indices


def entries_from_batch(batch: pa.RecordBatch,
                       proposal_ids: pa.Array) -> list[gateway_pb2.VoteLogEntry]:
    """The log entries a batch of vote rows (SCHEMA, as a Parquet votes file holds them)
    was written from, in order: what ExportVotes sent, voter ids as the file holds them.

    The rows of an entry are consecutive; an entry the batch's end cuts in two comes as two
    entries with the same id. `proposal_ids` holds the id of each catalog index (as for
    `batch_from_entries`). Raises MalformedEntries for a kind or proposal it does not know.
    """
    n = batch.num_rows
    if n == 0:
        return []
    entry_ids = batch.column("entry_id")
    starts = entry_starts(entry_ids).astype(np.int32)
    offsets = pa.array(np.concatenate([starts, [n]]).astype(np.int32))

    def joined(words: pa.Array, separator: str) -> list[str]:
        return pc.binary_join(pa.ListArray.from_arrays(offsets, words), separator).to_pylist()

    kinds = batch.column("kind")
    letters = [LETTER_OF_KIND.get(name) for name in kinds.dictionary.to_pylist()]
    if None in letters:
        raise MalformedEntries(f"unknown vote kinds in {entry_ids[0]} .. {entry_ids[n - 1]}")
    sides = [joined(pa.array(catalog_indices(batch.column(side), proposal_ids))
                    .cast(pa.string()), " ") for side in ("proposal_a", "proposal_b")]
    trusted = batch.column("trusted").to_numpy(zero_copy_only=False)
    kind_letters = np.array(letters)[kinds.indices.to_numpy(zero_copy_only=False)]
    is_skip = kind_letters == vote_log.SKIP
    reasons = batch.column("skip_reason").to_pylist()
    codes = batch.column("skip_reason_code").to_pylist()
    columns = zip(
        entry_ids.take(pa.array(starts)).to_pylist(),
        joined(pa.array(kind_letters), ""),
        *sides,
        joined(batch.column("vote_id"), " "), joined(batch.column("voter_id"), " "),
        joined(pa.array(np.where(trusted, "1", "0")), ""),
        joined(batch.column("attributes"), " "), strict=True)
    entries = []
    for start, (entry_id, kind, a, b, vote_ids, voter_ids, trust, attributes) in zip(
            starts.tolist(), columns, strict=True):
        skip = bool(is_skip[start]) and len(kind) == 1
        entries.append(gateway_pb2.VoteLogEntry(
            entry_id=entry_id, kinds=kind, a=a, b=b, vote_ids=vote_ids, voter_ids=voter_ids,
            trust=trust, skip_reason=(reasons[start] or "") if skip else "",
            skip_reason_code=(codes[start] or "SKIP_REASON_UNSPECIFIED") if skip
            else "SKIP_REASON_UNSPECIFIED",
            attributes=attributes))
    return entries


def read_batches(path: Path, fmt: str) -> Iterator[pa.RecordBatch]:
    """The rows of a votes file in order, a bounded batch at a time (CSV_SCHEMA types for
    CSV, SCHEMA's for Parquet)."""
    if fmt == PARQUET:
        yield from pq.ParquetFile(path).iter_batches(batch_size=ROW_GROUP_VOTES)
        return
    # The writer leaves a null empty and quotes an empty string.
    convert = pa_csv.ConvertOptions(column_types=CSV_SCHEMA, strings_can_be_null=True,
                                    null_values=[""], quoted_strings_can_be_null=False)
    with pa_csv.open_csv(path, convert_options=convert,
                         read_options=pa_csv.ReadOptions(block_size=16 << 20)) as reader:
        yield from reader
