"""Bradley–Terry abilities and standard errors: the penalised MLE docs/semantics.md defines.

Model: P(i beats j) = σ(θi − θj), σ the logistic function; a tie counts half a win to each
side. The estimate maximises the log posterior under independent priors θi ~ N(0, 1/λ)
(λ = `PRIOR_STRENGTH`):

    ℓ(θ) = Σ_pairs [w_ij log σ(θi − θj) + w_ji log σ(θj − θi)] − (λ/2) Σ_i θi²

ℓ is strictly concave, so the maximiser is unique. Because the likelihood only sees
differences, ∂ℓ/∂θ summed over a connected component of the comparison graph is −λ Σθ over
it, so at the optimum every component (and the whole vector) has mean 0. Standard errors
come from the Fisher information at the optimum, for the centred abilities.

The package, one concept per module:

    graph               canonical pairs (lo < hi, sorted) as a CSR layout; components
    likelihood          ℓ, its gradient and per-pair information (plain, and one fused pass)
    starting_point      warm starts, and the cold start's log-odds guess
    solver              inexact Newton (conjugate gradients), a step length per component
    few_votes           items with a handful of votes, settled exactly between Newton steps
    small               fits of a few items: Newton on the dense Hessian, none of the above
    standard_errors     exact (dense, or sparse by elimination) and approximate (belief
                        propagation) diag(H⁻¹); the sandwich H⁻¹ J H⁻¹ of weighted fits
    estimate            `fit` and `BTFit`, which tie them together
    weighted            `fit_weighted`: each vote counted by its weight, sandwich errors
                        clustered by voter (the representative ranking)
    errors              what a fit raises

Scores for display (0–100) are not part of a fit: `ranker.scores` computes them from the
abilities where rankings are built.
"""

from ranker.bradley_terry.errors import FitDidNotConverge
from ranker.bradley_terry.estimate import MAX_ITERATIONS, TOLERANCE, BTFit, fit
from ranker.bradley_terry.likelihood import PRIOR_STRENGTH, gradient, log_posterior
from ranker.bradley_terry.standard_errors import std_errors

__all__ = [
    "MAX_ITERATIONS",
    "TOLERANCE",
    "PRIOR_STRENGTH",
    "BTFit",
    "FitDidNotConverge",
    "fit",
    "gradient",
    "log_posterior",
    "std_errors",
]
