"""What a fit raises; nothing else escapes it, and no fit is ever returned half-done.

    Exception
    ├── ValueError            malformed input: shapes, an index out of range, i == j,
    │                         negative or non-finite wins, a bad `init` or prior strength
    └── RuntimeError
        └── FitDidNotConverge the optimum was not reached (see the message), or the
                              Hessian could not be factored for the standard errors
"""

from __future__ import annotations


class FitDidNotConverge(RuntimeError):
    """Newton's method hit `max_iter`, no step improved ℓ, or the Fisher information could
    not be factored for the standard errors; no fit is returned."""
