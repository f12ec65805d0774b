"""The format of a cause's vote log (a Redis Stream): the Lua that writes its entries, and the
code that reads them.

One stream entry holds one or more votes, in order: ingest writes an interactive vote as an
entry of its own and an imported batch as entries of up to `MAX_VOTES_PER_ENTRY` votes. One
XADD per vote cost ~15 µs of Redis CPU and ~13 µs of ranker decoding per vote; an entry of
1,000 votes costs a fraction of that per vote, and decodes with numpy.

Fields (bytes as Redis returns them); every list has one item per vote:
    k   kinds, one character per vote: "w" (a beat b), "t" (a and b tied), "s" (skipped; a
        shown left, b right). The number of votes is len(k).
    a   proposal indices (decimal), space-separated
    b   proposal indices (decimal), space-separated
    v   vote_ids, space-separated (ids never contain whitespace)
    u   voter_ids, space-separated
    q   trust, one character per vote: "1" trusted, "0" suspicious (kept, flagged; see
        docs/semantics.md, Integrity)
    r   skip reason: only in an entry holding one vote, of kind "s": its reason code (one
        of SKIP_REASON_CODES), then, when the voter gave free text, a space and the text.
        Ingest counts skips by the code alone, so the text never becomes a counter. Logs
        written before reasons had codes hold the text alone: it reads as "other" with it.
    g   the voters' declared attributes, space-separated codes (pairwise.voter_attributes:
        one character per declared attribute, "-" unknown); absent when no vote of the entry
        has any, so every vote of an entry without it is of unknown attributes
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pairwise.voter_attributes import NO_ATTRIBUTES, decode_codes

Kind = Literal["w", "t", "s"]
WIN: Kind = "w"
TIE: Kind = "t"
SKIP: Kind = "s"

# Why a vote was skipped, as the r field names it (pairwise.v1.SkipReason, in order). All Our
# Ideas offers the first seven; "other" is a reason told in free text only, "unspecified" none.
SKIP_REASON_CODES = ("unspecified", "like_both", "like_neither", "unfamiliar_left",
                     "unfamiliar_right", "unfamiliar_both", "same", "cannot_decide", "other")


def skip_reason_field(code: str, text: str) -> str:
    """The r field of a skip with reason `code` (in SKIP_REASON_CODES) and free `text`."""
    return f"{code} {text}" if text else code


def skip_reason_parts(field: str) -> tuple[str, str]:
    """(code, free text) of an r field; ("", "") for none. A field written before skip
    reasons had codes holds the voter's text alone: it reads as "other" with that text."""
    code, _, text = field.partition(" ")
    if field and code not in SKIP_REASON_CODES:
        return "other", field
    return code, text


# Lua defining `skip_reason_coded(r)`: the r field `r` as written today, for an r written
# before skip reasons had codes (the voter's text alone, "" for none) as skip_reason_parts
# reads it. Replays compare with it, so a retry that spans the change keeps its receipt.
_SKIP_REASON_CODE_SET = ", ".join(f"{code}=true" for code in SKIP_REASON_CODES)
SKIP_REASON_CODED_LUA = f"""
local SKIP_REASON_CODES = {{{_SKIP_REASON_CODE_SET}}}
local function skip_reason_coded(r)
  if r == '' then return 'unspecified' end
  if SKIP_REASON_CODES[string.match(r, '^%S*')] then return r end
  return 'other ' .. r
end
"""


# Votes per entry written by a batch import: big enough to amortise XADD, small enough that
# one XREADGROUP page of entries stays a bounded amount of decoding on the ranker's loop.
MAX_VOTES_PER_ENTRY = 1_000

# -- writing (ingest's side, in Lua) ------------------------------------------------------

# Lua defining `append_votes`, the one writer of log entries: every script that appends to a
# vote log starts with this text.
#   append_votes(log, m, kinds, a, b, vote_ids, voter_ids, trust, skip_reason, attributes)
#     -> entry id
# appends one entry holding the votes in slots 1..m of the tables `kinds`, `a`, `b`,
# `vote_ids`, `voter_ids` (strings or integers; slots past m are ignored); `trust` is the q
# field (m characters); `skip_reason` is nil, or the reason of an entry's single vote, of
# kind "s"; `attributes` is nil when no vote has any, else the table of their codes (the g
# field; "-" for a vote without).
APPEND_VOTES_LUA = """
local function append_votes(log, m, kinds, a, b, vote_ids, voter_ids, trust, skip_reason,
                            attributes)
  local concat = table.concat
  local fields = {'k', concat(kinds, '', 1, m), 'a', concat(a, ' ', 1, m),
                  'b', concat(b, ' ', 1, m), 'v', concat(vote_ids, ' ', 1, m),
                  'u', concat(voter_ids, ' ', 1, m), 'q', trust}
  if skip_reason then
    fields[#fields + 1] = 'r'
    fields[#fields + 1] = skip_reason
  end
  if attributes then
    fields[#fields + 1] = 'g'
    fields[#fields + 1] = concat(attributes, ' ', 1, m)
  end
  return redis.call('XADD', log, '*', unpack(fields))
end
"""

