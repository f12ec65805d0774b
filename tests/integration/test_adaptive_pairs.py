"""Adaptive pair selection against a real Redis: the newcomer pool as the catalog and the
ranker keep it, newcomers shown first, the fit summary read by the gateway, and the edge
cases (two proposals, a voter near exhaustion, a proposal rejected after the fit, a strategy
switched mid-run)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import pytest
from conftest import own_database
from redis.asyncio import Redis

from gateway.catalog import Cause, NewProposal, Status
from gateway.catalog_store import CatalogStore
from gateway.pair_selection import PairSelector
from pairwise import keys, selection_summary
from pairwise.errors import FailedPrecondition
from pairwise.redis_scripts import ScriptRunner
from ranker import bradley_terry
from ranker.cause_tasks import CauseTasks
from ranker.pair_counts import PairCounts
from ranker.ranking import Catalog, Ranking, fit_input, ranking_from_fit
from ranker.selection_publisher import SelectionPublisher

T = TypeVar("T")


def run(redis_url: str, scenario: Callable[[Redis], Awaitable[T]]) -> T:
    async def main() -> T:
        redis = Redis.from_url(own_database(redis_url, "selection"))
        try:
            return await scenario(redis)
        finally:
            await redis.aclose()
    return asyncio.run(main())


async def open_cause(redis: Redis, cause_id: str, n: int, strategy: str,
                     status: Status = Status.ACCEPTED) -> CatalogStore:
    """A cause with proposals p0..p{n-1} (indices 0..n-1) and the given strategy."""
    catalog = CatalogStore(redis)
    await catalog.create_cause(Cause(cause_id, "Q", False, 0))
    await redis.hset(keys.cause(cause_id), mapping={"pair_selection": strategy,
                                                    "newcomer_votes": 10})
    if n:
        await catalog.add_proposals(cause_id, [NewProposal(f"p{i}", "t", "") for i in range(n)],
                                    status, 0)
    return catalog


async def pool(redis: Redis, cause_id: str) -> dict[int, float]:
    return {int(m): s for m, s in await redis.zrange(keys.newcomers(cause_id), 0, -1,
                                                     withscores=True)}


def ranking(cause_id: str, n: int, abilities: list[float], votes: list[int]) -> Ranking:
    """A published ranking of proposals 0..n-1 with these abilities and counted votes (as
    wins: only the per-proposal totals matter to selection)."""
    catalog = Catalog(version=1, proposal_ids=tuple(f"p{i}" for i in range(n)),
                      texts=("t",) * n, accepted=np.arange(n))
    counts = PairCounts()
    inputs = fit_input(cause_id, catalog, counts, votes_counted=sum(votes),
                       last_vote_entry_id="")
    inputs = type(inputs)(**{**inputs.__dict__, "wins": np.array(votes, dtype=np.int64)})
    theta = np.array(abilities, dtype=np.float64)
    fit = bradley_terry.BTFit(abilities=theta, std_errors=np.full(n, 0.1),
                              ci_low=theta - 0.2, ci_high=theta + 0.2, iterations=1,
                              log_posterior=0.0)
    return ranking_from_fit(inputs, fit)


async def settle(selector: PairSelector, cause_id: str, voter: str) -> None:
    """One call, then let the gateway finish rebuilding the cause's structures."""
    await selector.next_pair(cause_id, voter)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if not selector._loading:  # noqa: SLF001 - the test waits for the background build
            return


def test_the_catalog_keeps_accepted_proposals_in_the_newcomer_pool(
        redis_url: str, cause_id: str) -> None:
    async def scenario(redis: Redis) -> list[dict[int, float]]:
        catalog = await open_cause(redis, cause_id, 3, "ADAPTIVE")
        await catalog.add_proposals(cause_id, [NewProposal("p3", "t", "")], Status.PENDING, 0)
        seen = [await pool(redis, cause_id)]
        await catalog.moderate(cause_id, "p3", Status.ACCEPTED, "")
        await catalog.moderate(cause_id, "p0", Status.REJECTED, "spam")
        seen.append(await pool(redis, cause_id))
        await catalog.moderate(cause_id, "p0", Status.ACCEPTED, "appeal")
        seen.append(await pool(redis, cause_id))
        return seen

    added, moderated, reinstated = run(redis_url, scenario)
    assert added == {0: 0, 1: 0, 2: 0}  # the pending proposal waits outside
    assert moderated == {1: 0, 2: 0, 3: 0}
    assert reinstated == {0: 0, 1: 0, 2: 0, 3: 0}


