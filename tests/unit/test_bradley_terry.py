"""Bradley–Terry fit: golden cases (tests/data), independent oracles, gradient check,
calibration, and the large-n paths."""

from __future__ import annotations

import json
from pathlib import Path

import choix
import numpy as np
import pytest
import scipy.optimize
from scipy.special import expit

from ranker import bradley_terry as bt
from ranker import scores
from ranker.bradley_terry import solver, standard_errors
from ranker.pair_counts import SKIP, TIE, WIN, PairCounts

LAMBDA = bt.PRIOR_STRENGTH
DATA = Path(__file__).parents[1] / "data"
CLOSED_FORMS = json.loads((DATA / "bradley_terry_closed_forms.json").read_text())["cases"]


def oracle_objective(theta, i, j, wins_ij, wins_ji, lam):
    """The penalised negative log-likelihood and its gradient, written independently."""
    diff = theta[i] - theta[j]
    # -log σ(x) = log(1 + e^{-x})
    value = np.sum(wins_ij * np.logaddexp(0, -diff) + wins_ji * np.logaddexp(0, diff))
    value += 0.5 * lam * np.sum(theta**2)
    p = expit(diff)
    edge = -(wins_ij * (1 - p)) + wins_ji * p
    grad = np.zeros_like(theta)
    np.add.at(grad, i, edge)
    np.add.at(grad, j, -edge)
    return value, grad + lam * theta


def oracle_fit(n, i, j, wins_ij, wins_ji, lam=LAMBDA):
    """Penalised MLE by L-BFGS-B on the oracle objective, centred."""
    result = scipy.optimize.minimize(
        oracle_objective,
        np.zeros(n),
        args=(i, j, wins_ij, wins_ji, lam),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 100_000, "maxcor": 50},
    )
    assert result.success, result.message
    return result.x - result.x.mean()


def oracle_std_errors(n, theta, i, j, wins_ij, wins_ji, lam=LAMBDA):
    """sqrt(diag(C H⁻¹ C)) with H built entry by entry and inverted densely."""
    hessian = lam * np.eye(n)
    p = expit(theta[i] - theta[j])
    for a, b, w in zip(i, j, (wins_ij + wins_ji) * p * (1 - p), strict=True):
        hessian[a, a] += w
        hessian[b, b] += w
        hessian[a, b] -= w
        hessian[b, a] -= w
    centring = np.eye(n) - 1.0 / n
    return np.sqrt(np.diag(centring @ np.linalg.inv(hessian) @ centring))


def use_sparse_path(monkeypatch, max_items):
    """The large-n regime on a small problem: CG without a dense fallback, approximate
    standard errors (exact still for components up to 2,000 items)."""
    monkeypatch.setattr(solver, "DENSE_MAX_ITEMS", max_items)
    monkeypatch.setattr(standard_errors, "EXACT_MAX_ITEMS", max_items)


def simulate(rng, abilities, n_votes, tie_rate=0.0, n_items=None):
    """Random pairs among `abilities`; returns per-vote (winner-or-a, loser-or-b, kind)."""
    n = abilities.shape[0] if n_items is None else n_items
    a = rng.integers(0, n, n_votes)
    b = (a + rng.integers(1, n, n_votes)) % n
    tie = rng.random(n_votes) < tie_rate
    a_wins = rng.random(n_votes) < expit(abilities[a] - abilities[b])
    winner = np.where(a_wins, a, b)
    loser = np.where(a_wins, b, a)
    kinds = np.where(tie, TIE, WIN).astype(np.uint8)
    return kinds, winner, loser


def pair_data(n_items, kinds, a, b, items=None):
    counts = PairCounts(n_items)
    counts.apply(kinds, a, b)
    return counts.subset(np.arange(n_items) if items is None else items)


def connected_dataset(rng, n=40, votes=1_500):
    return pair_data(n, *simulate(rng, rng.normal(0, 1.2, n), votes, tie_rate=0.15))


