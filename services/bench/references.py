"""Reference Bradley–Terry fitters the benchmark runs side by side with ours.

Each is written plainly and independently of `ranker.bradley_terry` (its own objective,
gradient and Hessian code), on the same aggregated pair arrays and the same penalised
objective (prior precision λ), except choix, which fits the unpenalised MLE.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg
from scipy.special import expit


def neg_log_posterior(theta: np.ndarray, i: np.ndarray, j: np.ndarray, wins_ij: np.ndarray,
                      wins_ji: np.ndarray, lam: float) -> tuple[float, np.ndarray]:
    """(−ℓ(θ), −∇ℓ(θ)) of the penalised Bradley–Terry log-likelihood; shapes (), (n,)."""
    diff = theta[i] - theta[j]
    value = np.dot(wins_ij, np.logaddexp(0.0, -diff)) + np.dot(wins_ji, np.logaddexp(0.0, diff))
    value += 0.5 * lam * np.dot(theta, theta)
    edge = wins_ji * expit(diff) - wins_ij * expit(-diff)
    n = theta.shape[0]
    grad = np.bincount(i, edge, n) - np.bincount(j, edge, n) + lam * theta
    return float(value), grad


def _hessian(theta: np.ndarray, i: np.ndarray, j: np.ndarray, totals: np.ndarray,
             lam: float) -> scipy.sparse.csr_matrix:
    """−∇²ℓ(θ) = L + λI as a sparse (n, n) matrix."""
    n = theta.shape[0]
    p = expit(theta[i] - theta[j])
    w = totals * p * (1.0 - p)
    off = scipy.sparse.coo_matrix((np.concatenate([-w, -w]),
                                   (np.concatenate([i, j]), np.concatenate([j, i]))),
                                  shape=(n, n)).tocsr()
    degree = np.bincount(i, w, n) + np.bincount(j, w, n)
    return (off + scipy.sparse.diags(degree + lam)).tocsr()


def lbfgs(n: int, i: np.ndarray, j: np.ndarray, wins_ij: np.ndarray, wins_ji: np.ndarray,
          lam: float) -> np.ndarray:
    """scipy L-BFGS-B on the aggregated penalised likelihood (the Chatbot Arena method:
    logistic regression on aggregated comparisons, solved by L-BFGS). Returns θ centred."""
    result = scipy.optimize.minimize(
        neg_log_posterior, np.zeros(n), args=(i, j, wins_ij, wins_ji, lam), jac=True,
        method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-6, "maxiter": 20_000})
    return result.x - result.x.mean()


def newton_cg(n: int, i: np.ndarray, j: np.ndarray, wins_ij: np.ndarray, wins_ji: np.ndarray,
              lam: float) -> np.ndarray:
    """scipy Newton-CG with exact Hessian-vector products (no preconditioner). θ centred."""
    totals = wins_ij + wins_ji

    def hessp(theta: np.ndarray, vector: np.ndarray, *_: object) -> np.ndarray:
        p = expit(theta[i] - theta[j])
        edge = totals * p * (1.0 - p) * (vector[i] - vector[j])
        return np.bincount(i, edge, n) - np.bincount(j, edge, n) + lam * vector

    result = scipy.optimize.minimize(
        neg_log_posterior, np.zeros(n), args=(i, j, wins_ij, wins_ji, lam), jac=True,
        hessp=hessp, method="Newton-CG", options={"xtol": 1e-8, "maxiter": 1000})
    return result.x - result.x.mean()


def comparison_matrix(n: int, i: np.ndarray, j: np.ndarray, wins_ij: np.ndarray,
                      wins_ji: np.ndarray) -> np.ndarray:
    """choix's dense input: entry (a, b) = wins of a over b, shape (n, n)."""
    matrix = np.zeros((n, n))
    np.add.at(matrix, (i, j), wins_ij)
    np.add.at(matrix, (j, i), wins_ji)
    return matrix


def polish(theta: np.ndarray, i: np.ndarray, j: np.ndarray, wins_ij: np.ndarray,
           wins_ji: np.ndarray, lam: float, *, gtol: float = 1e-9,
           max_iter: int = 50) -> tuple[np.ndarray, float]:
    """Plain Newton (sparse Hessian, scipy CG at rtol 1e-12) from `theta` until max |∇ℓ| ≤
    `gtol`, taking at least two steps: the tightly converged reference MLE. With lam == 0
    the problem is solved on the centred subspace (the graph must be connected). Returns
    (θ centred, max |∇ℓ|)."""
    n = theta.shape[0]
    theta = theta - theta.mean()
    totals = wins_ij + wins_ji
    shift = lam if lam > 0 else 1.0  # λ = 0: pin the constant mode through 11ᵀ/n instead
    for iteration in range(max_iter):
        value, grad = neg_log_posterior(theta, i, j, wins_ij, wins_ji, lam)
        if lam == 0:
            grad = grad - grad.mean()
        if np.max(np.abs(grad)) <= gtol and iteration >= 2:
            return theta - theta.mean(), float(np.max(np.abs(grad)))
        hessian = _hessian(theta, i, j, totals, lam)
        diag = hessian.diagonal()
        if lam == 0:
            operator = scipy.sparse.linalg.LinearOperator(
                (n, n), matvec=lambda v, h=hessian: h @ v + shift * v.mean())
        else:
            operator = hessian
        step, info = scipy.sparse.linalg.cg(
            operator, -grad, rtol=1e-12, atol=0.0, maxiter=20_000,
            M=scipy.sparse.diags(1.0 / diag))
        t = 1.0
        while True:
            candidate = theta + t * step
            # Differences below 1e-12 |ℓ| are rounding, not a worse point.
            if neg_log_posterior(candidate, i, j, wins_ij, wins_ji, lam)[0] \
                    <= value + 1e-12 * abs(value) or t < 1e-6:
                break
            t *= 0.5
        theta = candidate
    raise RuntimeError(f"reference Newton did not reach max |grad| <= {gtol}")
