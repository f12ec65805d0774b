"""Counts per crossed cell of voters: every vote with a known attribute is in exactly one
cell, the cells kept as votes arrive are the cells counted from scratch, a checkpoint
restores them, a checkpoint stored before cells were kept is counted again from the log, and
the representative fit from the cells is the fit of the votes weighted one by one."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from test_log_consumer import FakeStream, InMemoryLog, consumer

from pairwise import vote_log
from pairwise.exclusions import Exclusions
from pairwise.voter_attributes import UNKNOWN_CODE, decode_codes
from ranker import redis_vote_stream, segment_views, survey_weights
from ranker.bradley_terry.weighted import fit_weighted
from ranker.cell_counts import CellCounts, all_unknown
from ranker.log_consumer import Checkpoint, LogConsumer
from ranker.pair_counts import PairCounts, encode_votes
from ranker.segment_counts import SegmentCounts

CODES = [b"-", b"0", b"1", b"2", b"01", b"-1", b"2-", b"10", b"11", b"20"]


def simulated(rng: np.random.Generator, n: int, n_items: int = 30,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    kinds = rng.choice(np.array([vote_log.WIN_CODE, vote_log.TIE_CODE, vote_log.SKIP_CODE],
                                dtype=np.uint8), size=n, p=[0.8, 0.1, 0.1])
    a = rng.integers(0, n_items, n)
    b = (a + rng.integers(1, n_items, n)) % n_items
    return kinds, a, b, decode_codes([rng.choice(CODES) for _ in range(n)])


def from_scratch(kinds: np.ndarray, a: np.ndarray, b: np.ndarray,
                 attributes: np.ndarray) -> dict[bytes, PairCounts]:
    """Each cell's votes counted alone, the cells found independently of `CellCounts`."""
    cells: dict[bytes, PairCounts] = {}
    for row in {bytes(r) for r in attributes}:
        if row == all_unknown():
            continue
        mine = np.array([bytes(r) == row for r in attributes])
        cells[row] = PairCounts()
        cells[row].apply(kinds[mine], a[mine], b[mine])
    return cells


def assert_same_cells(cells: CellCounts, expected: dict[bytes, PairCounts]) -> None:
    assert cells.complete
    assert cells.counts.keys() == expected.keys()
    for cell, counts in expected.items():
        assert cells.counts[cell] == counts, cell
        assert cells.counts[cell].votes_applied == counts.votes_applied


def test_cells_kept_as_votes_arrive_are_the_cells_counted_from_scratch() -> None:
    kinds, a, b, attributes = simulated(np.random.default_rng(1), 3_000)
    segments = SegmentCounts()
    for start in range(0, 3_000, 217):
        part = slice(start, start + 217)
        segments.apply(kinds[part], a[part], b[part], attributes[part])
    assert_same_cells(segments.cells, from_scratch(kinds, a, b, attributes))
    # Each vote with a known attribute is in exactly one cell; the others in none.
    declared = int(np.count_nonzero((attributes != UNKNOWN_CODE).any(axis=1)))
    assert sum(segments.cells.votes().values()) == declared < 3_000


def test_a_checkpoint_restores_the_cells_exactly() -> None:
    rng = np.random.default_rng(2)
    counts, segments = PairCounts(), SegmentCounts()
    counts.start_journal()
    segments.start_journal()
    base: list[bytes] = []
    deltas: list[bytes] = []
    everything = []
    for round_ in range(4):
        votes = simulated(rng, 500)
        everything.append(votes)
        counts.apply(*votes[:3])
        segments.apply(*votes)
        delta = encode_votes(*counts.take_journal()) + segments.encode_journal()
        if round_ == 1:
            base = [bytes(part) for part in counts.snapshot_parts() + segments.snapshot_parts()]
            deltas = []
        else:
            deltas.append(delta)
    restored, restored_segments = redis_vote_stream._restore(base, deltas)
    assert restored == counts
    assert not restored_segments.cells_missing
    all_votes = [np.concatenate(column) for column in zip(*everything, strict=True)]
    assert_same_cells(restored_segments.cells, from_scratch(*all_votes))


