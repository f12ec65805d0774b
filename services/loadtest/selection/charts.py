"""The benchmark as a picture (PNG): one panel per figure, uniform and adaptive on each, one
line per seed, against the votes counted; thresholds and goals drawn in grey."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.charts import COLOURS, finish, plt, save, votes_axis
from loadtest.selection import metrics

_GOAL = {"color": "gray", "linewidth": 0.8, "linestyle": "-."}


def draw(result: dict[str, Any], path: Path) -> None:
    """Write the six-panel picture of `result` (report.build) to `path`."""
    figure, axes = plt.subplots(2, 3, figsize=(16, 10))
    recall, tau, coverage, width, received, newcomers = axes.flat
    # Votes are counted from when the voters came: a run that imported past votes first
    # plots what happened after them.
    past = result["plan"].get("history_votes", 0)
    for seed in result["seeds"]:
        for name, s in seed["strategies"].items():
            colour = COLOURS.get(name, "tab:gray")
            label = name if seed is result["seeds"][0] else None
            points = [p for p in s["samples"]
                      if p["kendall_tau"] is not None and p["votes_counted"] > past]
            votes = [p["votes_counted"] - past for p in points]
            for panel, key in ((recall, "top10_recall"), (tau, "kendall_tau"),
                               (coverage, "coverage"), (width, "top20_width")):
                panel.plot(votes, [p[key] for p in points], color=colour, alpha=0.7,
                           linewidth=1.2, label=label)
            for style, key in (("-", "min"), ("--", "median"), (":", "max")):
                received.plot(votes, [p["received"][key] for p in points], color=colour,
                              linestyle=style, alpha=0.7,
                              label=f"{name}: {key}" if label else None)
            waits = s["newcomers"]
            reached = [n for n in waits if n["votes_to_threshold"] is not None]
            newcomers.scatter([n["accepted_at_votes"] - past for n in reached],
                              [n["votes_to_threshold"] for n in reached], color=colour, s=9,
                              alpha=0.6, label=label)
            short = [n["accepted_at_votes"] - past for n in waits
                     if n["votes_to_threshold"] is None]
            if short:
                newcomers.scatter(short, [result["plan"]["votes"]] * len(short), color=colour,
                                  marker="x", s=20,
                                  label=f"{name}: under 10 votes at the end" if label else None)
    recall.axhline(metrics.RECALL_THRESHOLD, **_GOAL)
    recall.set(ylim=(0, 1.02), ylabel="share of the true top 10 in the top 10")
    votes_axis(recall, "Top-10 recall")
    tau.axhline(metrics.TAU_THRESHOLD, **_GOAL)
    tau.set(ylim=(0, 1.02), ylabel="Kendall τ, all ranked proposals")
    votes_axis(tau, "Kendall τ against the truth")
    for bound in metrics.COVERAGE_GOAL:
        coverage.axhline(bound, **_GOAL)
    lowest = min((p["coverage"] for seed in result["seeds"]
                  for s in seed["strategies"].values() for p in s["samples"]
                  if p["coverage"] is not None), default=1.0)
    coverage.set(ylim=(min(0.8, lowest - 0.02), 1.0),
                 ylabel="share of 95% intervals holding the truth")
    votes_axis(coverage, "95% interval coverage")
    width.set(yscale="log", ylabel="ability units (log scale)")
    votes_axis(width, "Mean 95% interval width, true top 20")
    received.set(yscale="symlog", ylabel="votes received by a proposal (min, median, max)")
    votes_axis(received, "Votes per accepted proposal")
    newcomers.axhline(result["plan"]["newcomer_goal_votes"], **_GOAL)
    newcomers.set(title="New proposals: votes cast until their 10th",
                  xlabel="cause's votes when the proposal was accepted",
                  ylabel="votes cast in the cause (log scale)", yscale="log")
    finish(newcomers)
    if past:
        for panel in (recall, tau, coverage, width, received):
            panel.set_xlabel(f"votes counted after the {past:,} imported (log scale)")
        newcomers.set_xlabel(f"cause's votes at acceptance, after the {past:,} imported")
    plan, code = result["plan"], result["code"]
    marks = [f"{'✓' if g['met'] else '✗'} {g['goal']}: "
             f"{'-' if g['measured'] is None else format(g['measured'], ',.3g')}"
             for g in result["summary"]["goals"]]
    goals = "\n".join("   ".join(marks[k:k + 2]) for k in range(0, len(marks), 2))
    figure.suptitle(
        f"Pair selection, uniform vs adaptive — {plan['proposals']:,} proposals "
        f"+ {plan['new_per_wave'] * len(plan['waves'])} accepted mid-run, "
        f"{plan['votes']:,} votes a strategy, {len(result['seeds'])} seed(s), code "
        f"{code['commit']}{'+' if code['dirty'] else ''} ({result['run_id']})\n{goals}",
        fontsize=9)
    save(figure, path, top=0.94)
