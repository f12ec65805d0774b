"""Segment counts: each segment holds exactly the votes of its voters, and a checkpoint (a
snapshot plus the journals after it, stored after the overall counts' own) restores them."""

from __future__ import annotations

import numpy as np
import pytest

from pairwise import vote_log
from pairwise.voter_attributes import UNKNOWN_CODE, decode_codes
from ranker import redis_vote_stream
from ranker.pair_counts import PairCounts, encode_votes
from ranker.segment_counts import SegmentCounts


def simulated(rng: np.random.Generator, n: int, n_items: int = 30,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    kinds = rng.choice(np.array([vote_log.WIN_CODE, vote_log.TIE_CODE, vote_log.SKIP_CODE],
                                dtype=np.uint8), size=n, p=[0.8, 0.1, 0.1])
    a = rng.integers(0, n_items, n)
    b = (a + rng.integers(1, n_items, n)) % n_items
    codes = [rng.choice([b"-", b"0", b"1", b"2", b"01", b"-1", b"2-", b"10"]) for _ in range(n)]
    return kinds, a, b, decode_codes(codes)


def test_each_segment_holds_exactly_its_voters_votes() -> None:
    kinds, a, b, attributes = simulated(np.random.default_rng(1), 2_000)
    segments = SegmentCounts()
    for start in range(0, 2_000, 300):
        part = slice(start, start + 300)
        segments.apply(kinds[part], a[part], b[part], attributes[part])
    assert set(segments.counts) == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)}
    for (attribute, value), counts in segments.counts.items():
        mine = attributes[:, attribute] == value
        alone = PairCounts()
        alone.apply(kinds[mine], a[mine], b[mine])
        assert counts == alone, (attribute, value)
    assert segments.votes() == {segment: int(np.count_nonzero(
        attributes[:, segment[0]] == segment[1])) for segment in segments.counts}


def test_pages_wait_to_be_counted_until_read_and_their_segments_are_known_at_once() -> None:
    """Pages of votes are counted in their segments when the segments are read: the
    segments a page names are listed as soon as it is applied, and the counts read then are
    those of every vote applied, pages read in between or not."""
    kinds, a, b, attributes = simulated(np.random.default_rng(3), 2_000)
    segments = SegmentCounts()
    for start in range(0, 1_000, 100):
        part = slice(start, start + 100)
        segments.apply(kinds[part], a[part], b[part], attributes[part])
        assert set(segments.segments()) == {
            (k, v) for k in range(2) for v in np.unique(attributes[:start + 100, k])
            if v != UNKNOWN_CODE}
    assert segments.pending_votes > 0
    middle = {segment: counts.copy() for segment, counts in segments.counts.items()}
    assert segments.pending_votes == 0
    for start in range(1_000, 2_000, 100):
        part = slice(start, start + 100)
        segments.apply(kinds[part], a[part], b[part], attributes[part])
    for (attribute, value), counts in segments.counts.items():
        for upto, read in ((1_000, middle[(attribute, value)]), (2_000, counts)):
            mine = attributes[:upto, attribute] == value
            alone = PairCounts()
            alone.apply(kinds[:upto][mine], a[:upto][mine], b[:upto][mine])
            assert read == alone, (attribute, value, upto)


def test_votes_without_attributes_join_no_segment() -> None:
    segments = SegmentCounts()
    kinds, a, b = np.zeros(3, np.uint8), np.array([0, 1, 2]), np.array([1, 2, 0])
    segments.apply(kinds, a, b, None)
    segments.apply(kinds, a, b, np.full((3, 8), UNKNOWN_CODE, np.uint8))
    assert not segments and segments.snapshot_parts() == []


def test_a_checkpoint_restores_the_overall_and_segment_counts_exactly() -> None:
    rng = np.random.default_rng(2)
    counts, segments = PairCounts(), SegmentCounts()
    counts.start_journal()
    segments.start_journal()
    base: list[bytes] = []
    deltas: list[bytes] = []
    for round_ in range(4):
        kinds, a, b, attributes = simulated(rng, 500)
        counts.apply(kinds, a, b)
        segments.apply(kinds, a, b, attributes)
        votes = counts.take_journal()
        delta = encode_votes(*votes) + segments.encode_journal()
        if round_ == 1:
            # A new base: the snapshot of both, and no delta before it.
            base = [bytes(part) for part in counts.snapshot_parts() + segments.snapshot_parts()]
            deltas = []
        else:
            deltas.append(delta)
    restored, restored_segments = redis_vote_stream._restore(base, deltas)
    assert restored == counts
    assert restored_segments.counts.keys() == segments.counts.keys()
    for segment, segment_counts in segments.counts.items():
        assert restored_segments.counts[segment] == segment_counts


def test_a_checkpoint_without_segments_has_none() -> None:
    counts = PairCounts()
    counts.apply(np.array([0], np.uint8), np.array([0]), np.array([1]))
    restored, segments = redis_vote_stream._restore(
        [counts.to_bytes()], [encode_votes(np.array([0], np.uint8), np.array([1]),
                                           np.array([2]))])
    assert restored.votes_applied == 2 and not segments


