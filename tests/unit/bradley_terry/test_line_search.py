"""The bounds that accept a Newton step without computing ℓ never promise more than ℓ rises."""

import numpy as np
import pytest

from ranker.bradley_terry.graph import ComparisonGraph, sum_by
from ranker.bradley_terry.likelihood import Objective
from ranker.bradley_terry.solver import _rise_bound


@pytest.mark.parametrize("seed", range(6))
def test_rise_bounds_are_below_the_rise_of_the_log_posterior(seed):
    rng = np.random.default_rng(seed)
    n, p = 40, 250  # sparse enough to leave a few small components beside the main one
    i = rng.integers(0, n, p)
    j = (i + rng.integers(1, n, p)) % n
    graph = ComparisonGraph(n, i, j, rng.integers(0, 6, p).astype(float),
                            rng.integers(0, 6, p).astype(float), 0.01)
    objective = Objective(graph)
    count, labels, _ = graph.components()
    for size in (0.01, 0.3, 3.0, 30.0):
        abilities = rng.normal(scale=2.0, size=n)
        step = rng.normal(scale=size, size=n)
        here = objective.evaluate(abilities)
        there = objective.evaluate(abilities + step)
        rise = there.objectives - here.objectives
        # The values without ℓ, and ℓ alone, are those of the full pass.
        assert objective.evaluate(abilities + step, with_objectives=False).objectives is None
        np.testing.assert_array_equal(objective.objectives(abilities + step), there.objectives)
        start = sum_by(labels, here.gradient * step, count)
        end = sum_by(labels, there.gradient * step, count)
        curvature = objective.curvature_bound(step)
        for bound in (_rise_bound(start, end, None), _rise_bound(start, end, curvature)):
            assert np.all(bound <= rise + 1e-9 * (1.0 + np.abs(rise)))
        # And it is no looser than half the curvature bound: close to ℓ for small steps.
        assert np.all(rise - _rise_bound(start, end, curvature) <= 0.5 * curvature + 1e-9)
