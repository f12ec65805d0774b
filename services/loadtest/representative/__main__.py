"""`python -m loadtest.representative` (`make representative-bench`): raw, representative
and consensus rankings against a population's true ranking, in simulation.

A population of five regions and four age bands, each cell with its own hidden abilities
over the proposals: four regions share a common taste, the campaign region mostly prefers
other proposals. The campaign region is 20% of the population but casts 60% of the votes;
the young vote more than their share. For each seed the votes are drawn (uniformly random
pairs, the voter model's ties; skips dropped), and three rankings are fitted with the
ranker's own code: raw (every vote once, the default view), representative (votes weighted
to the population's margins by raking, sandwich intervals clustered by voter) and consensus
(the lowest lower end of the 95% score interval over the regions); and the representative
view as the ranker computes it from its counts ("served": its counts per crossed cell raked
to both attributes' margins, votes taken as independent within a cell). Each is compared with
the population's true ranking: Kendall's tau, top-10 recall, and for the representative one
its 95% interval coverage and Kish's effective number of votes. Writes <out>/<run_id>.json
and <run_id>.png (the first seed's picture); the goals are judged on the medians over the
seeds. No cluster is started: the fits are the library's, as the ranker runs them."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL_RECALL_GAIN = 0.2
GOAL_COVERAGE = (0.90, 0.97)
RANKINGS = ("raw", "weighted", "served", "consensus")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                     argparse.RawDescriptionHelpFormatter):
    """Defaults after each flag; the description keeps its lines."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.representative", description=__doc__,
                                formatter_class=_HelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="runs, one per seed (at least 3 for "
                                                       "the goals)")
    p.add_argument("--seed", type=int, default=1, help="first seed")
    p.add_argument("--proposals", type=int, default=1_000)
    p.add_argument("--votes", type=int, default=200_000, help="decided votes per seed")
    p.add_argument("--votes-per-voter", type=float, default=10.0,
                   help="mean votes per voter (geometric)")
    p.add_argument("--cost", action="store_true",
                   help="instead: time a refit of every view (20 segment fits, the weighted "
                        "fit, the consensus) at 2,000 proposals / 1,000,000 votes after "
                        "10,000 new ones, 3 rounds, against the overall fit")
    p.add_argument("--out", type=Path, default=Path("results/representative"),
                   help="folder for <run_id>.json and <run_id>.png")
    return p


def _median(values: list[float]) -> float:
    return float(np.median(values))