# Lua defining `votes_in_entry`, the reader of one entry for scripts that must know what was
# recorded (ingest comparing a replay with the vote its id names):
#   votes_in_entry(log, entry_id) -> {vote_id = {k=, a=, b=, u=, r=}} with the kind, the
# proposal indices and the voter as strings, r the skip reason ('' unless the entry is one
# skip); nil when the entry is not in the log.
VOTES_IN_ENTRY_LUA = """
local function votes_in_entry(log, entry_id)
  local found = redis.call('XRANGE', log, entry_id, entry_id)
  if #found == 0 then return nil end
  local raw, f = found[1][2], {}
  for i = 1, #raw, 2 do f[raw[i]] = raw[i + 1] end
  local function split(text)
    local items = {}
    for item in string.gmatch(text or '', '%S+') do items[#items + 1] = item end
    return items
  end
  local a, b, v, u = split(f.a), split(f.b), split(f.v), split(f.u)
  local votes, reason = {}, f.r or ''
  for i = 1, #(f.k or '') do
    votes[v[i]] = {k = string.sub(f.k, i, i), a = a[i], b = b[i], u = u[i], r = reason}
  end
  return votes
end
"""

# Kind codes in decoded arrays (`DecodedVotes.kinds`).
WIN_CODE, TIE_CODE, SKIP_CODE = 0, 1, 2
_CODE_OF_BYTE = np.full(256, 255, dtype=np.uint8)
_CODE_OF_BYTE[ord(WIN)], _CODE_OF_BYTE[ord(TIE)], _CODE_OF_BYTE[ord(SKIP)] = (
    WIN_CODE, TIE_CODE, SKIP_CODE)


@dataclass(frozen=True, slots=True)
class VoteEntry:
    """One vote, as `votes_of` reads it back; `fields` are those of an entry holding only this
    vote (for tests and tools writing the log directly, as `append_votes` would)."""

    kind: Kind
    a: int
    b: int
    vote_id: str
    voter_id: str
    skip_reason: str = ""
    trusted: bool = True
    attributes: str = NO_ATTRIBUTES

    def fields(self) -> dict[str, str]:
        """The stream fields for XADD."""
        out = {"k": self.kind, "a": str(self.a), "b": str(self.b), "v": self.vote_id,
               "u": self.voter_id, "q": "1" if self.trusted else "0"}
        if self.kind == SKIP:
            out["r"] = self.skip_reason
        if self.attributes != NO_ATTRIBUTES:
            out["g"] = self.attributes
        return out


def batch_fields(kinds: str, a: Sequence[int], b: Sequence[int], vote_ids: Sequence[str],
                 voter_ids: Sequence[str]) -> dict[str, str]:
    """The stream fields of one entry holding several trusted votes (no skips).

    The fields `append_votes` writes for them; for tests and tools writing the log.
    """
    if not len(kinds) == len(a) == len(b) == len(vote_ids) == len(voter_ids):
        raise ValueError("one kind, a, b, vote_id and voter_id per vote")
    return {"k": kinds, "a": " ".join(map(str, a)), "b": " ".join(map(str, b)),
            "v": " ".join(vote_ids), "u": " ".join(voter_ids), "q": "1" * len(kinds)}


def votes_of(fields: dict[bytes, bytes]) -> list[VoteEntry]:
    """Every vote of one entry, in order (for tests, audits and exports; the ranker uses
    `decode_entries`). Raises KeyError/ValueError on a malformed entry."""
    kinds = fields[b"k"].decode()
    if not kinds or set(kinds) - {WIN, TIE, SKIP}:
        raise ValueError(f"unknown vote kinds {kinds!r}")
    n = len(kinds)
    lists = [fields.get(name, b"").decode().split() for name in (b"a", b"b", b"v", b"u")]
    trust = fields[b"q"].decode()
    if any(len(items) != n for items in lists) or len(trust) != n:
        raise ValueError(f"{n} kinds but lists of other lengths")
    reason = fields.get(b"r", b"").decode() if n == 1 else ""
    codes = _codes(fields.get(b"g"), n)
    return [VoteEntry(kind=kind, a=int(a), b=int(b), vote_id=v, voter_id=u,  # type: ignore[arg-type]
                      skip_reason=reason if kind == SKIP else "", trusted=q == "1",
                      attributes=g.decode())
            for kind, a, b, v, u, q, g in zip(kinds, *lists, trust, codes, strict=True)]


