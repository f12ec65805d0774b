"""Backpressure: a cause whose rankers have fallen far behind refuses new votes retryably,
and takes them again once they catch up; the backlog is read at most once per interval."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from ingest.backlog import BacklogGate
from pairwise.errors import Unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Backlogs:
    """What Redis would say: votes waiting per cause; records each read."""

    def __init__(self, **waiting: int) -> None:
        self.waiting = dict(waiting)
        self.reads: list[list[str]] = []

    async def __call__(self, cause_ids: list[str]) -> Mapping[str, int]:
        self.reads.append(list(cause_ids))
        return {c: self.waiting.get(c, 0) for c in cause_ids}


def gate(backlogs: Backlogs, clock: Clock, max_backlog: int = 100) -> BacklogGate:
    return BacklogGate(backlogs, max_backlog=max_backlog, interval_s=1.0, clock=clock)


def admitted(g: BacklogGate, *cause_ids: str) -> bool:
    try:
        asyncio.run(g.admit(cause_ids))
    except Unavailable:
        return False
    return True


def test_a_cause_at_its_limit_is_admitted_and_one_above_refused() -> None:
    backlogs, clock = Backlogs(calm=100, behind=101), Clock()
    g = gate(backlogs, clock)
    assert admitted(g, "calm")
    with pytest.raises(Unavailable) as caught:
        asyncio.run(g.admit(["behind"]))
    assert str(caught.value) == ("vote buffer full: cause 'behind' has about 101 votes "
                                 "waiting for the ranker (limit 100); retry later")


def test_one_cause_over_its_limit_refuses_a_batch_touching_it() -> None:
    g = gate(Backlogs(calm=0, behind=500), Clock())
    assert not admitted(g, "calm", "behind")
    assert admitted(g, "calm")


def test_the_backlog_is_read_once_per_interval_for_all_stale_causes_together() -> None:
    backlogs, clock = Backlogs(), Clock()
    g = gate(backlogs, clock)
    for _ in range(50):
        assert admitted(g, "a", "b")
    assert backlogs.reads == [["a", "b"]]
    clock.now += 0.5
    assert admitted(g, "a", "c")
    assert backlogs.reads == [["a", "b"], ["c"]]
    clock.now += 0.5
    assert admitted(g, "a", "c")
    assert backlogs.reads == [["a", "b"], ["c"], ["a"]]


def test_votes_added_between_readings_count_toward_the_limit() -> None:
    backlogs, clock = Backlogs(c=60), Clock()
    g = gate(backlogs, clock)
    assert admitted(g, "c")
    g.added("c", 40)
    assert admitted(g, "c")           # 60 + 40 = 100: at the limit
    g.added("c", 1)
    assert not admitted(g, "c")       # 101, without a new reading
    assert len(backlogs.reads) == 1


def test_a_cause_is_admitted_again_once_the_ranker_catches_up() -> None:
    backlogs, clock = Backlogs(c=1_000), Clock()
    g = gate(backlogs, clock)
    assert not admitted(g, "c")
    backlogs.waiting["c"] = 3
    assert not admitted(g, "c")       # still the old reading within the interval
    clock.now += 1.0
    assert admitted(g, "c")
    g.added("c", 97)
    assert admitted(g, "c")           # the new reading's count starts from zero added


def test_votes_added_to_a_cause_never_read_are_ignored() -> None:
    backlogs, clock = Backlogs(), Clock()
    g = gate(backlogs, clock, max_backlog=5)
    g.added("new", 1_000)
    assert admitted(g, "new")
