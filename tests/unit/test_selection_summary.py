"""The fit summary a ranker hands to gateways: what goes in comes out, in ability order."""

from __future__ import annotations

import numpy as np
import pytest

from pairwise import selection_summary


def test_a_summary_round_trips_in_single_precision() -> None:
    items = np.array([7, 2, 40_000, 0])
    abilities = np.array([1.25, 0.5, -0.25, -1.5])
    std_errors = np.array([0.1, 0.2, 0.3, 0.4])
    votes = np.array([12, 0, 3, 2_000_000])
    summary = selection_summary.decode(
        5, selection_summary.encode(items, abilities, std_errors, votes))
    assert summary.version == 5 and summary.n_items == 4
    assert summary.items.tolist() == [7, 2, 40_000, 0]
    assert summary.votes.tolist() == [12, 0, 3, 2_000_000]
    np.testing.assert_allclose(summary.abilities, abilities, rtol=1e-6)
    np.testing.assert_allclose(summary.std_errors, std_errors, rtol=1e-6)


def test_an_empty_summary_is_valid() -> None:
    empty = np.zeros(0)
    assert selection_summary.decode(1, selection_summary.encode(empty, empty, empty, empty)
                                    ).n_items == 0


@pytest.mark.parametrize("data", [b"", b"PWS1", b"XXXX\x01\x00\x00\x00" + bytes(16),
                                  b"PWS1\x02\x00\x00\x00" + bytes(16)])
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        selection_summary.decode(1, data)


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError):
        selection_summary.encode(np.zeros(2), np.zeros(2), np.zeros(1), np.zeros(2))