def test_each_fit_publishes_a_summary_and_settles_the_pool(redis_url: str,
                                                            cause_id: str) -> None:
    async def scenario(redis: Redis) -> tuple[selection_summary.FitSummary, dict[int, float],
                                              dict[int, float]]:
        catalog = await open_cause(redis, cause_id, 5, "ADAPTIVE")
        await redis.zadd(keys.newcomers(cause_id), {"1": 7, "2": 4})  # shown since the fit
        await catalog.moderate(cause_id, "p3", Status.REJECTED, "")   # after the fit's read
        await catalog.add_proposals(cause_id, [NewProposal("p5", "t", "")], Status.ACCEPTED, 0)
        tasks = CauseTasks(cause_id)
        publisher = SelectionPublisher(redis, cause_id, ScriptRunner(redis), tasks)
        await publisher.write(ranking(cause_id, 5, [0.5, -1.0, 2.0, 0.0, -0.5],
                                      [15, 3, 0, 2, 10]))
        first = await pool(redis, cause_id)
        await publisher.write(ranking(cause_id, 5, [0.5, -1.0, 2.0, 0.0, -0.5],
                                      [15, 12, 1, 2, 10]))
        version, data = await redis.hmget(keys.selection_summary(cause_id), ["version", "data"])
        return selection_summary.decode(int(version), data), first, await pool(redis, cause_id)

    summary, first, second = run(redis_url, scenario)
    assert summary.version == 2
    assert summary.items.tolist() == [2, 0, 3, 4, 1]  # ability order, highest first
    assert summary.votes.tolist() == [1, 15, 2, 10, 12]
    # Votes counted replace the times shown; 10 or more leave; the rejected p3 stays out;
    # p5, accepted after the fit, keeps its place.
    assert first == {1: 3, 2: 0, 5: 0}
    assert second == {2: 1, 5: 0}


def test_newcomers_are_shown_first_only_under_adaptive_selection(
        redis_url: str, cause_id: str) -> None:
    """200 proposals, one newcomer: adaptive shows it in its first prompts until it has the
    10 estimated votes of the threshold; uniform shows it at its 1% chance, no more."""

    async def appearances(redis: Redis, cause: str, strategy: str) -> tuple[int, float]:
        await open_cause(redis, cause, 200, strategy)
        await redis.zremrangebyrank(keys.newcomers(cause), 0, -1)
        await redis.zadd(keys.newcomers(cause), {"150": 0})
        selector = PairSelector(redis, rng=random.Random(7), newcomer_share=0.3)
        await settle(selector, cause, "warm-up")
        shown = Counter[str]()
        for voter in range(100):
            left, right = await selector.next_pair(cause, f"v{voter}")
            shown.update((left.proposal_id, right.proposal_id))
        score = await redis.zscore(keys.newcomers(cause), "150")
        return shown["p150"], float(score or 0)

    async def scenario(redis: Redis) -> tuple[tuple[int, float], tuple[int, float]]:
        return (await appearances(redis, cause_id + "-a", "ADAPTIVE"),
                await appearances(redis, cause_id + "-u", "UNIFORM"))

    (adaptive, adaptive_score), (uniform, _) = run(redis_url, scenario)
    assert adaptive >= 10 and adaptive_score >= 10
    assert uniform <= 6  # Binomial(100, 0.01): P(X >= 7) < 1e-4


