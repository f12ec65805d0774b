"""The report as a picture (PNG): throughput over time, latency distribution per RPC, and
accuracy against the hidden truth as votes accumulate, one column per figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

# One colour per load mode and per pair-selection strategy, the same in every picture.
COLOURS = {"interactive": "tab:blue", "bulk": "tab:orange", "uniform": "tab:blue",
           "adaptive": "tab:red"}


def votes_axis(axes: plt.Axes, title: str) -> None:
    """`axes` plots a figure against the votes counted: log scale (accuracy grows with the
    logarithm of the votes), engineering ticks, a light grid and a legend when labelled."""
    axes.set(title=title, xlabel="votes counted (log scale)", xscale="log")
    axes.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    finish(axes)


def finish(axes: plt.Axes) -> None:
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)


def save(figure: plt.Figure, path: Path, top: float = 0.97) -> None:
    """Write `figure` as a PNG to `path`, its panels below `top` (a share of the height,
    above which the suptitle goes), and free it."""
    figure.tight_layout(rect=(0, 0, 1, top))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def draw(result: dict[str, Any], path: Path) -> None:
    """Write the three-panel report of `result` (loadtest.report.build) to `path`."""
    figure, (rates, latency, accuracy) = plt.subplots(1, 3, figsize=(16, 5.2))
    used_ms: list[float] = []  # latency bins holding calls, to zoom on them
    for mode, m in result["modes"].items():
        colour = COLOURS.get(mode, "tab:gray")
        series = m["throughput"]
        if series["t"]:
            rates.plot(series["t"], series["ok_per_s"], color=colour, label=f"{mode}: OK")
            rates.plot(series["t"], series["counted_per_s"], color=colour, linestyle="--",
                       label=f"{mode}: counted")
        histogram = m["latency_histogram_ms"]
        edges = np.asarray(histogram["edges"])
        centres = np.sqrt(edges[:-1] * edges[1:])
        for style, (rpc, counts) in zip(("-", "--", ":"), histogram["counts"].items(),
                                        strict=False):
            share = np.asarray(counts, dtype=float)
            if share.sum():
                used_ms += centres[share > 0].tolist()
                latency.plot(centres, share / share.sum(), linestyle=style, color=colour,
                             label=f"{rpc} (p99 {m['latency_ms'][rpc]['p99']:.1f} ms)")
        points = [p for p in m["accuracy"] if p["kendall_tau"] is not None]
        if points:
            votes = [p["votes_counted"] for p in points]
            accuracy.plot(votes, [p["kendall_tau"] for p in points], color=colour,
                          marker=".", label=f"{mode}: Kendall τ")
            accuracy.plot(votes, [p["top20_recall"] for p in points], color=colour,
                          linestyle="--", label=f"{mode}: top-20 recall")
            accuracy.plot(votes, [p["coverage"] for p in points], color=colour,
                          linestyle=":", label=f"{mode}: 95% CI coverage")
    # Log scales: interactive and bulk rates differ by two orders of magnitude, and accuracy
    # grows with the logarithm of the votes.
    rates.set(title="Throughput (1 s windows)", xlabel="seconds since the load began",
              ylabel="votes/s (log scale)", yscale="log")
    rates.yaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    for goal_ms, label in ((20, "NextPair goal"), (50, "SubmitVote goal")):
        if "interactive" in result["modes"]:
            latency.axvline(goal_ms, color="gray", linewidth=0.8, linestyle="-.")
            latency.annotate(label, (goal_ms, 0.98), xycoords=("data", "axes fraction"),
                             rotation=90, fontsize=7, va="top", ha="right", color="gray")
    latency.set(title="Latency distribution", xlabel="ms (log scale)",
                ylabel="share of calls", xscale="log")
    if used_ms:
        latency.set_xlim(min(used_ms + [20.0]) / 3, max(used_ms + [50.0]) * 3)
    accuracy.set(ylim=(0, 1.02))
    votes_axis(accuracy, "Accuracy against the hidden truth")
    for axes in (rates, latency):
        finish(axes)
    marks = [f"{'✓' if g['met'] else '✗'} {g['goal']}: "
             f"{'-' if g['measured'] is None else format(g['measured'], ',.1f')}"
             for g in result["goals"]]
    goals = "\n".join("   ".join(marks[k:k + 3]) for k in range(0, len(marks), 3))
    audit = "audit PASS" if result["audit_passed"] else "audit FAIL"
    figure.suptitle(f"Pairwise load test {result['run_id']} — {result['plan']['proposals']:,} "
                    f"proposals, {result['load_s']:.0f} s, {audit}\n{goals}", fontsize=9)
    save(figure, path)