def _codes(text: bytes | None, expected: int) -> list[bytes]:
    """The `expected` attribute codes of a g field; all unknown when it is absent or does
    not hold one code per vote."""
    codes = (text or b"").split()
    return codes if len(codes) == expected else [NO_ATTRIBUTES.encode()] * expected


# -- decoding (the ranker's side) ---------------------------------------------------------

# Stream entries as redis-py returns them: (entry id, fields); fields is None for an entry
# that was deleted while pending (servers before Redis 7 report it that way).
RawEntry = tuple[bytes | str, dict[bytes, bytes] | None]


def entry_key(entry_id: str) -> tuple[int, int]:
    """Sort key of a stream entry id "<ms>-<seq>"; "" (no entry) sorts before every id."""
    if not entry_id:
        return (-1, -1)
    ms, _, seq = entry_id.partition("-")
    return (int(ms), int(seq or 0))


@dataclass
class DecodedVotes:
    """Entries of the log read in one call, decoded for `PairCounts.apply`.

    `n_entries` entries were delivered (each to be XACKed once checkpointed). Only entries
    after the caller's high-water mark are *reflected*: they advance `last_id`, and their
    votes count in `n_votes`. Of those votes, the valid ones are in `kinds`/`a`/`b`
    (`kinds` holds WIN_CODE/TIE_CODE/SKIP_CODE) with their trust flags in `trusted` and,
    when asked for, their `voter_ids` and `vote_ids` (empty lists otherwise), and their
    declared `attributes` (voter_attributes.decode_codes: one row per vote) or None when no
    entry carries any; the others change no count and are described in `malformed` as
    (entry id, problem). Entries at or before the mark are `n_stale`.
    """

    n_entries: int = 0
    kinds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    a: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    b: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    trusted: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    voter_ids: list[str] = field(default_factory=list)
    vote_ids: list[str] = field(default_factory=list)
    attributes: np.ndarray | None = None
    n_votes: int = 0
    n_stale: int = 0
    last_id: str = ""
    malformed: list[tuple[str, str]] = field(default_factory=list)


