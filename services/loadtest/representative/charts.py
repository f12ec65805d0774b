"""The simulation as a picture: each ranking's order against the population's true order,
and the weighted ranking's intervals around the true top proposals."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from loadtest.charts import finish, plt, save
from loadtest.representative.run import top_recall

# The head of the ranking drawn with its intervals.
_TOP_SHOWN = 30
_CAMPAIGN_TOP = 20


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 for the highest value."""
    ranks = np.empty(values.shape[0], dtype=np.int64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, values.shape[0] + 1)
    return ranks


def draw(arrays: dict[str, np.ndarray], figures: dict, path: Path) -> None:
    """One seed's rankings (`run.run_seed`'s arrays and figures) as a PNG at `path`."""
    truth = arrays["truth"]
    true_rank = _ranks(truth)
    true_top = true_rank <= 10
    campaign_top = _ranks(arrays["campaign_truth"]) <= _CAMPAIGN_TOP
    figure, axes = plt.subplots(2, 2, figsize=(11, 9.5))
    panels = (("raw", "raw: every vote counts once"),
              ("weighted", "representative: votes weighted to the population"),
              ("consensus", "consensus: lowest lower bound over regions"))
    for ax, (name, title) in zip(axes.flat, panels, strict=False):
        rank = _ranks(arrays[name])
        ax.scatter(true_rank, rank, s=3, color="0.6", label="proposals")
        ax.scatter(true_rank[campaign_top], rank[campaign_top], s=14, color="tab:orange",
                   label=f"the campaign region's top {_CAMPAIGN_TOP}")
        ax.scatter(true_rank[true_top], rank[true_top], s=18, color="tab:red",
                   label="the population's top 10")
        ax.plot([1, truth.shape[0]], [1, truth.shape[0]], color="k", lw=0.6)
        ax.set(xscale="log", yscale="log", xlabel="true rank in the population (log)",
               ylabel="rank in this ranking (log)", title=title)
        ax.invert_xaxis()
        ax.invert_yaxis()
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
        stats = figures[name]
        ax.text(0.98, 0.04, f"Kendall τ {stats['kendall_tau']:.3f}\n"
                            f"top-10 recall {top_recall(arrays[name], truth):.1f}",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=9,
                bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        finish(ax)
    ax = axes[1, 1]
    head = np.argsort(-truth, kind="stable")[:_TOP_SHOWN]
    centred = truth - truth.mean()
    x = np.arange(1, _TOP_SHOWN + 1)
    low, high = arrays["weighted_low"][head], arrays["weighted_high"][head]
    inside = (low <= centred[head]) & (centred[head] <= high)
    ax.errorbar(x, arrays["weighted"][head], yerr=[arrays["weighted"][head] - low,
                                                   high - arrays["weighted"][head]],
                fmt="o", ms=3, color="tab:blue", lw=0.8, label="representative, 95% interval")
    ax.scatter(x[inside], centred[head][inside], marker="_", s=80, color="k",
               label="true ability")
    ax.scatter(x[~inside], centred[head][~inside], marker="x", s=30, color="tab:red",
               label="true ability outside the interval")
    ax.scatter(x, arrays["raw"][head], s=8, color="tab:orange", marker="^",
               label="raw estimate")
    ax.set(xlabel="true rank in the population", ylabel="ability (logits)",
           title=f"the true top {_TOP_SHOWN}: coverage over all proposals "
                 f"{figures['weighted']['coverage']:.1%}")
    finish(ax)
    w = figures["weights"]
    figure.suptitle(f"seed {figures['seed']}: {figures['votes']:,} votes by "
                    f"{figures['voters']:,} voters; the campaign region (20% of the "
                    f"population) cast {figures['campaign_vote_share']:.0%} of them; "
                    f"effective votes {w['effective_votes']:,.0f}", fontsize=10)
    save(figure, path, top=0.96)
