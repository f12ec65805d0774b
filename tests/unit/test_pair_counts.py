"""PairCounts: batched aggregation equals a naive count, subsets, snapshots, atomic rejection."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ranker import pair_counts
from ranker.pair_counts import SKIP, TIE, WIN, PairCounts


def random_votes(rng: np.random.Generator, n_votes: int, n_items: int):
    kinds = rng.choice(np.array([WIN, TIE, SKIP], dtype=np.uint8), size=n_votes, p=[0.7, 0.2, 0.1])
    a = rng.integers(0, n_items, size=n_votes)
    b = (a + rng.integers(1, n_items, size=n_votes)) % n_items
    return kinds, a, b


def naive_counts(kinds, a, b):
    """Plain-Python reference: per-item tallies and per-pair (lo, hi) counts."""
    per_item = {name: Counter() for name in ("wins", "losses", "ties", "skips", "appearances")}
    pairs: dict[tuple[int, int], list[int]] = {}
    for kind, x, y in zip(kinds.tolist(), a.tolist(), b.tolist(), strict=True):
        per_item["appearances"][x] += 1
        per_item["appearances"][y] += 1
        if kind == SKIP:
            per_item["skips"][x] += 1
            per_item["skips"][y] += 1
            continue
        counts = pairs.setdefault((min(x, y), max(x, y)), [0, 0, 0])
        if kind == TIE:
            per_item["ties"][x] += 1
            per_item["ties"][y] += 1
            counts[2] += 1
        else:
            per_item["wins"][x] += 1
            per_item["losses"][y] += 1
            counts[0 if x < y else 1] += 1
    return per_item, pairs


def test_batches_equal_one_shot_equal_naive_count():
    rng = np.random.default_rng(1)
    kinds, a, b = random_votes(rng, 5_000, 60)

    one_shot = PairCounts()
    one_shot.apply(kinds, a, b)

    batched = PairCounts()
    cuts = np.sort(rng.choice(np.arange(1, 5_000), size=40, replace=False))
    for part_kinds, part_a, part_b in zip(
        np.split(kinds, cuts), np.split(a, cuts), np.split(b, cuts), strict=True
    ):
        batched.apply(part_kinds, part_a, part_b)
    assert batched == one_shot

    per_item, pairs = naive_counts(kinds, a, b)
    assert one_shot.votes_applied == 5_000
    assert one_shot.n_items == max(a.max(), b.max()) + 1
    for name, counter in per_item.items():
        expected = [counter[item] for item in range(one_shot.n_items)]
        assert getattr(one_shot, name).tolist() == expected, name
    keys = sorted(pairs)
    assert list(zip(one_shot.pair_lo.tolist(), one_shot.pair_hi.tolist(), strict=True)) == keys
    assert one_shot.wins_lo.tolist() == [pairs[key][0] for key in keys]
    assert one_shot.wins_hi.tolist() == [pairs[key][1] for key in keys]
    assert one_shot.ties_pair.tolist() == [pairs[key][2] for key in keys]


def test_new_items_grow_and_storage_stays_compact():
    counts = PairCounts(3)
    counts.apply(np.array([WIN], dtype=np.uint8), np.array([9]), np.array([2]))
    assert counts.n_items == 10
    assert counts.wins[9] == 1 and counts.losses[2] == 1 and counts.appearances[0] == 0
    assert (counts.pair_lo[0], counts.pair_hi[0], counts.wins_hi[0]) == (2, 9, 1)
    pair_bytes = sum(
        getattr(counts, name).itemsize
        for name in ("pair_lo", "pair_hi", "wins_lo", "wins_hi", "ties_pair")
    )
    assert pair_bytes <= 20


def test_skips_count_as_appearances_only():
    counts = PairCounts()
    counts.apply(np.array([SKIP, SKIP], dtype=np.uint8), np.array([0, 1]), np.array([1, 2]))
    assert counts.n_pairs == 0
    assert counts.skips.tolist() == [1, 2, 1]
    assert counts.appearances.tolist() == [1, 2, 1]
    assert counts.wins.sum() == counts.ties.sum() == 0
    assert counts.votes_applied == 2


def test_subset_reindexes_and_counts_ties_as_halves():
    counts = PairCounts()
    counts.apply(
        np.array([WIN, WIN, TIE, WIN, WIN, SKIP], dtype=np.uint8),
        np.array([5, 2, 2, 7, 0, 2]),
        np.array([2, 5, 5, 2, 5, 7]),
    )
    # Item 0 is left out: its pair (0, 5) must disappear; item 11 has no votes yet.
    i, j, wins_ij, wins_ji = counts.subset(np.array([2, 5, 7, 11]))
    got = {
        (int(x), int(y)): (float(w), float(v))
        for x, y, w, v in zip(i, j, wins_ij, wins_ji, strict=True)
    }
    # (2, 5): 2 beat 5 once, 5 beat 2 once, one tie -> 1.5 each; (2, 7): 7 beat 2; skip ignored.
    assert got == {(0, 1): (1.5, 1.5), (0, 2): (0.0, 1.0)}
    assert wins_ij.dtype == np.float64


def test_subset_rejects_repeated_items():
    counts = PairCounts(4)
    with pytest.raises(ValueError, match="repeat"):
        counts.subset(np.array([1, 1, 2]))


@pytest.mark.parametrize("part_bytes", [None, 64, 1000])
def test_snapshot_round_trips_exactly(part_bytes):
    rng = np.random.default_rng(2)
    counts = PairCounts()
    counts.apply(*random_votes(rng, 2_000, 40))
    if part_bytes is None:
        snapshot = counts.to_bytes()
    else:
        parts = counts.snapshot_parts(part_bytes)
        assert all(len(part) <= part_bytes for part in parts)
        snapshot = b"".join(parts)
    restored = PairCounts.from_bytes(snapshot)
    assert restored == counts
    assert restored.pair_lo.dtype == np.int32 and restored.wins_lo.dtype == np.uint32
    # The restored copy keeps working and stays equal to the original under the same votes.
    more = random_votes(rng, 500, 45)
    restored.apply(*more)
    counts.apply(*more)
    assert restored == counts


def test_empty_snapshot_round_trips():
    assert PairCounts.from_bytes(PairCounts().to_bytes()) == PairCounts()


def test_garbage_snapshot_is_rejected():
    with pytest.raises(ValueError, match="snapshot"):
        PairCounts.from_bytes(b"not a snapshot")
    counts = PairCounts()
    counts.apply(np.array([WIN]), np.array([0]), np.array([1]))
    snapshot = counts.to_bytes()
    with pytest.raises(ValueError, match="snapshot"):
        PairCounts.from_bytes(snapshot[:-1])
    unsorted = bytearray(snapshot)
    unsorted[-12 - 8:-12] = np.array([(5 << 32) | 2], dtype="<i8").tobytes()  # lo > hi
    with pytest.raises(ValueError, match="sorted"):
        PairCounts.from_bytes(bytes(unsorted))


def test_a_snapshot_plus_the_journals_after_it_restore_the_counts():
    rng = np.random.default_rng(5)
    counts = PairCounts()
    counts.apply(*random_votes(rng, 1_000, 30))
    counts.start_journal()
    snapshot = counts.to_bytes()
    deltas = []
    for n_votes in (0, 300, 1, 2_000):
        if n_votes:
            counts.apply(*random_votes(rng, n_votes, 50))  # new items and new pairs too
        deltas.append(pair_counts.encode_votes(*counts.take_journal()))
    assert len(deltas[1]) == 12 + 9 * 300

    restored = PairCounts.from_bytes(snapshot)
    for delta in deltas:
        restored.apply(*pair_counts.decode_votes(delta))
    assert restored == counts


def test_garbage_vote_list_is_rejected():
    delta = pair_counts.encode_votes(np.array([WIN]), np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="vote list"):
        pair_counts.decode_votes(delta[:-1])
    with pytest.raises(ValueError, match="vote list"):
        pair_counts.decode_votes(b"junk")


@pytest.mark.parametrize(
    ("kinds", "a", "b", "message"),
    [
        ([WIN, WIN], [0, 3], [1, 3], "itself"),
        ([WIN, TIE], [0, -1], [1, 2], ">= 0"),
        ([WIN, 7], [0, 1], [1, 2], "kind"),
        ([WIN], [0, 1], [1, 2], "one length"),
        ([WIN], [0.5], [1], "integers"),
    ],
)
def test_invalid_batch_raises_and_changes_nothing(kinds, a, b, message):
    rng = np.random.default_rng(3)
    counts = PairCounts()
    counts.apply(*random_votes(rng, 300, 10))
    before = counts.copy()
    with pytest.raises(ValueError, match=message):
        counts.apply(np.array(kinds), np.array(a), np.array(b))
    assert counts == before


def test_count_overflow_is_refused_without_change():
    counts = PairCounts()
    counts.apply(np.array([WIN], dtype=np.uint8), np.array([0]), np.array([1]))
    counts.wins_lo[0] = np.iinfo(np.uint32).max
    before = counts.copy()
    with pytest.raises(ValueError, match="exceed"):
        counts.apply(np.array([WIN, WIN], dtype=np.uint8), np.array([0, 2]), np.array([1, 3]))
    assert counts == before


def test_pending_new_pairs_merge_into_the_same_counts(monkeypatch):
    # A small threshold makes the side buffer of new pairs fill and merge many times.
    monkeypatch.setattr(pair_counts, "_PENDING_MIN", 50)
    rng = np.random.default_rng(4)
    kinds, a, b = random_votes(rng, 6_000, 300)
    one_shot = PairCounts()
    one_shot.apply(kinds, a, b)
    batched = PairCounts()
    snapshots = []
    for start in range(0, 6_000, 97):
        batched.apply(kinds[start:start + 97], a[start:start + 97], b[start:start + 97])
        if start % 1_000 < 97:
            # Reads mid-stream see every pair so far, sorted, whether merged or pending.
            snapshots.append(PairCounts.from_bytes(batched.to_bytes()))
            keys = batched.pair_lo.astype(np.int64) * 300 + batched.pair_hi
            assert np.all(np.diff(keys) > 0)
    assert batched == one_shot
    assert batched.n_pairs == one_shot.n_pairs
    per_item, pairs = naive_counts(kinds, a, b)
    i, j, wins_ij, wins_ji = batched.subset(np.arange(batched.n_items))
    expected = {key: (w[0] + 0.5 * w[2], w[1] + 0.5 * w[2]) for key, w in pairs.items()}
    got = {(int(x), int(y)): (float(u), float(v))
           for x, y, u, v in zip(i, j, wins_ij, wins_ji, strict=True)}
    assert got == expected
    assert all(snapshot.votes_applied < batched.votes_applied for snapshot in snapshots)


def test_steady_state_storage_is_twenty_bytes_per_pair():
    rng = np.random.default_rng(5)
    counts = PairCounts()
    counts.apply(*random_votes(rng, 20_000, 400))
    counts.compact()
    assert counts.nbytes == 20 * counts.n_pairs + 40 * counts.n_items


def test_overflow_of_a_pending_pair_is_refused_without_change(monkeypatch):
    monkeypatch.setattr(pair_counts, "_PENDING_MIN", 1_000)

    def nearly_full() -> PairCounts:
        counts = PairCounts()
        counts.apply(np.array([WIN, WIN], dtype=np.uint8), np.array([0, 2]), np.array([1, 3]))
        assert counts._pending_keys.shape[0] == 2  # both still in the side buffer
        counts._pending_counts[0][1] = np.iinfo(np.uint32).max  # (2, 3): 2 won 2^32 - 1
        return counts

    counts = nearly_full()
    with pytest.raises(ValueError, match="exceed"):
        counts.apply(np.array([WIN, WIN], dtype=np.uint8), np.array([0, 2]), np.array([1, 3]))
    assert counts == nearly_full()


def test_a_fit_workers_copy_fed_only_new_votes_fits_like_the_counts(tmp_path):
    """ranker.fit_pool's worker side: a copy of the counts sent whole once, then only the
    votes applied since, fits exactly as the live counts do; a shipment extending a
    generation the copy does not have is refused (the sender then sends the counts whole)."""
    from ranker import bradley_terry, fit_pool

    rng = np.random.default_rng(31)
    n_items, items = 40, np.arange(0, 40, 2)  # every other item ranked
    live = PairCounts()
    live.apply(*random_votes(rng, 2_000, n_items))
    path = tmp_path / "counts.bin"
    path.write_bytes(live.to_bytes())

    def ship(base: int | None, generation: int, votes: bytes, counts_path: str | None):
        return fit_pool._fit_replica("c", "epoch-1", base, generation, votes, counts_path,
                                     items, bradley_terry.PRIOR_STRENGTH, None)

    def expected():
        return bradley_terry.fit(len(items), *live.subset(items),
                                 prior_strength=bradley_terry.PRIOR_STRENGTH)

    try:
        fit, n_pairs = ship(None, 1, b"", str(path))
        assert n_pairs == len(live.subset(items)[0])
        np.testing.assert_allclose(fit.abilities, expected().abilities, atol=1e-9)
        for generation in (2, 3):
            votes = random_votes(rng, 500, n_items + 5)  # new items too
            live.apply(*votes)
            fit, _ = ship(generation - 1, generation, pair_counts.encode_votes(*votes), None)
            np.testing.assert_allclose(fit.abilities, expected().abilities, atol=1e-9)

        with pytest.raises(fit_pool.ReplicaMissing):
            ship(2, 4, b"", None)  # the copy is at generation 3
        with pytest.raises(fit_pool.ReplicaMissing):
            ship(3, 4, b"", None)  # refused once: the copy was dropped
    finally:
        fit_pool._replicas.clear()