def decode_entries(entries: Sequence[RawEntry], after_id: str, max_proposals: int, *,
                   with_ids: bool = False) -> DecodedVotes:
    """Decode entries (in id order) that follow `after_id` ("" = from the start).

    Cost is one numpy text parse over all entries' indices plus a few microseconds of
    Python per entry; `with_ids` adds the split of each entry's voter and vote ids (a vote
    whose ids do not parse has the id ""). An entry whose fields do not parse is malformed
    as a whole and counts one vote; a vote whose proposal index is negative or >=
    `max_proposals`, or whose two sides are the same proposal, is malformed on its own. An
    entry without `q` is trusted (every writer adds it). Deleted entries (fields None) are
    skipped entirely: they are not in the log.
    """
    out = DecodedVotes()
    after = entry_key(after_id)
    past_mark = not after_id
    kinds: list[bytes] = []
    lefts: list[bytes] = []
    rights: list[bytes] = []
    trust: list[bytes] = []
    first_vote: list[int] = []  # index of each parsed entry's first vote
    n_parsed = 0
    parsed_ids: list[str] = []
    parsed: list[RawEntry] = []
    for raw_id, fields in entries:
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        if fields is None:
            continue
        out.n_entries += 1
        # Entries arrive in id order, so only a prefix can be at or before the mark.
        if not past_mark:
            if entry_key(entry_id) <= after:
                out.n_stale += 1
                continue
            past_mark = True
        out.last_id = entry_id
        k, a, b = fields.get(b"k"), fields.get(b"a"), fields.get(b"b")
        if not k or a is None or b is None:
            out.n_votes += 1
            out.malformed.append((entry_id, "missing field k, a or b"))
            continue
        q = fields.get(b"q", b"1" * len(k))
        out.n_votes += len(k)
        if len(q) != len(k):
            out.malformed.append((entry_id, f"{len(k)} kinds but {len(q)} trust flags"))
            continue
        first_vote.append(n_parsed)
        n_parsed += len(k)
        parsed_ids.append(entry_id)
        parsed.append((raw_id, fields))
        kinds.append(k)
        lefts.append(a)
        rights.append(b)
        trust.append(q)
    if not kinds:
        return out
    codes = _CODE_OF_BYTE[np.frombuffer(b"".join(kinds), dtype=np.uint8)]
    n = len(codes)
    a_all, b_all = _integers(b" ".join(lefts), n), _integers(b" ".join(rights), n)
    if a_all is None or b_all is None:
        # Some entry's index lists do not match its kinds: find it, entry by entry.
        return _decode_one_by_one(out, parsed, kinds, lefts, rights, max_proposals,
                                  with_ids=with_ids)
    trusted = np.frombuffer(b"".join(trust), dtype=np.uint8) == ord("1")
    attributes = None
    if any(b"g" in fields for _, fields in parsed):  # type: ignore[operator]
        attribute_codes: list[bytes] = []
        for (_, fields), k in zip(parsed, kinds, strict=True):
            attribute_codes += _codes(fields.get(b"g"), len(k))  # type: ignore[union-attr]
        attributes = decode_codes(attribute_codes)
    voter_ids: list[str] = []
    vote_ids: list[str] = []
    if with_ids:
        for (_, fields), k in zip(parsed, kinds, strict=True):
            voter_ids += _ids(fields.get(b"u"), len(k))  # type: ignore[union-attr]
            vote_ids += _ids(fields.get(b"v"), len(k))  # type: ignore[union-attr]
    bad = (codes == 255) | (a_all < 0) | (a_all >= max_proposals) | (b_all < 0) \
        | (b_all >= max_proposals) | (a_all == b_all)
    if bad.any():
        starts = np.asarray(first_vote)
        for v in np.flatnonzero(bad)[:100]:
            entry = int(np.searchsorted(starts, v, side="right")) - 1
            out.malformed.append((parsed_ids[entry], _problem(codes[v], a_all[v], b_all[v])))
        keep = ~bad
        codes, a_all, b_all, trusted = codes[keep], a_all[keep], b_all[keep], trusted[keep]
        if attributes is not None:
            attributes = attributes[keep]
        if with_ids:
            kept = np.flatnonzero(keep).tolist()
            voter_ids = [voter_ids[v] for v in kept]
            vote_ids = [vote_ids[v] for v in kept]
    out.kinds, out.a, out.b, out.trusted = codes, a_all, b_all, trusted
    out.voter_ids, out.vote_ids, out.attributes = voter_ids, vote_ids, attributes
    return out


def _ids(text: bytes | None, expected: int) -> list[str]:
    """The `expected` whitespace-separated ids of `text`, or as many "" when they are not."""
    ids = (text or b"").decode(errors="replace").split()
    return ids if len(ids) == expected else [""] * expected


def _integers(text: bytes, expected: int) -> np.ndarray | None:
    """Whitespace-separated decimal integers, or None unless there are exactly `expected`."""
    with warnings.catch_warnings():
        # numpy warns (rather than raising) when the text does not parse to its end.
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None
    return values if len(values) == expected else None


def _problem(code: int, a: int, b: int) -> str:
    if code == 255:
        return "unknown vote kind"
    if a == b:
        return f"proposal {a} compared with itself"
    return f"proposal index out of range: {a}, {b}"


def _decode_one_by_one(out: DecodedVotes, parsed: list[RawEntry], kinds: list[bytes],
                       lefts: list[bytes], rights: list[bytes], max_proposals: int, *,
                       with_ids: bool) -> DecodedVotes:
    """The slow path of `decode_entries`: entries whose lists disagree are malformed whole."""
    good: list[RawEntry] = []
    for entry, k, a, b in zip(parsed, kinds, lefts, rights, strict=True):
        if _integers(a, len(k)) is None or _integers(b, len(k)) is None:
            entry_id = entry[0].decode() if isinstance(entry[0], bytes) else entry[0]
            out.malformed.append((entry_id, f"{len(k)} kinds but indices {a[:40]!r}, {b[:40]!r}"))
        else:
            good.append(entry)
    rest = decode_entries(good, "", max_proposals, with_ids=with_ids)
    out.kinds, out.a, out.b, out.trusted = rest.kinds, rest.a, rest.b, rest.trusted
    out.voter_ids, out.vote_ids, out.attributes = rest.voter_ids, rest.vote_ids, rest.attributes
    out.malformed += rest.malformed
    return out