def test_past_the_bound_the_cells_are_dropped_and_say_so_through_a_checkpoint() -> None:
    kinds, a, b, attributes = simulated(np.random.default_rng(3), 1_000)
    cells = CellCounts(max_cells=4)
    cells.apply(kinds, a, b, attributes)
    assert not cells.complete and not cells.counts
    cells.apply(kinds, a, b, attributes)  # nothing more is counted
    assert not cells.counts
    restored = CellCounts.from_bytes(b"".join(cells.snapshot_parts()))
    assert not restored.complete and not restored.counts


def test_votes_wait_for_their_cells_until_read_and_the_bound_holds_at_once() -> None:
    """Pages of votes are counted in their cells when the cells are read, all together: the
    counts read are those of every vote applied, and a page that names one cell too many
    drops the cells as it is applied, not when the cells are next read."""
    kinds, a, b, attributes = simulated(np.random.default_rng(7), 2_000)
    cells = CellCounts()
    for start in range(0, 1_000, 100):
        cells.apply(kinds[start:start + 100], a[start:start + 100], b[start:start + 100],
                    attributes[start:start + 100])
    assert cells.pending_votes > 0
    assert_same_cells(cells, from_scratch(kinds[:1_000], a[:1_000], b[:1_000],
                                          attributes[:1_000]))
    assert cells.pending_votes == 0
    for start in range(1_000, 2_000, 100):
        cells.apply(kinds[start:start + 100], a[start:start + 100], b[start:start + 100],
                    attributes[start:start + 100])
    assert_same_cells(cells, from_scratch(kinds, a, b, attributes))

    bounded = CellCounts(max_cells=len(cells.counts) - 1)
    bounded.apply(kinds[:10], a[:10], b[:10], attributes[:10])
    assert bounded.complete and bounded.pending_votes
    bounded.apply(kinds[10:], a[10:], b[10:], attributes[10:])
    assert not bounded.complete and not bounded.pending_votes and not bounded


def test_malformed_cell_data_is_refused() -> None:
    with pytest.raises(ValueError):
        CellCounts.from_bytes(b"PWCLxxxx")
    cells = CellCounts()
    cells.apply(*simulated(np.random.default_rng(4), 100))
    data = b"".join(cells.snapshot_parts())
    with pytest.raises(ValueError):
        CellCounts.from_bytes(data[:-3])


def test_a_checkpoint_from_before_cells_loads_and_the_log_rebuilds_them() -> None:
    """A checkpoint whose segments have no cell section after them (stored before cells were
    kept) loads: its cells are missing, the consumer counts the log again (it holds every
    vote's attributes), and stores the rebuilt cells at once."""
    async def scenario() -> None:
        rng = np.random.default_rng(5)
        store = InMemoryLog()
        store.write(rng, 40)
        for k, (entry_id, vote) in enumerate(store.log):
            store.log[k] = (entry_id, vote_log.VoteEntry(
                kind=vote.kind, a=vote.a, b=vote.b, vote_id=vote.vote_id,
                voter_id=vote.voter_id, attributes=CODES[k % len(CODES)].decode()))
        ranker = restoring_consumer(store, "ranker-old")
        await ranker.load()
        while store.delivered < len(store.log):
            await ranker.step()
        await ranker.checkpoint()
        # What a ranker before cells stored: the same base less its cell section.
        async with ranker.held() as applied:
            assert applied is not None and applied.segments.cells
            cell_bytes = sum(len(part) for part in applied.segments.cells.snapshot_parts())
        store.base, store.deltas = store.base[:-cell_bytes], []
        _, old = redis_vote_stream._restore([store.base], [])
        assert old.cells_missing and old.counts

        again = restoring_consumer(store, "ranker-new")
        stream = again._stream
        assert isinstance(stream, RestoringStream)
        await again.load()
        assert stream.recounts == 1
        kinds = np.array([TO_CODE[vote.kind] for _, vote in store.log], dtype=np.uint8)
        a = np.array([vote.a for _, vote in store.log])
        b = np.array([vote.b for _, vote in store.log])
        attributes = decode_codes([vote.attributes.encode() for _, vote in store.log])
        async with again.held() as applied:
            assert applied is not None
            assert_same_cells(applied.segments.cells, from_scratch(kinds, a, b, attributes))
        _, stored = redis_vote_stream._restore([store.base], store.deltas)
        assert not stored.cells_missing
        assert_same_cells(stored.cells, from_scratch(kinds, a, b, attributes))

    asyncio.run(scenario())