def disconnected_dataset(rng):
    """Three clusters that never meet, a pair of items, and two items with no votes."""
    parts = []
    for offset, size, votes in ((0, 15, 400), (15, 10, 200), (25, 6, 60)):
        kinds, a, b = simulate(rng, rng.normal(0, 1.5, size), votes, tie_rate=0.2)
        parts.append((kinds, a + offset, b + offset))
    parts.append((np.array([WIN, TIE, WIN], dtype=np.uint8), np.array([31, 31, 32]),
                  np.array([32, 32, 31])))
    kinds, a, b = (np.concatenate(x) for x in zip(*parts, strict=True))
    return 35, pair_data(35, kinds, a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_connected_fit_matches_lbfgs_oracle(seed):
    rng = np.random.default_rng(seed)
    data = connected_dataset(rng)
    fit = bt.fit(40, *data)
    np.testing.assert_allclose(fit.abilities, oracle_fit(40, *data), atol=1e-5)
    assert abs(fit.abilities.mean()) < 1e-12
    np.testing.assert_allclose(fit.std_errors, oracle_std_errors(40, fit.abilities, *data),
                               rtol=1e-8)
    np.testing.assert_allclose(fit.ci_low, fit.abilities - 1.96 * fit.std_errors)
    np.testing.assert_allclose(fit.ci_high, fit.abilities + 1.96 * fit.std_errors)
    assert fit.log_posterior == pytest.approx(-oracle_objective(fit.abilities, *data, LAMBDA)[0])


@pytest.mark.parametrize("seed", [3, 4])
def test_disconnected_fit_matches_oracle_and_centres_each_component(seed):
    rng = np.random.default_rng(seed)
    n, data = disconnected_dataset(rng)
    fit = bt.fit(n, *data)
    np.testing.assert_allclose(fit.abilities, oracle_fit(n, *data), atol=1e-5)
    np.testing.assert_allclose(fit.std_errors, oracle_std_errors(n, fit.abilities, *data),
                               rtol=1e-8)
    # With no comparison between them, the prior alone places each component: mean 0 each
    # (to the fit's tolerance, 1e-6 logits).
    for members in (slice(0, 15), slice(15, 25), slice(25, 31), slice(31, 33)):
        assert abs(fit.abilities[members].mean()) < 1e-6
    # Items 33 and 34 have no votes: listed, at 0, with the prior's uncertainty.
    assert fit.abilities[33] == pytest.approx(0.0, abs=1e-8)
    assert fit.std_errors[33] == pytest.approx(np.sqrt((1 - 1 / n) / LAMBDA), rel=1e-6)


def test_hundreds_of_disjoint_pairs_each_reach_their_own_optimum():
    """Early in a large consultation the votes can fall on many pairs that share no
    proposal: every pair is a component of its own, and each must still be fitted (the
    ranker would otherwise keep its previous ranking for good)."""
    rng = np.random.default_rng(1)
    k, votes = 400, 20
    i = np.arange(0, 2 * k, 2)
    wins = rng.binomial(votes, expit(rng.normal(0, 0.3, k))).astype(float)
    fit = bt.fit(2 * k, i, i + 1, wins, votes - wins)
    for first, w in zip(i, wins, strict=True):
        # The pair alone, centred: θ = ±d/2 with w·σ(−d) − (votes − w)·σ(d) − λ·d/2 = 0.
        d = scipy.optimize.brentq(
            lambda d, w=w: w * expit(-d) - (votes - w) * expit(d) - LAMBDA * d / 2, -50, 50)
        assert fit.abilities[first] == pytest.approx(d / 2, abs=1e-6)
        assert fit.abilities[first + 1] == pytest.approx(-d / 2, abs=1e-6)


@pytest.mark.parametrize("case", CLOSED_FORMS, ids=[case["name"] for case in CLOSED_FORMS])
def test_closed_form_cases(case):
    """tests/data/bradley_terry_closed_forms.json: abilities, standard errors and scores
    derived by hand (the derivation is stored with each case)."""
    fit = bt.fit(case["n_items"], np.array(case["i"]), np.array(case["j"]),
                 np.array(case["wins_ij"]), np.array(case["wins_ji"]),
                 prior_strength=case["prior_strength"], tol=1e-12)
    np.testing.assert_allclose(fit.abilities, case["abilities"], atol=1e-10)
    np.testing.assert_allclose(fit.std_errors, case["std_errors"], rtol=1e-9)
    assert fit.exact_std_errors
    np.testing.assert_allclose(scores.win_probability_scores(fit.abilities), case["scores"],
                               atol=1e-8)


def test_published_baseball_table():
    """Agresti's 1987 American League East example (tests/data): the fit reproduces the
    published maximum-likelihood abilities to their two decimals, the prior's shrinkage
    (~1e-3 logits with 13 games a pair) included."""
    table = json.loads((DATA / "bradley_terry_baseball_1987.json").read_text())
    wins = np.array(table["wins"], dtype=float)
    n = wins.shape[0]
    i, j = np.triu_indices(n, 1)
    fit = bt.fit(n, i, j, wins[i, j], wins[j, i])
    relative = fit.abilities - fit.abilities[-1]
    half_unit = 0.5 * 10.0 ** -table["published_decimals"]
    np.testing.assert_allclose(relative, table["published_abilities_relative_to_last"],
                               atol=half_unit + 2e-3)
    assert [table["teams"][k] for k in np.argsort(-fit.abilities)] == table["teams"]


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    i, j, wins_ij, wins_ji = connected_dataset(rng, n=25, votes=300)
    for scale in (0.0, 1.0, 3.0):
        theta = rng.normal(0, scale, 25)
        error = scipy.optimize.check_grad(
            bt.log_posterior, bt.gradient, theta, i, j, wins_ij, wins_ji, LAMBDA
        )
        norm = np.linalg.norm(bt.gradient(theta, i, j, wins_ij, wins_ji, LAMBDA))
        assert error < 1e-5 * (1 + norm)


def test_all_win_and_all_loss_items_stay_finite():
    rng = np.random.default_rng(6)
    kinds, a, b = simulate(rng, rng.normal(0, 1, 20), 800)
    # Item 20 wins every vote it is in, item 21 loses every one.
    opponents = rng.integers(0, 20, 30)
    kinds = np.concatenate([kinds, np.full(60, WIN, dtype=np.uint8)])
    a = np.concatenate([a, np.full(30, 20), opponents])
    b = np.concatenate([b, opponents, np.full(30, 21)])
    data = pair_data(22, kinds, a, b)
    fit = bt.fit(22, *data)
    points = scores.win_probability_scores(fit.abilities)
    for field in (fit.abilities, fit.std_errors, fit.ci_low, fit.ci_high, points):
        assert np.all(np.isfinite(field))
    assert fit.abilities.argmax() == 20 and fit.abilities.argmin() == 21
    assert fit.abilities[20] < 15 and fit.abilities[21] > -15
    assert points[20] > 95 and points[21] < 5
    np.testing.assert_allclose(fit.abilities, oracle_fit(22, *data), atol=1e-5)


def test_huge_counts_do_not_overflow():
    i = np.array([0, 1, 0, 2])
    j = np.array([1, 2, 2, 3])
    wins_ij = np.array([1e6, 1e6, 3e6, 5e5])
    wins_ji = np.array([0.0, 1.0, 0.0, 5e5])
    fit = bt.fit(4, i, j, wins_ij, wins_ji)
    assert np.all(np.isfinite(fit.abilities)) and np.all(np.isfinite(fit.std_errors))
    assert fit.abilities[0] > fit.abilities[1] > fit.abilities[2]
    assert fit.abilities[2] == pytest.approx(fit.abilities[3], abs=1e-6)
    # Within about tol (1e-6 logits) of the optimum, as documented; the gradient is that
    # error times the information, ~2.5e5 per logit on the pairs with 1e6 votes.
    tight = bt.fit(4, i, j, wins_ij, wins_ji, tol=1e-14)
    np.testing.assert_allclose(fit.abilities, tight.abilities, atol=3e-6)
    grad = bt.gradient(tight.abilities, i, j, wins_ij, wins_ji, LAMBDA)
    assert np.max(np.abs(grad)) < 1e-3  # ~1e-10 of the 1e6 votes at stake


def test_penalised_estimate_matches_unpenalised_mle_on_well_connected_data():
    rng = np.random.default_rng(8)
    truth = rng.normal(0, 1, 30)
    kinds, winner, loser = simulate(rng, truth, 6_000)
    i, j, wins_ij, wins_ji = pair_data(30, kinds, winner, loser)
    fit = bt.fit(30, i, j, wins_ij, wins_ji)
    mle = choix.opt_pairwise(30, list(zip(winner.tolist(), loser.tolist(), strict=True)),
                             alpha=0.0, tol=1e-10)
    np.testing.assert_allclose(fit.abilities, mle - mle.mean(), atol=0.01)
    # And the same with the oracle at λ = 0, which is defined here because the graph connects.
    np.testing.assert_allclose(fit.abilities, oracle_fit(30, i, j, wins_ij, wins_ji, 0.0),
                               atol=0.01)


def test_intervals_cover_true_centred_abilities_95_percent_of_the_time():
    rng = np.random.default_rng(9)
    n, replicates, votes = 30, 300, 600
    truth = rng.normal(0, 1, n)
    truth -= truth.mean()
    a = rng.integers(0, n, (replicates, votes))
    b = (a + rng.integers(1, n, (replicates, votes))) % n
    a_wins = rng.random((replicates, votes)) < expit(truth[a] - truth[b])
    winners = np.where(a_wins, a, b)
    losers = np.where(a_wins, b, a)
    ones, zeros = np.ones(votes), np.zeros(votes)
    covered = []
    for winner, loser in zip(winners, losers, strict=True):
        fit = bt.fit(n, winner, loser, ones, zeros)  # repeated pairs are summed by fit
        covered.append((fit.ci_low <= truth) & (truth <= fit.ci_high))
    coverage = float(np.mean(covered))
    assert 0.93 <= coverage <= 0.97, coverage


def test_warm_start_from_stale_fit_reaches_the_cold_answer():
    rng = np.random.default_rng(10)
    truth = rng.normal(0, 1, 60)
    counts = PairCounts()
    counts.apply(*simulate(rng, truth, 2_000, tie_rate=0.1, n_items=50))
    stale = bt.fit(50, *counts.subset(np.arange(50)))
    counts.apply(*simulate(rng, truth, 3_000, tie_rate=0.1))
    data = counts.subset(np.arange(60))
    tight = 1e-12  # far below the default, so that any difference would show
    cold = bt.fit(60, *data, tol=tight)
    warm = bt.fit(60, *data, init=stale.abilities, tol=tight)  # shorter: new items start at 0
    np.testing.assert_allclose(warm.abilities, cold.abilities, atol=1e-9)
    np.testing.assert_allclose(warm.std_errors, cold.std_errors, rtol=1e-7)
    again = bt.fit(60, *data, init=cold.abilities, tol=tight)
    assert again.iterations <= 1 < cold.iterations
    wild = bt.fit(60, *data, init=rng.normal(0, 30, 80), tol=tight)  # far off and too long
    np.testing.assert_allclose(wild.abilities, cold.abilities, atol=1e-9)
    # At the default tolerance the answer is within ~1e-6 logits of the tight one.
    default = bt.fit(60, *data, init=stale.abilities)
    np.testing.assert_allclose(default.abilities, cold.abilities, atol=1e-6)


def test_items_without_votes_are_listed_with_prior_uncertainty():
    fit = bt.fit(5, np.array([0, 1]), np.array([1, 2]), np.array([2.0, 1.0]),
                 np.array([1.0, 1.5]))
    assert fit.abilities.shape == fit.std_errors.shape == (5,)
    assert fit.abilities[3] == pytest.approx(0.0, abs=1e-9)
    # Nothing known: the prior's 1/√λ = 10, shrunk by centring to sqrt((1 − 1/5)/λ) ≈ 8.9.
    assert fit.std_errors[3] == pytest.approx(np.sqrt(0.8 / LAMBDA), rel=1e-6)
    # Centring over all five makes the voted items share the voteless ones' uncertainty.
    data = (np.array([0, 1]), np.array([1, 2]), np.array([2.0, 1.0]), np.array([1.0, 1.5]))
    np.testing.assert_allclose(fit.std_errors, oracle_std_errors(5, fit.abilities, *data))
    assert fit.std_errors[:3].max() < fit.std_errors[3]


def test_tiny_and_empty_problems():
    empty = bt.fit(0, np.array([], dtype=int), np.array([], dtype=int), np.array([]),
                   np.array([]))
    assert empty.abilities.shape == (0,)
    single = bt.fit(1, np.array([], dtype=int), np.array([], dtype=int), np.array([]),
                    np.array([]))
    assert single.abilities.tolist() == [0.0]
    assert scores.win_probability_scores(single.abilities).tolist() == [50.0]


@pytest.mark.parametrize("seed", [30, 31])
def test_exact_std_errors_on_sparse_early_data_match_the_dense_inverse(seed):
    """Early voting: most items with a handful of votes (eliminated before the dense core),
    some with none, a few that won or lost everything, ties, a small separate cluster."""
    rng = np.random.default_rng(seed)
    n = 700
    truth = rng.normal(0, 1, n)
    kinds, a, b = simulate(rng, truth[:650], 2_000, tie_rate=0.1, n_items=650)
    cluster = rng.integers(660, 670, (40, 2))
    cluster = cluster[cluster[:, 0] != cluster[:, 1]]
    sweep = np.stack([np.full(8, 680), rng.integers(0, 650, 8)], axis=1)  # 680 wins all
    extra = np.concatenate([cluster, sweep])
    data = pair_data(n, np.concatenate([kinds, np.full(extra.shape[0], WIN, dtype=np.uint8)]),
                     np.concatenate([a, extra[:, 0]]), np.concatenate([b, extra[:, 1]]))
    fit = bt.fit(n, *data)
    assert fit.exact_std_errors
    np.testing.assert_allclose(fit.std_errors, oracle_std_errors(n, fit.abilities, *data),
                               rtol=1e-9)
    assert fit.std_errors[690] == pytest.approx(np.sqrt((1 - 1 / n) / LAMBDA), rel=1e-9)


@pytest.mark.parametrize("shape", ["tree", "star"])
def test_exact_std_errors_when_every_item_is_eliminated_or_one_hub_remains(shape):
    rng = np.random.default_rng(32)
    n = 300
    if shape == "tree":  # every item eliminated, no dense core left
        child = np.arange(1, n)
        parent = np.array([rng.integers(0, k) for k in child])
        i, j = parent, child
    else:  # one item compared with all others
        i, j = np.zeros(n - 1, dtype=int), np.arange(1, n)
    wins_ij = rng.integers(0, 5, n - 1).astype(float) + 0.5
    wins_ji = rng.integers(0, 5, n - 1).astype(float)
    fit = bt.fit(n, i, j, wins_ij, wins_ji)
    assert fit.exact_std_errors
    np.testing.assert_allclose(
        fit.std_errors, oracle_std_errors(n, fit.abilities, i, j, wins_ij, wins_ji), rtol=1e-9)


def test_scores_are_mean_win_probability_against_the_others():
    abilities = np.array([1.0, 0.0, -0.5, 2.0])
    expected = [
        100 * np.mean([expit(abilities[k] - abilities[m]) for m in range(4) if m != k])
        for k in range(4)
    ]
    np.testing.assert_allclose(scores.win_probability_scores(abilities), expected)


def test_large_n_scores_are_within_a_hundredth_of_a_point():
    rng = np.random.default_rng(11)
    abilities = np.concatenate([rng.normal(0, 1.5, 6_500), [9.0, -12.0]])
    n = abilities.shape[0]
    assert n > scores.EXACT_MAX_ITEMS
    exact = np.array([
        100 * (expit(abilities[k : k + 500, None] - abilities[None, :]).sum(axis=1) - 0.5)
        / (n - 1)
        for k in range(0, n, 500)
    ], dtype=object)
    exact = np.concatenate(list(exact))
    assert np.max(np.abs(scores.win_probability_scores(abilities) - exact)) < 0.01


def test_a_ranking_shows_the_scores_of_its_fit_in_rank_order():
    from ranker.ranking import Catalog, fit_input, ranking_from_fit

    counts = PairCounts(4)
    counts.apply(np.array([WIN, WIN, WIN, TIE], dtype=np.uint8), np.array([2, 2, 0, 1]),
                 np.array([0, 1, 1, 3]))
    ids = ("a", "b", "c", "d")
    inputs = fit_input("cause", Catalog(1, ids, ids, np.arange(4)), counts, votes_counted=4,
                       last_vote_entry_id="1-0")
    fit = bt.fit(4, inputs.i, inputs.j, inputs.wins_ij, inputs.wins_ji)
    ranking = ranking_from_fit(inputs, fit)
    order = np.argsort(-fit.abilities, kind="stable")
    assert ranking.proposal_ids(range(4))[0] == "c"
    np.testing.assert_array_equal(ranking.scores,
                                  scores.win_probability_scores(fit.abilities)[order])
    assert ranking.scores[0] > 50 > ranking.scores[-1]


@pytest.mark.parametrize("connected", [True, False])
def test_sparse_path_matches_dense_path(monkeypatch, connected):
    rng = np.random.default_rng(12)
    n, data = (40, connected_dataset(rng)) if connected else disconnected_dataset(rng)
    dense = bt.fit(n, *data)
    use_sparse_path(monkeypatch, 10)
    sparse = bt.fit(n, *data)
    np.testing.assert_allclose(sparse.abilities, dense.abilities, atol=1e-8)
    # Every component is small, so the sparse path's standard errors are exact too.
    assert sparse.exact_std_errors
    np.testing.assert_allclose(sparse.std_errors, dense.std_errors, rtol=1e-8)


def test_ten_thousand_items_fit_on_the_sparse_path():
    rng = np.random.default_rng(13)
    n = 10_000
    truth = rng.normal(0, 1, n)
    counts = PairCounts(n)
    counts.apply(*simulate(rng, truth, 500_000, tie_rate=0.05))
    i, j, wins_ij, wins_ji = counts.subset(np.arange(n))
    fit = bt.fit(n, i, j, wins_ij, wins_ji)
    assert not fit.exact_std_errors
    grad = bt.gradient(fit.abilities, i, j, wins_ij, wins_ji, LAMBDA)
    # Within ~1e-6 logits (the default tol) of the optimum, with ~20 units of information
    # per item: a gradient of a few 1e-5 at most.
    assert np.max(np.abs(grad)) < 1e-4
    tight = bt.fit(n, i, j, wins_ij, wins_ji, tol=1e-12, init=fit.abilities)
    assert np.max(np.abs(tight.abilities - fit.abilities)) < 3e-6  # "about tol" = 1e-6
    assert np.corrcoef(fit.abilities, truth)[0, 1] > 0.95
    # ~100 votes per item: standard errors near 1/sqrt(100 · 0.2).
    assert 0.15 < np.median(fit.std_errors) < 0.3
    z = (fit.abilities - (truth - truth.mean())) / fit.std_errors
    assert 0.93 <= np.mean(np.abs(z) <= 1.96) <= 0.97


@pytest.mark.parametrize(
    ("name", "bulk_votes", "new_items", "new_votes", "tolerance"),
    [
        # Random pairs, ~20 votes per item: the documented ≤ 1%.
        ("random", 25_000, 0, 0, 0.01),
        # Proposals added late with 3 votes each next to a well-measured bulk: ≤ 1%.
        ("late proposals", 20_000, 400, 1_200, 0.01),
        # Very sparse (≈ 6 votes per item, some items with 2–4 opponents): ≤ 6%.
        ("sparse", 7_500, 0, 0, 0.06),
    ],
)
def test_large_n_std_error_approximation_is_within_documented_tolerance(
    name, bulk_votes, new_items, new_votes, tolerance
):
    rng = np.random.default_rng(14)
    n = 2_500
    truth = rng.normal(0, 1, n)
    bulk = n - new_items
    kinds, a, b = simulate(rng, truth[:bulk], bulk_votes, tie_rate=0.1)
    late = bulk + rng.integers(0, new_items, new_votes) if new_items else np.zeros(0, int)
    opponents = rng.integers(0, bulk, new_votes)
    late_wins = rng.random(new_votes) < expit(truth[late] - truth[opponents])
    data = pair_data(
        n,
        np.concatenate([kinds, np.full(new_votes, WIN, dtype=np.uint8)]),
        np.concatenate([a, np.where(late_wins, late, opponents)]),
        np.concatenate([b, np.where(late_wins, opponents, late)]),
    )
    fit = bt.fit(n, *data)
    assert not fit.exact_std_errors
    exact, is_exact = bt.std_errors(n, fit.abilities, *data, exact=True)
    assert is_exact
    relative = np.abs(fit.std_errors / exact - 1)
    assert relative.max() <= tolerance, (name, relative.max())


def test_fit_from_pair_counts_with_skips_and_ties():
    counts = PairCounts()
    counts.apply(
        np.array([WIN, WIN, TIE, SKIP, WIN, TIE], dtype=np.uint8),
        np.array([0, 0, 1, 2, 1, 0]),
        np.array([1, 2, 2, 0, 2, 1]),
    )
    i, j, wins_ij, wins_ji = counts.subset(np.arange(3))
    fit = bt.fit(3, i, j, wins_ij, wins_ji)
    assert fit.abilities[0] > fit.abilities[1] > fit.abilities[2]
    np.testing.assert_allclose(fit.abilities, oracle_fit(3, i, j, wins_ij, wins_ji), atol=1e-6)


def test_non_convergence_raises_instead_of_returning_a_partial_fit():
    rng = np.random.default_rng(15)
    data = connected_dataset(rng)
    with pytest.raises(bt.FitDidNotConverge):
        bt.fit(40, *data, max_iter=1)


@pytest.mark.parametrize(
    ("i", "j", "wins_ij", "wins_ji", "message"),
    [
        ([0], [0], [1.0], [0.0], "itself"),
        ([0], [5], [1.0], [0.0], "in \\[0, 3\\)"),
        ([0], [1], [-1.0], [0.0], ">= 0"),
        ([0], [1], [np.nan], [0.0], "finite"),
        ([0, 1], [1], [1.0], [0.0], "one length"),
    ],
)
def test_malformed_input_is_rejected(i, j, wins_ij, wins_ji, message):
    with pytest.raises(ValueError, match=message):
        bt.fit(3, np.array(i), np.array(j), np.array(wins_ij), np.array(wins_ji))


def all_win_all_loss_dataset(rng):
    kinds, a, b = simulate(rng, rng.normal(0, 1, 20), 800)
    opponents = rng.integers(0, 20, 30)
    kinds = np.concatenate([kinds, np.full(60, WIN, dtype=np.uint8)])
    a = np.concatenate([a, np.full(30, 20), opponents])
    b = np.concatenate([b, opponents, np.full(30, 21)])
    return 22, pair_data(22, kinds, a, b)


def huge_counts_dataset(rng):
    return 4, (np.array([0, 1, 0, 2]), np.array([1, 2, 2, 3]),
               np.array([1e6, 1e6, 3e6, 5e5]), np.array([0.0, 1.0, 0.0, 5e5]))


def late_chains_dataset(rng):
    """A well-measured bulk of 40 items, then 30 late items with 1–4 votes each, some only
    against other late items (chains hanging off the bulk), as in a growing consultation."""
    truth = rng.normal(0, 1.5, 70)
    kinds, a, b = simulate(rng, truth[:40], 3_000, tie_rate=0.1)
    late = np.repeat(np.arange(40, 70), rng.integers(1, 5, 30))
    opponents = np.where(rng.random(late.shape[0]) < 0.6, rng.integers(0, 40, late.shape[0]),
                         rng.integers(40, 70, late.shape[0]))
    keep = opponents != late
    late, opponents = late[keep], opponents[keep]
    late_wins = rng.random(late.shape[0]) < expit(truth[late] - truth[opponents])
    kinds = np.concatenate([kinds, np.full(late.shape[0], WIN, dtype=np.uint8)])
    a = np.concatenate([a, np.where(late_wins, late, opponents)])
    b = np.concatenate([b, np.where(late_wins, opponents, late)])
    return 70, pair_data(70, kinds, a, b)


def few_votes_each_dataset(rng):
    """Early, sparse data: 200 items with ~5 votes each, so the few-vote items form one
    giant group (the whole comparison graph) rather than chains off a measured bulk."""
    return 200, pair_data(200, *simulate(rng, rng.normal(0, 1, 200), 500, tie_rate=0.1))


DATASETS = {
    "connected": lambda rng: (40, connected_dataset(rng)),
    "few votes each": few_votes_each_dataset,
    "disconnected": disconnected_dataset,
    "all win / all loss": all_win_all_loss_dataset,
    "huge counts": huge_counts_dataset,
    "late chains": late_chains_dataset,
}


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("path", ["dense", "sparse"])
def test_fast_path_matches_oracle(monkeypatch, name, path):
    rng = np.random.default_rng(16)
    n, data = DATASETS[name](rng)
    if path == "sparse":
        use_sparse_path(monkeypatch, 3)
    fit = bt.fit(n, *data)
    oracle = oracle_fit(n, *data)
    # L-BFGS itself stops ~1e-5 short on the flat likelihood of an item that won its few
    # votes; the tight fit below, and its gradient, pin the optimum more closely.
    np.testing.assert_allclose(fit.abilities, oracle, atol=5e-5)
    # The penalised likelihood is the oracle's, to rounding.
    assert fit.log_posterior == pytest.approx(-oracle_objective(fit.abilities, *data, LAMBDA)[0],
                                              rel=1e-12, abs=1e-9)
    assert fit.log_posterior >= -oracle_objective(oracle, *data, LAMBDA)[0] - 1e-6
    tight = bt.fit(n, *data, tol=1e-12)
    np.testing.assert_allclose(fit.abilities, tight.abilities, atol=3e-6)
    scale = 1.0 + np.max(data[2] + data[3])
    assert np.max(np.abs(bt.gradient(tight.abilities, *data, LAMBDA))) < 1e-9 * scale
    if fit.exact_std_errors:
        np.testing.assert_allclose(fit.std_errors, oracle_std_errors(n, fit.abilities, *data),
                                   rtol=1e-6)


@pytest.mark.parametrize("name", DATASETS)
def test_warm_start_from_a_stale_solution_on_the_sparse_path(monkeypatch, name):
    rng = np.random.default_rng(17)
    n, data = DATASETS[name](rng)
    use_sparse_path(monkeypatch, 3)
    cold = bt.fit(n, *data, tol=1e-12)
    # A stale answer: the fit of half the pairs, with some items missing (zeros) at the end.
    half = tuple(array[::2] for array in data)
    stale = bt.fit(n, *half).abilities[: n - 2]
    warm = bt.fit(n, *data, init=stale, tol=1e-12)
    np.testing.assert_allclose(warm.abilities, cold.abilities, atol=1e-9)
    assert bt.fit(n, *data, init=cold.abilities, tol=1e-12).iterations <= 2


def test_pairs_in_any_order_or_orientation_give_the_canonical_fit():
    rng = np.random.default_rng(18)
    i, j, wins_ij, wins_ji = connected_dataset(rng)
    canonical = bt.fit(40, i, j, wins_ij, wins_ji, tol=1e-12)
    # Reverse half the pairs, split every pair's wins over two repeated rows, shuffle.
    flip = rng.random(i.shape[0]) < 0.5
    a, b = np.where(flip, j, i), np.where(flip, i, j)
    w_ab, w_ba = np.where(flip, wins_ji, wins_ij), np.where(flip, wins_ij, wins_ji)
    order = rng.permutation(2 * i.shape[0])
    messy = (np.concatenate([a, a])[order], np.concatenate([b, b])[order],
             np.concatenate([w_ab / 4, 3 * w_ab / 4])[order],
             np.concatenate([w_ba / 2, w_ba / 2])[order])
    fit = bt.fit(40, *messy, tol=1e-12)
    np.testing.assert_allclose(fit.abilities, canonical.abilities, atol=1e-10)
    np.testing.assert_allclose(fit.std_errors, canonical.std_errors, rtol=1e-9)


def test_long_chain_falls_back_to_a_dense_solve_and_agrees_with_cg(monkeypatch):
    # A path 0-1-2-...-799: CG with a diagonal preconditioner needs ~n iterations per step,
    # so the dense regime switches to Cholesky; the sparse regime keeps iterating.
    rng = np.random.default_rng(19)
    n = 800
    truth = np.cumsum(rng.normal(0, 0.3, n))
    i = np.arange(n - 1)
    j = i + 1
    p = expit(truth[i] - truth[j])
    wins_ij = rng.binomial(20, p).astype(float)
    wins_ji = 20.0 - wins_ij
    dense = bt.fit(n, i, j, wins_ij, wins_ji, tol=1e-12)
    grad = bt.gradient(dense.abilities, i, j, wins_ij, wins_ji, LAMBDA)
    assert np.max(np.abs(grad)) < 1e-8
    use_sparse_path(monkeypatch, 10)
    sparse = bt.fit(n, i, j, wins_ij, wins_ji, tol=1e-12)
    np.testing.assert_allclose(sparse.abilities, dense.abilities, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["uniform", "consultation"])
def test_approximate_intervals_cover_95_percent_at_ten_thousand_items(kind):
    """The large-n standard errors (belief propagation), checked where they are used: 10,000
    proposals, ~200 votes each; "consultation" adds adaptive pairs and 1,500 late proposals
    with a handful of votes (seconds per seed)."""
    from bench import datasets

    coverages = []
    for seed in (21, 22):
        if kind == "uniform":
            votes = datasets.uniform("t", 10_000, 1_000_000, seed=seed, new_fraction=0.0)
        else:
            votes = datasets.consultation("t", 10_000, 1_000_000, seed=seed, new_fraction=0.0)
        counts = PairCounts(votes.n_items)
        counts.apply(votes.kinds, votes.a, votes.b)
        fit = bt.fit(votes.n_items, *counts.subset(np.arange(votes.n_items)))
        assert not fit.exact_std_errors
        truth = votes.abilities - votes.abilities.mean()
        coverages.append(np.mean((fit.ci_low <= truth) & (truth <= fit.ci_high)))
    assert 0.93 <= np.mean(coverages) <= 0.97, coverages


def test_fit_workers_read_the_pairs_they_are_sent_through_a_file():
    # Large fits reach the worker process through a file (ranker.fit_pool), not a pickle.
    import os

    from ranker import fit_pool

    rng = np.random.default_rng(20)
    i, j, wins_ij, wins_ji = connected_dataset(rng)
    path = fit_pool._write_pairs(i, j, wins_ij, wins_ji)
    try:
        sent = fit_pool._fit_from_file(path, 40, LAMBDA, None)
    finally:
        os.unlink(path)
    direct = bt.fit(40, i, j, wins_ij, wins_ji)
    np.testing.assert_array_equal(sent.abilities, direct.abilities)
    np.testing.assert_array_equal(sent.std_errors, direct.std_errors)


def test_scores_of_a_large_cause_with_equal_abilities_are_all_fifty() -> None:
    """Before its first decisive votes a cause of thousands of proposals has every ability at
    0: each beats another with probability 1/2 (the interpolation grid would be empty)."""
    n = scores.EXACT_MAX_ITEMS + 10
    assert np.array_equal(scores.win_probability_scores(np.zeros(n)), np.full(n, 50.0))
