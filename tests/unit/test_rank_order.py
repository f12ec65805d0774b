"""The order of a ranking: highest ability first, equal abilities by proposal id, every
column travelling with its proposal, and pages of ranks 1..n."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ranker import bradley_terry
from ranker.ranking import FitInput, Ranking, ranking_from_fit


def inputs(ids: list[str], items: list[int] | None = None, wins: list[int] | None = None,
           i: list[int] | None = None, j: list[int] | None = None,
           wins_ij: list[float] | None = None, wins_ji: list[float] | None = None) -> FitInput:
    """Proposals `ids` (catalog order); the ranked ones are `items` (all by default)."""
    ranked = np.array(items if items is not None else range(len(ids)), dtype=np.int64)
    n = len(ranked)
    zeros = np.zeros(n, dtype=np.int64)
    return FitInput(
        cause_id="c1", catalog_version=1, items=ranked, catalog_ids=tuple(ids),
        catalog_texts=tuple(f"texte de {pid}" for pid in ids),
        i=np.array(i or [], dtype=np.int64), j=np.array(j or [], dtype=np.int64),
        wins_ij=np.array(wins_ij or [], dtype=np.float64),
        wins_ji=np.array(wins_ji or [], dtype=np.float64),
        wins=np.array(wins, dtype=np.int64) if wins is not None else zeros,
        losses=zeros, ties=zeros, skips=zeros, appearances=zeros,
        votes_counted=0, last_vote_entry_id="0-0")


def fitted(abilities: list[float]) -> SimpleNamespace:
    """A fit with the given abilities; each item's standard error is distinct, so that a
    column left in the wrong order shows."""
    a = np.array(abilities, dtype=np.float64)
    return SimpleNamespace(abilities=a, std_errors=0.1 + np.arange(len(a)) / 100,
                           ci_low=a - 1, ci_high=a + 1, iterations=3)


def ids_in_rank_order(ranking: Ranking) -> list[str]:
    return ranking.proposal_ids(ranking.page(0, ranking.total_proposals))


def test_higher_ability_ranks_first_and_each_column_follows_its_proposal() -> None:
    fit = fitted([0.1, 2.0, -1.0, 0.5])
    ranking = ranking_from_fit(inputs(["a", "b", "c", "d"], wins=[1, 20, 0, 5]), fit,
                               clock=lambda: 1.0)
    assert ids_in_rank_order(ranking) == ["b", "d", "a", "c"]
    assert ranking.abilities.tolist() == [2.0, 0.5, 0.1, -1.0]
    assert ranking.wins.tolist() == [20, 5, 1, 0]
    assert ranking.std_errors.tolist() == pytest.approx([0.11, 0.13, 0.10, 0.12])
    assert ranking.texts(range(0, 1)) == ["texte de b"]
    assert ranking.fitted_at_ms == 1_000


def test_equal_abilities_are_ordered_by_proposal_id_within_their_run_only() -> None:
    # Two runs of ties (1.5 and -0.2) around distinct abilities; ids compare as text.
    fit = fitted([-0.2, 1.5, 3.0, 1.5, -0.2, -0.2, 1.5, -4.0])
    ids = ["zeta", "p2", "top", "p10", "alpha", "mid", "a", "last"]
    ranking = ranking_from_fit(inputs(ids), fit)
    assert ids_in_rank_order(ranking) == [
        "top", "a", "p10", "p2", "alpha", "mid", "zeta", "last"]


def test_without_any_fit_every_proposal_ties_in_id_order() -> None:
    ranking = ranking_from_fit(inputs(["b", "c", "a", "B"]), None)
    assert ids_in_rank_order(ranking) == ["B", "a", "b", "c"]
    assert ranking.abilities.tolist() == [0.0] * 4
    assert ranking.iterations == 0


def test_only_accepted_proposals_are_ranked_and_named_by_their_catalog_index() -> None:
    # Catalog p0..p5; p1, p3 and p4 are pending or rejected.
    ranking = ranking_from_fit(inputs([f"p{k}" for k in range(6)], items=[0, 2, 5]),
                               fitted([0.0, -1.0, 1.0]))
    assert ids_in_rank_order(ranking) == ["p5", "p0", "p2"]
    assert ranking.proposal_index.tolist() == [5, 0, 2]


def test_pages_cover_ranks_1_to_n_without_gaps() -> None:
    ranking = ranking_from_fit(inputs(["a", "b", "c", "d", "e"]),
                               fitted([5.0, 4.0, 3.0, 2.0, 1.0]))
    pages = [ranking.page(offset, 2) for offset in (0, 2, 4)]
    assert [list(page) for page in pages] == [[0, 1], [2, 3], [4]]
    # Position k is rank k + 1: ranks 1..5 are a..e, each exactly once.
    assert [pid for page in pages for pid in ranking.proposal_ids(page)] == list("abcde")
    assert list(ranking.page(5, 2)) == [] and list(ranking.page(99, 2)) == []
    assert ranking.total_proposals == 5


def test_a_published_ranking_cannot_be_changed_in_place() -> None:
    ranking = ranking_from_fit(inputs(["a", "b"]), fitted([1.0, 0.0]))
    with pytest.raises(ValueError):
        ranking.abilities[0] = 9.0


def test_a_real_fit_ranks_a_chain_of_clear_wins_in_order() -> None:
    # c beats b 8-2 and b beats a 8-2 (a vs c never met): c, b, a.
    data = inputs(["a", "b", "c"], i=[0, 1], j=[1, 2], wins_ij=[2.0, 2.0], wins_ji=[8.0, 8.0])
    fit = bradley_terry.fit(data.n_items, data.i, data.j, data.wins_ij, data.wins_ji)
    ranking = ranking_from_fit(data, fit)
    assert ids_in_rank_order(ranking) == ["c", "b", "a"]
    # Symmetric evidence: b sits in the middle, at ability 0 once centred.
    assert ranking.abilities[1] == pytest.approx(0.0, abs=1e-9)
    assert ranking.abilities[0] == pytest.approx(-ranking.abilities[2])
