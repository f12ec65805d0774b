"""Which votes of the log count: trusted ones whose voter and vote id are not excluded; every
other valid vote is tallied as untrusted or excluded, never both."""

from __future__ import annotations

import numpy as np
import pytest

from pairwise import vote_log
from pairwise.exclusions import Exclusions
from ranker.vote_admission import LeftOut, admit

# (kind, a, b, vote_id, voter_id, trusted), written as interactive votes (an entry each).
VOTES = [
    ("w", 0, 1, "v0", "alice", True),
    ("w", 1, 2, "v1", "bot", False),
    ("t", 2, 3, "v2", "bot", True),
    ("w", 3, 0, "v3", "carol", False),
    ("s", 0, 2, "v4", "alice", True),
    ("w", 1, 3, "v5", "dave", True),
]


def entries() -> list[vote_log.RawEntry]:
    out: list[vote_log.RawEntry] = []
    for n, (kind, a, b, vote_id, voter_id, trusted) in enumerate(VOTES):
        entry = vote_log.VoteEntry(kind=kind, a=a, b=b, vote_id=vote_id,  # type: ignore[arg-type]
                                   voter_id=voter_id, trusted=trusted)
        out.append((f"{n + 1}-0".encode(),
                    {k.encode(): v.encode() for k, v in entry.fields().items()}))
    return out


def counted_ids(exclusions: Exclusions) -> tuple[list[tuple[int, int]], int, int]:
    batch = vote_log.decode_entries(entries(), "", 10, with_ids=bool(exclusions))
    counted = admit(batch, exclusions)
    return (list(zip(counted.a.tolist(), counted.b.tolist(), strict=True)),
            counted.n_untrusted, counted.n_excluded)


def test_without_exclusions_only_trusted_votes_count():
    pairs, untrusted, excluded = counted_ids(Exclusions())
    assert pairs == [(0, 1), (2, 3), (0, 2), (1, 3)]
    assert (untrusted, excluded) == (2, 0)


def test_an_excluded_voter_is_left_out_whether_trusted_or_not_and_counted_once():
    pairs, untrusted, excluded = counted_ids(Exclusions(1, voters=frozenset({"bot"})))
    assert pairs == [(0, 1), (0, 2), (1, 3)]
    # bot's untrusted vote is excluded, not also untrusted: carol's is the only untrusted one.
    assert (untrusted, excluded) == (1, 2)


def test_excluded_vote_ids_and_voters_together():
    exclusions = Exclusions(3, voters=frozenset({"dave"}), votes=frozenset({"v0", "v3"}))
    pairs, untrusted, excluded = counted_ids(exclusions)
    assert pairs == [(2, 3), (0, 2)]
    assert (untrusted, excluded) == (1, 3)


def test_the_kinds_of_counted_votes_stay_with_their_pairs():
    batch = vote_log.decode_entries(entries(), "", 10, with_ids=True)
    counted = admit(batch, Exclusions(1, votes=frozenset({"v0"})))
    assert counted.kinds.tolist() == [vote_log.TIE_CODE, vote_log.SKIP_CODE, vote_log.WIN_CODE]


def test_exclusions_need_the_ids():
    batch = vote_log.decode_entries(entries(), "", 10)
    with pytest.raises(ValueError, match="with_ids"):
        admit(batch, Exclusions(1, voters=frozenset({"bot"})))


def test_a_batch_entry_of_many_votes_carries_each_votes_flag_and_ids():
    fields = {b"k": b"wwt", b"a": b"0 1 2", b"b": b"1 2 0", b"v": b"x y z",
              b"u": b"p q p", b"q": b"101"}
    batch = vote_log.decode_entries([(b"5-0", fields)], "", 10, with_ids=True)
    assert batch.trusted.tolist() == [True, False, True]
    assert (batch.voter_ids, batch.vote_ids) == (["p", "q", "p"], ["x", "y", "z"])
    counted = admit(batch, Exclusions(1, voters=frozenset({"q"})))
    assert counted.a.tolist() == [0, 2] and (counted.n_untrusted, counted.n_excluded) == (0, 1)


def test_malformed_votes_are_neither_counted_nor_left_out():
    """A vote naming a proposal out of range drops out with its flag and ids."""
    fields = {b"k": b"www", b"a": b"0 99 2", b"b": b"1 2 0", b"v": b"x y z",
              b"u": b"p q r", b"q": b"011"}
    batch = vote_log.decode_entries([(b"5-0", fields)], "", 10, with_ids=True)
    assert batch.n_votes == 3 and len(batch.malformed) == 1
    assert batch.voter_ids == ["p", "r"] and batch.trusted.tolist() == [False, True]
    counted = admit(batch, Exclusions())
    assert counted.a.tolist() == [2] and (counted.n_untrusted, counted.n_excluded) == (1, 0)


def test_trust_flags_that_do_not_match_the_votes_make_the_entry_malformed():
    fields = {b"k": b"ww", b"a": b"0 1", b"b": b"1 2", b"v": b"x y", b"u": b"p q", b"q": b"1"}
    batch = vote_log.decode_entries([(b"5-0", fields)], "", 10)
    assert batch.n_votes == 2 and len(batch.kinds) == 0
    assert batch.malformed == [("5-0", "2 kinds but 1 trust flags")]


def test_an_entry_without_trust_flags_is_trusted():
    fields = {b"k": b"w", b"a": b"0", b"b": b"1"}
    batch = vote_log.decode_entries([(b"5-0", fields)], "", 10)
    assert batch.trusted.tolist() == [True]


def test_left_out_totals_add_up_batch_after_batch():
    rng = np.random.default_rng(7)
    total = LeftOut(exclusions_version=4)
    exclusions = Exclusions(4, voters=frozenset({"bot"}))
    expected_untrusted = expected_excluded = 0
    for _ in range(20):
        picked = [VOTES[k] for k in rng.integers(len(VOTES), size=5)]
        raw = []
        for n, (kind, a, b, vote_id, voter_id, trusted) in enumerate(picked):
            entry = vote_log.VoteEntry(kind=kind, a=a, b=b,  # type: ignore[arg-type]
                                       vote_id=vote_id, voter_id=voter_id, trusted=trusted)
            raw.append((f"{n + 1}-0", {k.encode(): v.encode()
                                       for k, v in entry.fields().items()}))
            expected_excluded += voter_id == "bot"
            expected_untrusted += voter_id != "bot" and not trusted
        batch = vote_log.decode_entries(raw, "", 10, with_ids=True)
        total = total.plus(admit(batch, exclusions))
    assert total == LeftOut(expected_untrusted, expected_excluded, 4)
