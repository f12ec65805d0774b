"""Which way a fit runs: small fits in a thread, larger ones in the worker, on its replica
of the cause's counts when there is a single worker to hold one; segments' fits in a worker
of their own."""

from __future__ import annotations

import asyncio
import subprocess

import numpy as np
import pytest

from ranker import bradley_terry, fit_pool
from ranker.bradley_terry import PRIOR_STRENGTH
from ranker.fit_pool import FitPool, FitTransport, choose_transport

ITEMS, PAIRS = fit_pool.INLINE_MAX_ITEMS, fit_pool.INLINE_MAX_PAIRS


@pytest.mark.parametrize("replicas", [True, False])
def test_small_fits_run_in_a_thread(replicas):
    assert choose_transport(ITEMS, PAIRS, replicas=replicas) is FitTransport.THREAD
    assert choose_transport(0, 0, replicas=replicas) is FitTransport.THREAD


@pytest.mark.parametrize("n_items, n_pairs", [(ITEMS + 1, 0), (2, PAIRS + 1)])
def test_larger_fits_run_in_the_worker(n_items, n_pairs):
    assert choose_transport(n_items, n_pairs, replicas=True) is FitTransport.REPLICA
    assert choose_transport(n_items, n_pairs, replicas=False) is FitTransport.FILE


def test_a_segment_fit_runs_while_the_fit_worker_is_busy(tmp_path):
    """Segments have a worker of their own: a segment's fit completes while the fit worker
    is held by something else, and gives the fit it gives in this process."""
    rng = np.random.default_rng(1)
    n = ITEMS + 100
    i = rng.integers(0, n - 1, 5_000)
    j = i + rng.integers(1, n - i)
    keys = np.unique(i * n + j)
    i, j = keys // n, keys % n
    wins_ij, wins_ji = rng.integers(0, 5, len(i)) + 1.0, rng.integers(0, 5, len(i)) + 1.0
    released = tmp_path / "released"

    async def run():
        pool = FitPool(1, nice=19, segment_workers=1)
        try:
            # Holds the fit worker until the file exists (no clock involved).
            busy = asyncio.ensure_future(pool.call(
                subprocess.run, ["sh", "-c", f"until [ -e {released} ]; do sleep 0.05; done"]))
            fit = await pool.fit(n, i, j, wins_ij, wins_ji, prior_strength=PRIOR_STRENGTH,
                                 init=None, approximate_errors=True, tol=1e-4, segment=True)
            still_busy = not busy.done()
            released.touch()
            await busy
            return fit, still_busy
        finally:
            await pool.close()

    fit, still_busy = asyncio.run(run())
    assert still_busy
    here = bradley_terry.fit(n, i, j, wins_ij, wins_ji, tol=1e-4, exact=False,
                             exact_component_max=1)
    np.testing.assert_allclose(fit.abilities, here.abilities, atol=1e-9)
    np.testing.assert_allclose(fit.std_errors, here.std_errors, rtol=1e-9)
