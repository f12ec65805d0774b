"""Votes as columns (pairwise.v1.VoteColumns) and Arrow: how ExportVotes carries thousands of
votes a message, built from an archive's rows, and turned into vote rows (columns built from
the vote log: publishing.log_columns).

Every step works on whole columns (numpy and Arrow calls); the only Python work per item is
per skipped vote (its free text). The wire format is documented in
proto/pairwise/v1/gateway.proto, `VoteColumns`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pairwise import vote_log
from pairwise.v1 import gateway_pb2, types_pb2
from pairwise.voter_attributes import NO_ATTRIBUTES
from publishing import vote_table

_INT32 = np.dtype("<i4")
_SKIP = ord(vote_log.SKIP)
_SKIP_REASON_NAMES = pa.array([types_pb2.SkipReason.Name(value)
                               for value in sorted(types_pb2.SkipReason.values())])


class MalformedColumns(vote_table.MalformedEntries):
    """Columns whose lengths disagree, or that name proposals the export lacks."""


def _joined(words: pa.Array) -> bytes:
    """A string array's items, space-separated, in one bytes object."""
    if len(words) == 0:
        return b""
    lists = pa.ListArray.from_arrays(pa.array([0, len(words)], pa.int32()), words)
    return pc.binary_join(lists, " ")[0].as_buffer().to_pybytes()


def from_rows(batch: pa.RecordBatch, proposal_ids: pa.Array) -> gateway_pb2.VoteColumns:
    """The columns of vote rows (publishing.vote_table.SCHEMA, as a Parquet votes file holds
    them), voter ids as the rows hold them. `proposal_ids` holds the id of each catalog
    index. Raises MalformedColumns for a kind it does not know, MalformedEntries for a
    proposal not in the catalog."""
    n = batch.num_rows
    if n == 0:
        return gateway_pb2.VoteColumns()
    entry_ids = batch.column("entry_id")
    starts = vote_table.entry_starts(entry_ids)
    runs = np.diff(np.concatenate([starts, [n]])).astype(_INT32)
    kinds = batch.column("kind")
    letters = np.full(len(kinds.dictionary), 0, dtype=np.uint8)
    for position, name in enumerate(kinds.dictionary.to_pylist()):
        if name not in vote_table.KIND_NAMES:
            raise MalformedColumns(f"unknown vote kind {name!r}")
        letters[position] = ord(vote_table.LETTER_OF_KIND[name])
    kind_letters = letters[kinds.indices.to_numpy(zero_copy_only=False)]
    sides = [vote_table.catalog_indices(batch.column(side), proposal_ids)
             .astype(_INT32).tobytes() for side in ("proposal_a", "proposal_b")]
    trusted = batch.column("trusted").to_numpy(zero_copy_only=False)
    columns = gateway_pb2.VoteColumns(
        entry_ids=_joined(entry_ids.take(pa.array(starts))),
        entry_votes=runs.tobytes(), kinds=kind_letters.tobytes(), a=sides[0], b=sides[1],
        vote_ids=_joined(batch.column("vote_id")), voter_ids=_joined(batch.column("voter_id")),
        trust=np.where(trusted, ord("1"), ord("0")).astype(np.uint8).tobytes(),
        attributes=_joined(batch.column("attributes")))
    skips = np.flatnonzero(kind_letters == _SKIP)
    if len(skips):
        at = pa.array(skips)
        names = batch.column("skip_reason_code").take(at).to_pylist()
        codes = np.zeros(n, dtype=np.uint8)
        codes[skips] = [types_pb2.SkipReason.Value(name) if name else 0 for name in names]
        columns.skip_reason_codes = codes.tobytes()
        columns.skip_reasons.extend(
            [text or "" for text in batch.column("skip_reason").take(at).to_pylist()])
    return columns


def entry_ids(columns: gateway_pb2.VoteColumns) -> tuple[str, str]:
    """The first and the last entry id the columns name ("" when none)."""
    ids = columns.entry_ids
    if not ids:
        return "", ""
    return (ids[:ids.find(b" ")] if b" " in ids else ids).decode(), \
        ids[ids.rfind(b" ") + 1:].decode()


def to_rows(columns: gateway_pb2.VoteColumns, proposal_ids: pa.Array) -> pa.RecordBatch:
    """The vote rows of `columns` (publishing.vote_table.SCHEMA); `proposal_ids` holds the
    id of each catalog index.

    Raises MalformedColumns when a column does not hold one item per vote, or names a
    proposal index outside the catalog.
    """
    kinds = np.frombuffer(columns.kinds, dtype=np.uint8)
    n = len(kinds)
    runs = np.frombuffer(columns.entry_votes, dtype=_INT32)
    if int(runs.sum()) != n or (runs < 0).any():
        raise MalformedColumns(f"{n} votes but entries holding {int(runs.sum())}")
    entry_of_vote = pa.array(np.repeat(np.arange(len(runs), dtype=np.int32), runs))
    codes = vote_table.CODE_OF_LETTER[kinds]
    if (codes == 255).any():
        raise MalformedColumns("unknown vote kinds")
    sides = [_indices(side, n, len(proposal_ids)) for side in (columns.a, columns.b)]
    trust = np.frombuffer(columns.trust, dtype=np.uint8)
    if len(trust) != n:
        raise MalformedColumns(f"{n} votes but {len(trust)} trust flags")
    is_skip = codes == vote_log.SKIP_CODE
    n_skips = int(is_skip.sum())
    if n_skips:
        if len(columns.skip_reasons) != n_skips or len(columns.skip_reason_codes) != n:
            raise MalformedColumns(f"{n_skips} skips but reasons for "
                                   f"{len(columns.skip_reasons)}")
        skip_of_vote = pa.array(np.cumsum(is_skip, dtype=np.int32) - 1, mask=~is_skip)
        reasons = pa.array(list(columns.skip_reasons), pa.string()).take(skip_of_vote)
        reason_values = np.frombuffer(columns.skip_reason_codes, dtype=np.uint8)
        if reason_values.max() >= len(_SKIP_REASON_NAMES):
            raise MalformedColumns("a skip reason code that is not a SkipReason")
        reason_codes = _SKIP_REASON_NAMES.take(pa.array(reason_values, mask=~is_skip))
    else:
        reasons = reason_codes = pa.nulls(n, pa.string())
    return pa.RecordBatch.from_arrays([
        vote_table.words(columns.entry_ids, len(runs)).take(entry_of_vote),
        pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int8)),
                                       vote_table.KIND_DICTIONARY),
        pa.DictionaryArray.from_arrays(sides[0], proposal_ids),
        pa.DictionaryArray.from_arrays(sides[1], proposal_ids),
        vote_table.words(columns.vote_ids, n),
        vote_table.words(columns.voter_ids, n),
        pa.array(trust == ord("1")),
        reasons,
        reason_codes,
        vote_table.words(columns.attributes, n) if columns.attributes else vote_table.repeated(
            NO_ATTRIBUTES, n),
    ], schema=vote_table.SCHEMA)


def _indices(column: bytes, n: int, n_proposals: int) -> pa.Int32Array:
    """A column of int32 proposal indices, checked to be `n` indices of the catalog."""
    if len(column) != 4 * n:
        raise MalformedColumns(f"{n} votes but {len(column) / 4:g} proposal indices")
    values = np.frombuffer(column, dtype=_INT32)
    if n and (values.min() < 0 or values.max() >= n_proposals):
        raise MalformedColumns("a proposal index outside the catalog")
    return pa.array(values.astype(np.int32, copy=False))
