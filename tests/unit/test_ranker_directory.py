"""Which ranker owns a cause (rendezvous hashing over the live rankers): every process that
sees the same rankers agrees, the causes spread evenly, and a ranker joining or leaving
moves only the causes it wins or held."""

from __future__ import annotations

import random

from pairwise.ranker_directory import new_ranker_id, owner_of

CAUSES = [f"cause-{k}" for k in range(3_000)]


def owners(rankers: list[str]) -> dict[str, str | None]:
    return {cause: owner_of(cause, rankers) for cause in CAUSES}


def test_no_live_ranker_owns_nothing() -> None:
    assert owner_of("cause-1", []) is None


def test_every_process_agrees_whatever_order_it_lists_the_rankers_in() -> None:
    rankers = [new_ranker_id("ranker") for _ in range(5)]
    shuffled = random.Random(3).sample(rankers, len(rankers))
    assert owners(rankers) == owners(shuffled)


def test_causes_spread_evenly_over_the_rankers() -> None:
    rankers = [new_ranker_id("ranker") for _ in range(3)]
    counts = {ranker: 0 for ranker in rankers}
    for owner in owners(rankers).values():
        assert owner is not None
        counts[owner] += 1
    # 1,000 each on average; a binomial spread of ~26.
    assert all(850 <= n <= 1_150 for n in counts.values()), counts


def test_a_ranker_joining_takes_about_its_share_from_the_others_and_nothing_else_moves() -> None:
    rankers = [new_ranker_id("ranker") for _ in range(3)]
    before = owners(rankers)
    joined = new_ranker_id("ranker")
    after = owners([*rankers, joined])
    moved = [cause for cause in CAUSES if after[cause] != before[cause]]
    assert all(after[cause] == joined for cause in moved)
    assert 600 <= len(moved) <= 900, len(moved)  # 750 expected


def test_a_ranker_leaving_hands_over_only_its_own_causes() -> None:
    rankers = [new_ranker_id("ranker") for _ in range(3)]
    before = owners(rankers)
    after = owners(rankers[1:])
    moved = [cause for cause in CAUSES if after[cause] != before[cause]]
    assert moved == [cause for cause in CAUSES if before[cause] == rankers[0]]


def test_ranker_ids_are_unique_per_call() -> None:
    ids = {new_ranker_id("ranker") for _ in range(1_000)}
    assert len(ids) == 1_000
    assert all(ranker_id.startswith("ranker-") for ranker_id in ids)
