"""The benchmark's report: one JSON document (the plan, the code version, every seed's
curves and figures, the medians and the goals, the checks) and its summary for the
terminal."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from loadtest.selection import metrics
from loadtest.selection.plan import SelectionPlan


def code_version() -> dict[str, Any]:
    """The commit measured, and whether the work tree differed from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def build(*, run_id: str, plan: SelectionPlan, target: str, code: dict[str, Any],
          started_at: float, wall_s: float, seeds: list[dict[str, Any]],
          load_before: tuple[float, ...]) -> dict[str, Any]:
    """The report of the seeds run so far (`code` as code_version read at the start)."""
    checks = _checks(seeds)
    return {
        "run_id": run_id, "preset": plan.preset, "plan": plan.as_dict(),
        "seeds_done": len(seeds), "code": code, "target": target,
        "started_at_unix": round(started_at, 3),
        "wall_s": round(wall_s, 1), "cpus": os.cpu_count() or 0,
        # The machine's load (1, 5, 15 min) before and after: other work slows the fits and
        # so lets more votes arrive between them.
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "seeds": seeds, "summary": metrics.summarise(seeds, plan),
        "checks": checks, "checks_passed": all(c["passed"] for c in checks),
    }


def _checks(seeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What must hold in every run whatever the strategy: each vote answered OK counted once
    (in total and proposal by proposal), no pair shown twice to a voter."""
    out = []
    for seed in seeds:
        for name, s in seed["strategies"].items():
            problems = []
            if not s["audit"].get("passed"):
                problems.append(s["audit"].get("detail", "audit failed"))
            if s["repeated_pairs"]:
                problems.append(f"{s['repeated_pairs']} pairs shown twice to a voter")
            if s["per_proposal_counts_agree"] is not True:
                problems.append("the ranking's votes per proposal differ from the votes "
                                "answered OK" if s["caught_up"] else "ranking not caught up")
            out.append({"seed": seed["seed"], "strategy": name, "passed": not problems,
                        "problems": problems})
    return out


def _votes(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _per_seed(values: list[Any], shown: Any = _votes) -> str:
    return ", ".join(shown(v) for v in values)


def summary_lines(result: dict[str, Any]) -> list[str]:
    plan, summary = result["plan"], result["summary"]
    code = result["code"]
    version = f"{code['commit']}{' (modified)' if code['dirty'] else ''}"
    lines = ["", f"Pair-selection benchmark {result['run_id']}, preset {plan['preset']}: "
                 f"{plan['proposals']:,} proposals + {plan['new_per_wave']} accepted at each of "
                 f"{len(plan['waves'])} points, {plan['votes']:,} votes a strategy, "
                 f"{len(result['seeds'])} seed(s); code {version}; {result['wall_s']:,.0f} s"]
    in_force = {name: {s["strategies"][name]["pair_selection_in_force"]
                       for s in result["seeds"]} for name in summary["strategies"]}
    if in_force.get("adaptive") != {"PAIR_SELECTION_ADAPTIVE"}:
        lines.append(f"  NOTE: the adaptive cause ran with {sorted(in_force['adaptive'])}: "
                     "this gateway does not choose pairs adaptively yet")
    strategies = summary["strategies"]
    rows = [("votes until top-10 recall stays >= 0.8", "votes_to_recall_held", _votes),
            ("  ... first touched it", "votes_to_recall", _votes),
            ("votes until Kendall tau stays >= 0.9", "votes_to_tau_held", _votes),
            ("  ... first touched it", "votes_to_tau", _votes),
            ("final top-10 recall", "final_top10_recall", _fraction),
            ("final Kendall tau", "final_kendall_tau", _fraction),
            ("final 95% coverage", "final_coverage", _percent),
            ("final CI width, true top 20", "final_top20_width", _fraction),
            ("final sd of (estimate - truth) / SE", "final_z_sd", _fraction),
            ("new proposal: votes to 10th, worst", "newcomer_worst", _votes),
            ("new proposal: votes to 10th, median", "newcomer_median", _votes),
            ("new proposals under 10 votes at end", "newcomers_short_at_end", _votes),
            ("proposals under 10 votes at end", "proposals_short_at_end", _votes),
            ("votes received: min", "received_min", _votes),
            ("votes received: median", "received_median", _votes),
            ("votes received: max", "received_max", _votes),
            ("NextPair p50 (ms)", "nextpair_p50_ms", _ms),
            ("NextPair p99 (ms)", "nextpair_p99_ms", _ms),
            ("SubmitVote p50 (ms)", "submitvote_p50_ms", _ms),
            ("SubmitVote p99 (ms)", "submitvote_p99_ms", _ms)]
    lines.append(f"  {'median (per seed)':<38} {'uniform':<30} {'adaptive':<30}")
    for label, key, shown in rows:
        cells = []
        for name in ("uniform", "adaptive"):
            figure = strategies[name][key]
            cells.append(f"{shown(figure['median'])} ({_per_seed(figure['per_seed'], shown)})")
        lines.append(f"  {label:<38} {cells[0]:<30} {cells[1]:<30}")
    for name, label in (("votes_to_recall_held", "recall stays >= 0.8"),
                        ("votes_to_tau_held", "tau stays >= 0.9"),
                        ("votes_to_recall", "recall first >= 0.8"),
                        ("votes_to_tau", "tau first >= 0.9")):
        r = summary["ratios"][name]
        per_seed = ", ".join("-" if p["value"] is None else
                             f"{'' if p['relation'] == '=' else p['relation']}{p['value']:.3f}"
                             for p in r["per_seed"])
        lines.append(f"  adaptive / uniform, votes until {label:<20} median "
                     f"{_fraction(r['median'])} (per seed {per_seed}); ratio of the medians "
                     f"{_fraction(r['of_medians'])}")
    for goal in summary["goals"]:
        lines.append(f"  goal {'met' if goal['met'] else 'MISSED':<6} {goal['goal']}: "
                     f"{_figure(goal['measured'])} (target {goal['target']}; per seed "
                     f"{_per_seed(goal['per_seed'], _figure)})")
    failed = [c for c in result["checks"] if not c["passed"]]
    lines.append("  checks PASS: every vote answered OK counted (in total and per proposal), "
                 "no pair shown twice to a voter" if not failed else
                 "  checks FAILED: " + "; ".join(f"seed {c['seed']} {c['strategy']}: "
                                                  f"{', '.join(c['problems'])}" for c in failed))
    lines.append(f"  report: {result['files']['json']}  {result['files']['png']}")
    return lines


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3f}"
