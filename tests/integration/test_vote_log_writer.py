"""The vote log's Lua writer against a real Redis: the entries it appends hold exactly the
fields pairwise.vote_log documents, and read back as the votes that were written."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from pairwise import vote_log
from pairwise.vote_log import SKIP_CODE, TIE_CODE, WIN_CODE, VoteEntry, decode_entries

# KEYS: log. ARGV: trust, skip reason ("-" for none), then kind, a, b, vote_id, voter_id per
# vote. Appends one entry holding every vote given.
APPEND = vote_log.APPEND_VOTES_LUA + """
local kinds, a, b, v, u = {}, {}, {}, {}, {}
local m = 0
for i = 3, #ARGV, 5 do
  m = m + 1
  kinds[m], a[m], b[m], v[m], u[m] = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
end
local reason = nil
if ARGV[2] ~= '-' then reason = ARGV[2] end
return append_votes(KEYS[1], m, kinds, a, b, v, u, ARGV[1], reason)
"""


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def append(r: redis.Redis, log: str, votes: list[VoteEntry], reason: str | None = None) -> str:
    args: list[str | int] = ["".join("1" if v.trusted else "0" for v in votes),
                             "-" if reason is None else reason]
    for vote in votes:
        args += [vote.kind, vote.a, vote.b, vote.vote_id, vote.voter_id]
    return r.eval(APPEND, 1, log, *args).decode()  # type: ignore[no-any-return,union-attr]


def test_entries_written_in_lua_read_back_as_the_votes_written(r: redis.Redis,
                                                                cause_id: str) -> None:
    log = f"votes-test:{{{cause_id}}}"
    skip = VoteEntry(kind="s", a=4, b=1, vote_id="v1", voter_id="alice", skip_reason="",
                     trusted=False)
    reasoned = VoteEntry(kind="s", a=2, b=3, vote_id="v2", voter_id="bob",
                         skip_reason="both unclear")
    batch = [VoteEntry(kind="w", a=0, b=1, vote_id="v3", voter_id="carol"),
             VoteEntry(kind="t", a=2, b=5, vote_id="v4", voter_id="dan"),
             VoteEntry(kind="w", a=3, b=0, vote_id="v5", voter_id="carol")]
    ids = [append(r, log, [skip], skip.skip_reason), append(r, log, [reasoned], "both unclear"),
           append(r, log, batch)]

    entries = r.xrange(log)

    assert [entry_id.decode() for entry_id, _ in entries] == ids
    as_written = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    assert as_written == [skip.fields(), reasoned.fields(), vote_log.batch_fields(
        "wtw", [0, 2, 3], [1, 5, 0], ["v3", "v4", "v5"], ["carol", "dan", "carol"])]
    assert [vote for _, fields in entries for vote in vote_log.votes_of(fields)] == [
        skip, reasoned, *batch]
    decoded = decode_entries(entries, "", max_proposals=10)
    assert (decoded.n_entries, decoded.n_votes, decoded.malformed) == (3, 5, [])
    assert decoded.kinds.tolist() == [SKIP_CODE, SKIP_CODE, WIN_CODE, TIE_CODE, WIN_CODE]
    assert decoded.a.tolist() == [4, 2, 0, 2, 3] and decoded.b.tolist() == [1, 3, 1, 5, 0]


@pytest.mark.parametrize("recorded", ["", "I cannot decide", "same", "like_neither too long",
                                      "other both are fine", "  leading space"])
def test_a_skip_reason_written_before_codes_reads_the_same_in_lua_and_python(
        r: redis.Redis, recorded: str) -> None:
    """A log from before skip reasons had codes holds the voter's text alone. Exports read it
    with skip_reason_parts, and replays compare it in Lua with skip_reason_coded: both must
    agree, or a retry spanning the upgrade is refused as a different vote."""
    lua = r.eval(vote_log.SKIP_REASON_CODED_LUA + "return skip_reason_coded(ARGV[1])", 0,
                 recorded)
    code, text = vote_log.skip_reason_parts(recorded)
    assert lua.decode() == vote_log.skip_reason_field(code or "unspecified", text)
    if recorded.split(" ")[0] not in vote_log.SKIP_REASON_CODES:
        assert (code, text) == (("other", recorded) if recorded else ("", ""))
