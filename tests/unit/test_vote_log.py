"""The vote-log format: what ingest writes is what the ranker reads, vote for vote."""

from __future__ import annotations

import numpy as np
import pytest

from pairwise import vote_log
from pairwise.vote_log import SKIP_CODE, TIE_CODE, WIN_CODE, decode_entries


def raw(fields: dict[str, str]) -> dict[bytes, bytes]:
    """Fields as redis-py returns them."""
    return {k.encode(): v.encode() for k, v in fields.items()}


def batch(kinds: str, a: list[int], b: list[int], first: int = 0) -> dict[bytes, bytes]:
    n = len(kinds)
    return raw(vote_log.batch_fields(kinds, a, b, [f"v{first + i}" for i in range(n)],
                                     [f"u{i % 3}" for i in range(n)]))


def single(kind: str, a: int, b: int, vote_id: str = "v", **extra: object) -> dict[bytes, bytes]:
    return raw(vote_log.VoteEntry(kind=kind, a=a, b=b, vote_id=vote_id,  # type: ignore[arg-type]
                                  voter_id="u", **extra).fields())  # type: ignore[arg-type]


def test_batch_and_single_vote_entries_decode_to_the_same_votes_in_order() -> None:
    entries = [("1-0", single("w", 3, 1)),
               ("2-0", batch("wtws", [0, 2, 4, 1], [1, 3, 0, 2])),
               ("3-0", single("t", 5, 6))]

    got = decode_entries(entries, "", max_proposals=10)

    assert (got.n_entries, got.n_votes, got.last_id, got.malformed) == (3, 6, "3-0", [])
    assert got.kinds.tolist() == [WIN_CODE, WIN_CODE, TIE_CODE, WIN_CODE, SKIP_CODE, TIE_CODE]
    assert got.a.tolist() == [3, 0, 2, 4, 1, 5]
    assert got.b.tolist() == [1, 1, 3, 0, 2, 6]


def test_entries_up_to_the_mark_are_stale_and_deleted_entries_do_not_exist() -> None:
    entries: list[vote_log.RawEntry] = [
        (b"5-0", batch("ww", [0, 1], [1, 2])), (b"5-1", None),
        (b"6-0", batch("t", [2], [0])), (b"7-0", batch("ww", [1, 2], [0, 1]))]

    got = decode_entries(entries, "6-0", max_proposals=3)

    assert (got.n_entries, got.n_stale, got.n_votes, got.last_id) == (3, 2, 2, "7-0")
    assert got.a.tolist() == [1, 2]


def test_bad_votes_are_dropped_alone_and_still_counted_as_reflected() -> None:
    entries = [("1-0", batch("wwww", [0, 7, 2, -1], [1, 1, 2, 0])),
               ("2-0", raw({"k": "wx", "a": "0 1", "b": "1 0"}))]

    got = decode_entries(entries, "", max_proposals=5)

    assert got.n_votes == 6
    assert list(zip(got.a.tolist(), got.b.tolist(), strict=True)) == [(0, 1), (0, 1)]
    problems = [problem for _, problem in got.malformed]
    assert [entry for entry, _ in got.malformed] == ["1-0", "1-0", "1-0", "2-0"]
    assert "out of range: 7, 1" in problems[0] and "itself" in problems[1]
    assert "kind" in problems[3]


def test_an_entry_whose_lists_disagree_is_malformed_whole_and_the_rest_still_counts() -> None:
    entries = [("1-0", batch("ww", [0, 1], [1, 2])),
               ("2-0", raw({"k": "www", "a": "0 1", "b": "1 2 0"})),
               ("3-0", raw({"k": "w", "a": "one", "b": "2"})),
               ("4-0", raw({"unrelated": "field"})),
               ("5-0", batch("t", [2], [0]))]

    got = decode_entries(entries, "", max_proposals=3)

    assert got.n_votes == 2 + 3 + 1 + 1 + 1
    assert [entry for entry, _ in got.malformed] == ["4-0", "2-0", "3-0"]
    assert got.a.tolist() == [0, 1, 2] and got.kinds.tolist() == [WIN_CODE, WIN_CODE, TIE_CODE]
    assert got.last_id == "5-0"


def test_votes_of_gives_back_every_field_ingest_wrote() -> None:
    skip = vote_log.VoteEntry(kind="s", a=1, b=0, vote_id="v9", voter_id="u2",
                              skip_reason="I do not understand", trusted=False)
    assert vote_log.votes_of(raw(skip.fields())) == [skip]
    votes = vote_log.votes_of(batch("wt", [4, 5], [6, 7], first=10))
    assert [(v.kind, v.a, v.b, v.vote_id, v.voter_id, v.trusted) for v in votes] == [
        ("w", 4, 6, "v10", "u0", True), ("t", 5, 7, "v11", "u1", True)]


def test_an_entry_without_trust_flags_is_malformed_for_votes_of() -> None:
    fields = batch("wt", [4, 5], [6, 7])
    del fields[b"q"]
    with pytest.raises(KeyError):
        vote_log.votes_of(fields)


def test_a_large_page_decodes_exactly() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 34_000, 20_000)
    b = (a + rng.integers(1, 34_000, 20_000)) % 34_000
    kinds = "".join(rng.choice(["w", "t"], 20_000))
    size = vote_log.MAX_VOTES_PER_ENTRY
    entries = [(f"{s}-0", batch(kinds[s:s + size], a[s:s + size].tolist(),
                                b[s:s + size].tolist()))
               for s in range(0, 20_000, size)]

    got = decode_entries(entries, "", max_proposals=34_000)

    assert got.n_votes == 20_000 and not got.malformed
    assert np.array_equal(got.a, a) and np.array_equal(got.b, b)
    assert np.array_equal(got.kinds == TIE_CODE, np.array(list(kinds)) == "t")
