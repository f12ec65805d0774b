"""Votes as columns (pairwise.v1.VoteColumns) built from the vote log as XRANGE returns it:
what ExportVotes sends for a cause whose log is in Redis.

numpy only: a gateway exporting a live cause never loads Arrow (half a second of CPU and
~60 MB of memory; publishing.vote_columns, which turns columns into Arrow rows, is the
client's side and the archive's). Every step works on whole columns (bytes joins, numpy
calls); the only Python work per item is per log entry where Redis hands entries over one by
one (reading the fields of each), and per skipped vote (its free text). The wire format is
documented in proto/pairwise/v1/gateway.proto, `VoteColumns`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from pairwise import submitted_vote, vote_log
from pairwise.v1 import gateway_pb2, types_pb2
from pairwise.voter_attributes import NO_ATTRIBUTES

INT32 = np.dtype("<i4")
_SKIP = ord(vote_log.SKIP)
_SPACE = ord(" ")
_NO_ATTRIBUTE = NO_ATTRIBUTES.encode()
# SkipReason's value of each r-field code (pairwise.vote_log); "" (no r field) unspecified.
_SKIP_REASON_VALUE = {code: types_pb2.SkipReason.Value(name)
                      for code, name in submitted_vote.SKIP_REASON_NAMES.items()}


class MalformedLog(ValueError):
    """Log entries whose per-vote fields do not hold one item per vote, or whose proposal
    indices are not decimal indices."""


# The fields `append_votes` writes first, in its order (pairwise.vote_log); r and g follow
# when present.
_LOG_FIELDS = (b"k", b"a", b"b", b"v", b"u", b"q")
_N_LOG_FIELDS = 2 * len(_LOG_FIELDS)
_NAME_AT = [operator.itemgetter(position) for position in range(0, _N_LOG_FIELDS, 2)]
_VALUE_AT = [operator.itemgetter(position) for position in range(1, _N_LOG_FIELDS, 2)]


def from_log(reply: Sequence[Sequence[Any]]) -> gateway_pb2.VoteColumns:
    """The columns of consecutive log entries as XRANGE returns them (bytes, format in
    pairwise.vote_log): each entry as Redis sends it, [id, [field, value, ...]], or as
    redis-py parses it, (id, {field: value}). Voter ids as recorded.

    Raises MalformedLog when the proposal indices are not one decimal index per vote."""
    if not reply:
        return gateway_pb2.VoteColumns()
    kinds, a, b, vote_ids, voter_ids, trust, reasons, attributes = _fields(
        [fields for _, fields in reply])
    votes = np.fromiter(map(len, kinds), dtype=INT32, count=len(kinds))
    joined_kinds = b"".join(kinds)
    n = len(joined_kinds)
    columns = gateway_pb2.VoteColumns(
        entry_ids=b" ".join([entry_id for entry_id, _ in reply]), entry_votes=votes.tobytes(),
        kinds=joined_kinds, a=int32_words(b" ".join(a), n), b=int32_words(b" ".join(b), n),
        vote_ids=b" ".join(vote_ids), voter_ids=b" ".join(voter_ids),
        # An entry without trust flags is trusted (pairwise.vote_log: every writer adds q).
        trust=b"".join(trust) if None not in trust else b"".join([
            flags if flags is not None else b"1" * len(k)
            for flags, k in zip(trust, kinds, strict=True)]))
    if attributes.count(None) != len(attributes):
        columns.attributes = b" ".join([
            codes or b" ".join([_NO_ATTRIBUTE] * len(k))
            for codes, k in zip(attributes, kinds, strict=True)])
    skips = np.flatnonzero(np.frombuffer(joined_kinds, dtype=np.uint8) == _SKIP)
    if len(skips):
        entry_of_skip = np.searchsorted(np.cumsum(votes), skips, side="right")
        parts = [vote_log.skip_reason_parts(reasons[entry].decode(errors="replace"))
                 if reasons[entry] is not None else ("", "")
                 for entry in entry_of_skip.tolist()]
        codes = np.zeros(n, dtype=np.uint8)
        codes[skips] = [_SKIP_REASON_VALUE.get(code, 0) for code, _ in parts]
        columns.skip_reason_codes = codes.tobytes()
        columns.skip_reasons.extend([text for _, text in parts])
    return columns


def _fields(entries: list[Any]) -> list[Sequence[Any]]:
    """The k, a, b, v, u, q, r and g fields of `entries` (field lists as Redis sends them,
    or dictionaries), one sequence each: None for a q, r or g absent, b"" for others.

    When every entry starts with k a b v u q, in `append_votes`' order, the values are taken
    by position without a Python step per entry (an interactive log has one vote an entry);
    the r and g that may follow, by name. Any other entry is read by name.
    """
    n = len(entries)
    if isinstance(entries[0], list) and min(map(len, entries)) >= _N_LOG_FIELDS:
        if all(list(map(name_at, entries)).count(name) == n
               for name_at, name in zip(_NAME_AT, _LOG_FIELDS, strict=True)):
            columns: list[Sequence[Any]] = [list(map(value_at, entries))
                                            for value_at in _VALUE_AT]
            reasons: list[bytes | None] = [None] * n
            attributes: list[bytes | None] = [None] * n
            lengths = np.fromiter(map(len, entries), dtype=np.int64, count=n)
            for position in np.flatnonzero(lengths > _N_LOG_FIELDS).tolist():
                fields = entries[position]
                tail = dict(zip(fields[_N_LOG_FIELDS::2], fields[_N_LOG_FIELDS + 1::2],
                                strict=True))
                reasons[position], attributes[position] = tail.get(b"r"), tail.get(b"g")
            return [*columns, reasons, attributes]
    named = [fields if isinstance(fields, dict) else dict(
        zip(fields[0::2], fields[1::2], strict=True)) for fields in entries]
    by_name: list[Sequence[Any]] = [[fields.get(name, b"") for fields in named]
                                    for name in _LOG_FIELDS[:-1]]
    return by_name + [[fields.get(name) for fields in named] for name in (b"q", b"r", b"g")]


def int32_words(text: bytes, n: int) -> bytes:
    """Space-separated decimal indices as int32 bytes; MalformedLog unless `text` holds `n`
    of them, each digits only and below 2**31.

    numpy's text parser reads them (~0.05 µs an index, as Arrow's cast); it would skip a
    doubled space or stop early at a stray byte, so the text is checked first to be digits
    and single spaces only."""
    if not n:
        return b""
    if text.translate(None, b"0123456789 ") or text.count(b" ") != n - 1 \
            or b"  " in text or text[:1] == b" " or text[-1:] == b" ":
        raise MalformedLog(f"{n} votes but proposal indices that are not {n} decimal numbers")
    values = np.fromstring(text, dtype=np.int64, sep=" ")  # type: ignore[call-overload]
    if len(values) != n or values.max() >= 2**31:
        raise MalformedLog(f"{n} votes but proposal indices that are not {n} int32 numbers")
    return values.astype(INT32).tobytes()
