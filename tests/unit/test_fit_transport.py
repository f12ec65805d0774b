"""Which way a fit runs: small fits in a thread, larger ones in the worker, on its replica
of the cause's counts when there is a single worker to hold one."""

from __future__ import annotations

import pytest

from ranker import fit_pool
from ranker.fit_pool import FitTransport, choose_transport

ITEMS, PAIRS = fit_pool.INLINE_MAX_ITEMS, fit_pool.INLINE_MAX_PAIRS


@pytest.mark.parametrize("replicas", [True, False])
def test_small_fits_run_in_a_thread(replicas):
    assert choose_transport(ITEMS, PAIRS, replicas=replicas) is FitTransport.THREAD
    assert choose_transport(0, 0, replicas=replicas) is FitTransport.THREAD


@pytest.mark.parametrize("n_items, n_pairs", [(ITEMS + 1, 0), (2, PAIRS + 1)])
def test_larger_fits_run_in_the_worker(n_items, n_pairs):
    assert choose_transport(n_items, n_pairs, replicas=True) is FitTransport.REPLICA
    assert choose_transport(n_items, n_pairs, replicas=False) is FitTransport.FILE