TO_CODE = {vote_log.WIN: vote_log.WIN_CODE, vote_log.TIE: vote_log.TIE_CODE,
           vote_log.SKIP: vote_log.SKIP_CODE}


def restoring_consumer(store: InMemoryLog, name: str) -> LogConsumer:
    """`test_log_consumer.consumer`'s consumer, on a `RestoringStream`."""
    made, _ = consumer(store, name)
    return LogConsumer("cause", RestoringStream(store, name), made._policy,
                       max_proposals=1_000, changed=asyncio.Event())


class RestoringStream(FakeStream):
    """`FakeStream` whose checkpoint restores the segments and cells, as Redis's does."""

    async def open(self) -> tuple[Checkpoint, Exclusions]:
        r = self.store
        if not r.token:
            return Checkpoint("", 0, PairCounts()), r.exclusions
        counts, segments = redis_vote_stream._restore([r.base], r.deltas)
        return Checkpoint(r.last_id, r.votes_counted, counts, r.token, has_base=True,
                          base_bytes=len(r.base), delta_bytes=sum(map(len, r.deltas)),
                          left_out=r.left_out, segments=segments), r.exclusions


def test_the_fit_from_the_cells_is_the_fit_of_the_votes_weighted_one_by_one() -> None:
    """Raked to two attributes' margins from the cells' counts: the same weights, abilities
    and sandwich errors as `fit_weighted` over the votes themselves, each vote its own voter
    (which is what counts can know), with the same calibration groups."""
    rng = np.random.default_rng(6)
    n_items, n = 12, 6_000
    kinds, a, b, attributes = simulated(rng, n, n_items=n_items)
    decided = kinds != vote_log.SKIP_CODE
    kinds, a, b, attributes = kinds[decided], a[decided], b[decided], attributes[decided]
    overall, segments = PairCounts(), SegmentCounts()
    overall.apply(kinds, a, b)
    segments.apply(kinds, a, b, attributes)
    margins = {0: np.array([0.5, 0.3, 0.2]), 1: np.array([0.4, 0.6])}
    items = np.arange(n_items)
    strata, values = segment_views.cell_strata(overall, segments.cells.counts, items)
    fitted = segment_views.cells_fit(strata, values, margins, n_items)
    assert fitted.weights.method == survey_weights.RAKING
    assert fitted.weights.used == (0, 1)
    assert fitted.weights.margin_gap < 1e-6

    codes = attributes[:, :values.shape[1]].astype(np.int64)
    codes[codes == UNKNOWN_CODE] = survey_weights.UNKNOWN
    columns = [margins.get(k) for k in range(values.shape[1])]
    weights = survey_weights.vote_weights(codes, columns)
    ties = kinds == vote_log.TIE_CODE
    expected = fit_weighted(n_items, a, b, ties, weights.weights, np.arange(len(a)),
                            groups=weights.calibration_groups())
    assert fitted.fit.abilities == pytest.approx(expected.abilities, abs=1e-6)
    assert fitted.fit.std_errors == pytest.approx(expected.std_errors, rel=1e-6)
    assert fitted.fit.effective_votes == pytest.approx(expected.effective_votes, rel=1e-9)
