"""Consensus across segments: how high a proposal ranks in the group that likes it least.

For one attribute (region, age band, ...) each segment — the voters who declared one value —
gets its own Bradley–Terry fit. A proposal's consensus score is the lowest, over those
segments, of the lower end of its 95% interval of score (the chance, in percent, that it
beats a randomly chosen other proposal in that segment's eyes):

    consensus_k = min_s  100 · mean_{j≠k} σ(θ_sk − 1.96 se_sk − θ_sj)

A proposal ranks high by consensus only when every segment ranks it high *and* has seen
enough of it to say so: a segment that never compared it leaves it near 0 (its interval
spans everything), which is what "every group supports it" has to mean. Ranking by the lower
end rather than the estimate keeps a proposal with a lucky handful of votes in a small
segment from the top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ranker.scores import scores_at

Z_95 = 1.96


@dataclass(frozen=True)
class Consensus:
    """Consensus scores of n items over s segments.

    Attributes
    ----------
    scores : ndarray of float64, shape (n,)
        The lowest lower end of the 95% score interval over the segments (0–100).
    weakest_segment : ndarray of intp, shape (n,)
        Index (into the segments given) of the segment that set each score.
    lower_scores : ndarray of float64, shape (s, n)
        Every segment's lower end, for display ("supported by all regions but ...").
    order : ndarray of intp, shape (n,)
        Items by consensus score, highest first (ties broken by item index).
    """

    scores: np.ndarray
    weakest_segment: np.ndarray
    lower_scores: np.ndarray
    order: np.ndarray


def consensus(abilities: Sequence[np.ndarray], std_errors: Sequence[np.ndarray]) -> Consensus:
    """Consensus scores from per-segment fits over the same n items.

    Parameters
    ----------
    abilities, std_errors : sequences of ndarray of float, each shape (n,)
        One fit per segment (centred abilities and their standard errors, logits). Items a
        segment has no votes on are listed with the prior's ability and error, as `fit`
        returns them.

    Returns
    -------
    Consensus

    Raises
    ------
    ValueError
        No segment, or shapes that disagree.
    """
    if len(abilities) == 0 or len(abilities) != len(std_errors):
        raise ValueError("consensus needs one (abilities, std_errors) pair per segment, "
                         "at least one")
    n = np.asarray(abilities[0]).shape[0]
    lower = np.empty((len(abilities), n))
    for s, (theta, errors) in enumerate(zip(abilities, std_errors, strict=True)):
        theta = np.asarray(theta, dtype=np.float64)
        errors = np.asarray(errors, dtype=np.float64)
        if theta.shape != (n,) or errors.shape != (n,):
            raise ValueError(f"segment {s}: abilities and std_errors must have shape ({n},)")
        lower[s] = scores_at(theta - Z_95 * errors, theta)
    weakest = np.argmin(lower, axis=0) if n else np.zeros(0, dtype=np.intp)
    scores = lower[weakest, np.arange(n)] if n else np.zeros(0)
    order = np.lexsort((np.arange(n), -scores))
    return Consensus(scores=scores, weakest_segment=weakest, lower_scores=lower, order=order)
