"""Votes kept aside until a reader counts them (ranker.pending_votes): a reader that comes
while another counts waits for every vote to be counted, a count that fails loses nothing,
and what waits is bounded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ranker.pending_votes import PENDING_MAX, PendingVotes


def _batch(first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(first, first + n), np.full(n, first)


def test_a_reader_that_comes_while_another_counts_reads_every_vote_counted() -> None:
    counted: list[int] = []
    counting = threading.Event()
    go_on = threading.Event()

    def count(votes: np.ndarray, _batch_of: np.ndarray) -> None:
        counting.set()
        go_on.wait(10)
        counted.extend(votes.tolist())

    pending = PendingVotes(count)
    with pending.lock:
        pending.add(*_batch(0, 3))
        pending.add(*_batch(3, 2))
    first = threading.Thread(target=pending.flush)
    first.start()
    assert counting.wait(10)
    seen_by_second: list[int] = []

    def second_reader() -> None:
        pending.flush()
        seen_by_second.append(len(counted))

    second = threading.Thread(target=second_reader)
    second.start()
    second.join(0.2)
    assert second.is_alive(), "the second reader read while the first was still counting"
    go_on.set()
    first.join(10)
    second.join(10)
    assert seen_by_second == [5] and sorted(counted) == [0, 1, 2, 3, 4]
    assert pending.votes == 0


def test_votes_whose_count_failed_are_counted_by_the_next_reader() -> None:
    counted: list[int] = []
    failures = [MemoryError("no room")]

    def count(votes: np.ndarray, _batch_of: np.ndarray) -> None:
        if failures:
            raise failures.pop()
        counted.extend(votes.tolist())

    pending = PendingVotes(count)
    with pending.lock:
        pending.add(*_batch(0, 4))
    with pytest.raises(MemoryError):
        pending.flush()
    assert pending.votes == 4
    pending.flush()
    pending.flush()
    assert counted == [0, 1, 2, 3] and pending.votes == 0


def test_votes_are_counted_as_they_come_past_the_bound() -> None:
    calls: list[int] = []
    pending = PendingVotes(lambda votes, _batch_of: calls.append(votes.shape[0]))
    with pending.lock:
        pending.add(*_batch(0, PENDING_MAX - 1))
        assert calls == []
        pending.add(*_batch(PENDING_MAX - 1, 1))
    assert calls == [PENDING_MAX] and pending.votes == 0