def test_malformed_segment_data_is_refused() -> None:
    with pytest.raises(ValueError):
        SegmentCounts.from_bytes(b"PWSGxxxx")
    with pytest.raises(ValueError):
        SegmentCounts().apply_encoded(b"PWSV" + np.array(5, "<i8").tobytes())


def _whole_segments_snapshot(kinds: np.ndarray, a: np.ndarray, b: np.ndarray,
                             attributes: np.ndarray) -> bytes:
    """These votes' segments as a checkpoint stored them when each segment was a whole
    PairCounts (with its per-proposal arrays): segment headers around PairCounts snapshots."""
    known = sorted({(k, int(v)) for k in range(attributes.shape[1])
                    for v in np.unique(attributes[:, k]) if v != UNKNOWN_CODE})
    parts = [b"PWSG", np.array(len(known), "<i8").tobytes()]
    for attribute, value in known:
        mine = attributes[:, attribute] == value
        whole = PairCounts()
        whole.apply(kinds[mine], a[mine], b[mine])
        snapshot = whole.to_bytes()
        header = np.zeros((), dtype=[("attribute", "<i4"), ("value", "<i4"), ("length", "<i8")])
        header["attribute"], header["value"], header["length"] = attribute, value, len(snapshot)
        parts += [header.tobytes(), snapshot]
    return b"".join(parts)


def test_a_segment_reads_like_the_whole_counts_of_its_votes() -> None:
    """Wins, losses, ties, skips and appearances per proposal, pairs and votes: what a
    segment's ranking shows is what whole counts of the same votes show."""
    kinds, a, b, attributes = simulated(np.random.default_rng(3), 3_000, n_items=200)
    segments = SegmentCounts()
    for start in range(0, 3_000, 250):
        part = slice(start, start + 250)
        segments.apply(kinds[part], a[part], b[part], attributes[part])
    for (attribute, value), counts in segments.counts.items():
        mine = attributes[:, attribute] == value
        alone = PairCounts()
        alone.apply(kinds[mine], a[mine], b[mine])
        assert counts.tallies().keys() == alone.tallies().keys()
        for name, tally in alone.tallies().items():
            assert np.array_equal(counts.tallies()[name], tally), name
            assert np.array_equal(getattr(counts, name), tally), name
        assert np.array_equal(np.stack(counts.subset(np.arange(0, 200, 3))),
                              np.stack(alone.subset(np.arange(0, 200, 3))))
        assert counts == alone == counts.copy()


def test_a_checkpoint_of_whole_segment_counts_still_loads() -> None:
    kinds, a, b, attributes = simulated(np.random.default_rng(4), 2_000)
    segments = SegmentCounts()
    segments.apply(kinds, a, b, attributes)
    restored = SegmentCounts.from_bytes(_whole_segments_snapshot(kinds, a, b, attributes))
    assert restored.counts.keys() == segments.counts.keys()
    for segment, counts in segments.counts.items():
        assert restored.counts[segment] == counts, segment
        assert restored.counts[segment].votes_applied == counts.votes_applied
    # And it goes on counting, and saves in the compact form.
    more = simulated(np.random.default_rng(5), 500)
    segments.apply(*more)
    restored.apply(*more)
    again = SegmentCounts.from_bytes(b"".join(bytes(p) for p in restored.snapshot_parts()))
    for segment, counts in segments.counts.items():
        assert again.counts[segment] == counts, segment


def test_segments_grow_with_their_votes_not_with_the_proposals() -> None:
    """At 34,000 proposals, one attribute's segments hold at most twice the bytes of the
    overall counts, from a handful of votes on (they hold no per-proposal array)."""
    rng = np.random.default_rng(6)
    n_items = 34_000
    counts, segments = PairCounts(n_items), SegmentCounts()
    for n_votes in (10, 1_000, 30_000):
        kinds, a, b, attributes = simulated(rng, n_votes, n_items=n_items)
        counts.apply(kinds, a, b)
        segments.apply(kinds, a, b, attributes)
        for attribute in (0, 1):
            dimension = sum(c.nbytes for (k, _), c in segments.counts.items() if k == attribute)
            assert dimension <= 2 * counts.nbytes, (n_votes, attribute)


def test_a_segments_snapshot_comes_in_parts_no_larger_than_asked() -> None:
    """A checkpoint writes a segment in calls of bounded size, as it does the overall
    counts: one part of tens of MB would hold Redis and the client's socket as long."""
    kinds, a, b, attributes = simulated(np.random.default_rng(4), 3_000)
    segments = SegmentCounts()
    segments.apply(kinds, a, b, attributes)
    counts = segments.counts[(0, 0)]
    parts = counts.snapshot_parts(max_part_bytes=256)
    assert len(parts) > 10 and max(len(part) for part in parts) <= 256
    assert type(counts).from_bytes(b"".join(bytes(p) for p in parts)) == counts