def summarise(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per ranking and figure, the per-seed values and their median; and the goals."""
    summary: dict[str, Any] = {}
    for name in (*RANKINGS, "weights"):
        keys = [k for k, v in seeds[0][name].items() if isinstance(v, (int, float))]
        summary[name] = {k: {"median": _median([s[name][k] for s in seeds]),
                             "per_seed": [s[name][k] for s in seeds]} for k in keys}
    raw, weighted = summary["raw"], summary["weighted"]
    recall_gain = [w - r for w, r in zip(weighted["top10_recall"]["per_seed"],
                                         raw["top10_recall"]["per_seed"], strict=True)]
    coverage = weighted["coverage"]["median"]
    summary["goals"] = [
        {"goal": "weighted top-10 recall >= raw + 0.2",
         "measured": _median(recall_gain), "per_seed": recall_gain,
         "met": _median(recall_gain) >= GOAL_RECALL_GAIN - 1e-12},
        {"goal": "weighted Kendall tau >= raw's",
         "measured": weighted["kendall_tau"]["median"] - raw["kendall_tau"]["median"],
         "met": weighted["kendall_tau"]["median"] >= raw["kendall_tau"]["median"]},
        {"goal": "weighted 95% coverage in 90-97%", "measured": coverage,
         "per_seed": weighted["coverage"]["per_seed"],
         "met": GOAL_COVERAGE[0] <= coverage <= GOAL_COVERAGE[1]},
    ]
    return summary


def table(seeds: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The figures as a Markdown table: one row per ranking and figure, the median then
    each seed."""
    head = ["ranking", "figure", "median", *[f"seed {s['seed']}" for s in seeds]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = [("raw", "kendall_tau"), ("weighted", "kendall_tau"), ("served", "kendall_tau"),
            ("consensus", "kendall_tau"), ("raw", "top10_recall"), ("weighted", "top10_recall"),
            ("served", "top10_recall"), ("consensus", "top10_recall"), ("raw", "coverage"),
            ("weighted", "coverage"), ("weighted", "coverage_model_errors"),
            ("served", "coverage"), ("weights", "effective_votes"),
            ("served", "effective_votes"), ("served", "margin_gap"),
            ("weights", "design_effect"), ("consensus", "top10_recall_of_true_consensus")]
    for ranking, key in rows:
        entry = summary[ranking][key]
        fmt = "{:,.0f}" if key == "effective_votes" else "{:.4f}" if key == "margin_gap" \
            else "{:.3f}"
        cells = [ranking, key, fmt.format(entry["median"]),
                 *[fmt.format(v) for v in entry["per_seed"]]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.seeds < 1 or args.proposals < 20 or args.votes < 1_000:
        print("representative benchmark: need --seeds >= 1, --proposals >= 20, "
              "--votes >= 1000", file=sys.stderr)
        return 2
    from loadtest.representative import charts, run
    from loadtest.selection.report import code_version

    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    args.out.mkdir(parents=True, exist_ok=True)
    code = code_version()
    load_before = os.getloadavg()
    if args.cost:
        return _cost(args, run_id, code, load_before)
    seeds = []
    for k in range(args.seeds):
        figures, arrays = run.run_seed(args.seed + k, args.proposals, args.votes,
                                       args.votes_per_voter)
        seeds.append(figures)
        if k == 0:
            charts.draw(arrays, figures, args.out / f"{run_id}.png")
        print(f"seed {figures['seed']}: tau raw {figures['raw']['kendall_tau']:.3f} "
              f"weighted {figures['weighted']['kendall_tau']:.3f} "
              f"consensus {figures['consensus']['kendall_tau']:.3f}; top-10 recall raw "
              f"{figures['raw']['top10_recall']:.1f} weighted "
              f"{figures['weighted']['top10_recall']:.1f} consensus "
              f"{figures['consensus']['top10_recall']:.1f}; coverage "
              f"{figures['weighted']['coverage']:.3f}", flush=True)
    summary = summarise(seeds)
    result = {"run_id": run_id, "code": code, "args": {k: str(v) for k, v in vars(args).items()},
              "cpus": os.cpu_count() or 0,
              "load_average": {"before": load_before, "after": os.getloadavg()},
              "seeds": seeds, "summary": summary}
    (args.out / f"{run_id}.json").write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(table(seeds, summary))
    for goal in summary["goals"]:
        print(f"{'met   ' if goal['met'] else 'MISSED'} {goal['goal']}: "
              f"{goal['measured']:.3f}")
    print(f"\n{args.out / run_id}.json and .png")
    return 0 if all(g["met"] for g in summary["goals"]) else 1


def _cost(args: argparse.Namespace, run_id: str, code: dict[str, Any],
          load_before: tuple[float, ...]) -> int:
    from loadtest.representative import cost

    measured = cost.measure(seed=args.seed)
    result = {"run_id": run_id, "code": code, "cpus": os.cpu_count() or 0,
              "load_average": {"before": load_before, "after": os.getloadavg()}, **measured}
    path = args.out / f"{run_id}-cost.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    stages = list(measured["refits"][0]["wall_s"])
    print("| stage | " + " | ".join(f"refit {k + 1} wall / CPU s"
                                     for k in range(len(measured["refits"]))) + " |")
    print("|---|" + "---|" * len(measured["refits"]))
    for stage in stages:
        print(f"| {stage} | " + " | ".join(
            f"{r['wall_s'][stage]:.2f} / {r['cpu_s'][stage]:.2f}" for r in measured["refits"])
              + " |")
    print("| counting the new votes in their segments and cells (off the loop) | " + " | ".join(
        f"- / {r['segments_count_cpu_s']:.2f}" for r in measured["refits"]) + " |")
    print("\n| every view as the ranker lays it out | wall s | reference: overall alone |")
    print("|---|---|---|")
    for k, layout in enumerate(measured["layout_wall_s"]):
        every = layout["every view as served, in the fit and segment workers"]
        print(f"| refit {k + 1} | {every:.2f} | "
              f"{layout['reference: overall fit alone']:.2f} |")
    print(f"\n{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