def test_a_proposal_rejected_after_the_fit_is_never_shown(redis_url: str,
                                                          cause_id: str) -> None:
    async def scenario(redis: Redis) -> Counter[str]:
        catalog = await open_cause(redis, cause_id, 30, "ADAPTIVE")
        publisher = SelectionPublisher(redis, cause_id, ScriptRunner(redis),
                                       CauseTasks(cause_id))
        await publisher.write(ranking(cause_id, 30, [3.0 - 0.2 * i for i in range(30)],
                                      [40] * 30))
        selector = PairSelector(redis, rng=random.Random(3))
        await settle(selector, cause_id, "warm-up")
        await catalog.moderate(cause_id, "p0", Status.REJECTED, "")
        await catalog.moderate(cause_id, "p1", Status.REJECTED, "")
        shown = Counter[str]()
        for voter in range(300):
            left, right = await selector.next_pair(cause_id, f"v{voter}")
            shown.update((left.proposal_id, right.proposal_id))
        return shown

    shown = run(redis_url, scenario)
    assert shown["p0"] == shown["p1"] == 0
    assert len(shown) == 28  # everyone else still gets shown


def test_a_voter_gets_every_pair_once_under_adaptive_selection(redis_url: str,
                                                               cause_id: str) -> None:
    async def scenario(redis: Redis) -> list[frozenset[str]]:
        await open_cause(redis, cause_id, 6, "ADAPTIVE")
        publisher = SelectionPublisher(redis, cause_id, ScriptRunner(redis),
                                       CauseTasks(cause_id))
        await publisher.write(ranking(cause_id, 6, [1.0, 0.5, 0.0, -0.5, -1.0, 2.0],
                                      [4, 30, 30, 30, 30, 1]))
        selector = PairSelector(redis, rng=random.Random(5), newcomer_share=0.5)
        await settle(selector, cause_id, "warm-up")
        shown = [frozenset(p.proposal_id for p in await selector.next_pair(cause_id, "ann"))
                 for _ in range(15)]
        with pytest.raises(FailedPrecondition, match="every pair"):
            await selector.next_pair(cause_id, "ann")
        return shown

    shown = run(redis_url, scenario)
    assert set(shown) == {frozenset((f"p{a}", f"p{b}"))
                          for a, b in itertools.combinations(range(6), 2)}


def test_two_proposals_one_just_accepted(redis_url: str, cause_id: str) -> None:
    async def scenario(redis: Redis) -> tuple[str, frozenset[str], str]:
        catalog = await open_cause(redis, cause_id, 1, "ADAPTIVE")
        await catalog.add_proposals(cause_id, [NewProposal("late", "t", "")], Status.PENDING, 0)
        selector = PairSelector(redis, rng=random.Random(1), newcomer_share=1.0)
        with pytest.raises(FailedPrecondition) as few:
            await selector.next_pair(cause_id, "bob")
        await catalog.moderate(cause_id, "late", Status.ACCEPTED, "")
        pair = frozenset(p.proposal_id for p in await selector.next_pair(cause_id, "bob"))
        with pytest.raises(FailedPrecondition) as done:
            await selector.next_pair(cause_id, "bob")
        return str(few.value), pair, str(done.value)

    few, pair, done = run(redis_url, scenario)
    assert "1 accepted proposal" in few
    assert pair == {"p0", "late"}
    assert "every pair" in done


def test_switching_to_uniform_stops_newcomer_exposure_at_once(redis_url: str,
                                                              cause_id: str) -> None:
    async def scenario(redis: Redis) -> tuple[int, int]:
        await open_cause(redis, cause_id, 200, "ADAPTIVE")
        await redis.zremrangebyrank(keys.newcomers(cause_id), 0, -1)
        selector = PairSelector(redis, rng=random.Random(11), newcomer_share=0.5)
        await settle(selector, cause_id, "warm-up")

        async def shown_newcomer(calls: int, first_voter: int) -> int:
            await redis.zadd(keys.newcomers(cause_id), {"99": 0})
            count = 0
            for voter in range(first_voter, first_voter + calls):
                pair = await selector.next_pair(cause_id, f"v{voter}")
                count += "p99" in {p.proposal_id for p in pair}
            return count

        before = await shown_newcomer(20, 0)
        await redis.hset(keys.cause(cause_id), "pair_selection", "UNIFORM")
        return before, await shown_newcomer(100, 100)

    before, after = run(redis_url, scenario)
    assert before >= 5
    assert after <= 6  # uniform: Binomial(100, 0.01)
