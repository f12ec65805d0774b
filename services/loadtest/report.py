"""The end-of-run report: one JSON document (figures per mode, the goals, the audit) and
the summary printed to the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.baseline import Baseline
from loadtest.campaign import Campaign
from loadtest.measurements import finite
from loadtest.plan import BULK, INTERACTIVE, LoadPlan

# What one 2-core host should sustain, as the platform experiences it (docs/performance.md):
# (mode, goal, why it matters, figure path, comparison, threshold). The goal names are the
# report's keys and stay as they are; `why` says it in the product's terms.
GOALS = (
    (BULK, "bulk votes/s end to end (accepted -> counted)",
     "a 7M-vote consultation imported and ranked in about 70 s",
     ("end_to_end_votes_per_s",), ">=", 100_000),
    (BULK, "bulk / naive XADD baseline",
     "de-duplication, receipts and the log format cost less than writing each vote alone",
     ("baseline_ratio",), ">=", 3.0),
    (INTERACTIVE, "interactive votes/s (SubmitVote OK)",
     "a cause gone viral, voters clicking through pairs, on one host",
     ("ok_votes_per_s",), ">=", 2_000),
    (INTERACTIVE, "SubmitVote p99 (ms)", "a voter's click is acknowledged without a wait",
     ("latency_ms", "SubmitVote", "p99"), "<=", 50.0),
    (INTERACTIVE, "NextPair p99 (ms)", "the next pair appears as the last one goes",
     ("latency_ms", "NextPair", "p99"), "<=", 20.0),
    (INTERACTIVE, "freshness p95 (s)", "a vote is in the published ranking within 2 s of its OK",
     ("freshness_s", "p95"), "<=", 2.0),
)


def build(*, run_id: str, plan: LoadPlan, target: str, started_at: float, load_s: float,
          campaigns: list[Campaign], audits: list[dict[str, Any]], caught_up: list[bool],
          naive: Baseline | None, cpus: int,
          cpu: dict[str, Any] | None = None) -> dict[str, Any]:
    modes = {}
    for campaign, audit, done in zip(campaigns, audits, caught_up, strict=True):
        modes[campaign.mode] = _mode(campaign, audit, done, load_s, naive)
    result: dict[str, Any] = {
        "run_id": run_id, "target": target, "started_at_unix": round(started_at, 3),
        "cpus": cpus, "plan": plan.as_dict(), "load_s": round(load_s, 3), "modes": modes,
        "audit_passed": all(a.get("passed") for a in audits),
        # CPU seconds by process over the load and catch-up, and per vote (all modes).
        "cpu": cpu,
    }
    result["goals"] = goals(result)
    return result


def _mode(campaign: Campaign, audit: dict[str, Any], caught_up: bool, load_s: float,
          naive: Baseline | None) -> dict[str, Any]:
    c = campaign.counters
    counted_at = campaign.all_counted_at()
    # Modes stop at their own time (max votes) within the shared load phase.
    load_s = campaign.load_s or load_s
    final = campaign.accuracy[-1].as_dict() if campaign.accuracy else None
    out: dict[str, Any] = {
        "cause_id": campaign.cause_id,
        "votes": {"sent": c.sent, "ok": c.ok, "unknown_outcome": c.unknown,
                  "rejected": c.rejected, "unexpected_duplicates": c.unexpected_duplicates,
                  "repeated_pairs": c.repeated_pairs,
                  "next_pairs_in_reply": c.next_pairs_in_reply},
        "load_s": round(load_s, 3),
        "ok_votes_per_s": c.ok / load_s if load_s > 0 else 0.0,
        "all_counted_at_s": counted_at,
        "end_to_end_votes_per_s": (c.ok / counted_at if counted_at else None),
        "caught_up": caught_up,
        "latency_ms": c.latencies.summary_ms(),
        "freshness_s": c.freshness.summary(),
        "errors": c.errors.as_dict(),
        "error_examples": c.errors.examples,
        "accuracy": [p.as_dict() for p in campaign.accuracy],
        "final_accuracy": final,
        "throughput": c.rate_series(),
        "audit": audit,
        "proposals": {"seed": campaign.population.n_seed,
                      "added_mid_run": campaign.proposals_added,
                      "accepted_mid_run": campaign.proposals_accepted},
        "voters": {"arrived": c.voters_arrived, "done": c.voters_done},
        "events": campaign.events,
    }
    out["latency_histogram_ms"] = _histogram(campaign)
    if campaign.mode == BULK:
        if naive is not None:
            out["baseline"] = naive.as_dict()
            e2e = out["end_to_end_votes_per_s"]
            out["baseline_ratio"] = (e2e / naive.votes_per_s
                                     if e2e and naive.votes_per_s else None)
    return out


# Log-spaced latency bins from 0.1 ms to 100 s (ms), 10 per decade.
HISTOGRAM_EDGES_MS = np.logspace(-1, 5, 61)


def _histogram(campaign: Campaign) -> dict[str, Any]:
    """Calls per latency bin, for the voting RPCs of the mode."""
    latencies = campaign.counters.latencies
    counts = {rpc: np.histogram(latencies.samples(rpc) * 1000, HISTOGRAM_EDGES_MS)[0].tolist()
              for rpc in ("NextPair", "SubmitVote", "ImportVotes") if latencies.count(rpc)}
    return {"edges": HISTOGRAM_EDGES_MS.round(4).tolist(), "counts": counts}


def _figure(mode: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = mode
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return finite(float(value)) if isinstance(value, int | float) else None


def goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of the modes that ran: measured figure and whether it is met."""
    out = []
    for mode, name, why, path, op, threshold in GOALS:
        if mode not in result["modes"]:
            continue
        measured = _figure(result["modes"][mode], path)
        met = measured is not None and (measured >= threshold if op == ">=" else
                                        measured <= threshold)
        out.append({"mode": mode, "goal": name, "why": why, "target": f"{op} {threshold:,}",
                    "measured": measured, "met": met})
    return out


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


def _ms(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("count"):
        return "-"
    return (f"p50 {summary['p50']:.1f} / p95 {summary['p95']:.1f} / p99 {summary['p99']:.1f} "
            f"ms ({summary['count']:,} calls)")


def summary_lines(result: dict[str, Any]) -> list[str]:
    """The report in a few lines for the terminal."""
    lines = ["", f"Load test {result['run_id']} against {result['target']} "
                 f"({result['load_s']:.1f} s of load, {result['cpus']} CPUs)"]
    for mode, m in result["modes"].items():
        v = m["votes"]
        e2e = m["end_to_end_votes_per_s"]
        e2e_text = f"{e2e:,.0f} votes/s" if e2e else "not all counted"
        lines.append(f"  {mode}: {v['ok']:,} votes OK of {v['sent']:,} sent; "
                     f"{m['ok_votes_per_s']:,.0f} votes/s while loading, {e2e_text} "
                     "end to end (accepted -> counted)")
        for rpc, summary in m["latency_ms"].items():
            if rpc in ("NextPair", "SubmitVote", "ImportVotes"):
                lines.append(f"    {rpc:<11} {_ms(summary)}")
        f = m["freshness_s"]
        if f["count"]:
            lines.append(f"    freshness   p50 {f['p50']:.2f} s / p95 {f['p95']:.2f} s "
                         f"({f['count']:,} samples, {f['unresolved']} unresolved)")
        if m["errors"]:
            lines.append(f"    errors      {json.dumps(m['errors'])}")
            for name, example in m["error_examples"].items():
                lines.append(f"      e.g. {name}: {example[:160]}")
        if m.get("baseline"):
            ratio = m.get("baseline_ratio")
            lines.append(f"    baseline    {m['baseline']['votes_per_s']:,.0f} votes/s naive "
                         f"XADD; ratio {ratio:.2f}x" if ratio else "    baseline    -")
        a = m["final_accuracy"]
        if a and a["kendall_tau"] is not None:
            lines.append(f"    accuracy    Kendall tau {a['kendall_tau']:.3f}, top-20 recall "
                         f"{a['top20_recall']:.2f}, 95% coverage {a['coverage']:.1%} over "
                         f"{a['n_ranked']:,} proposals at {a['votes_counted']:,} votes")
        lines.append(f"    audit       {'PASS' if m['audit'].get('passed') else 'FAIL'}: "
                     f"{m['audit'].get('detail')}")
        untrusted = m["audit"].get("votes_untrusted", 0)
        if untrusted:
            # Counted (in the log, exactly once) but not in the official ranking: scripted
            # voters answer sooner than a person reads, which ingest flags.
            lines.append(f"    untrusted   {untrusted:,} votes answered sooner than the "
                         f"cluster's INGEST_MIN_VIEW_MS: kept, left out of the ranking and of "
                         f"the accuracy above (start the cluster with INGEST_MIN_VIEW_MS=0 "
                         f"to rank scripted voters, or give them --think)")
    cpu = result.get("cpu")
    if cpu and cpu["cpu_us_per_vote"]:
        per_vote = ", ".join(f"{name} {us:,.0f}" for name, us in cpu["cpu_us_per_vote"].items())
        lines.append(f"  CPU: {cpu['cores_busy']:.2f} cores busy; µs of CPU per vote: "
                     f"{per_vote}")
    if result["goals"]:
        lines.append("  goals for one 2-core host:")
    for goal in result["goals"]:
        measured = goal["measured"]
        shown = "-" if measured is None else f"{measured:,.2f}"
        lines.append(f"  goal {'met' if goal['met'] else 'MISSED':<6} {goal['goal']}: "
                     f"{shown} (target {goal['target']}: {goal['why']})")
    lines.append(f"  report: {result['files']['json']}  {result['files']['png']}")
    return lines


def medians(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of the same plan in one document: each goal's figure per run and their
    median, CPU µs per vote by process (median), and whether every run's audit passed."""
    out: dict[str, Any] = {"runs": [r["run_id"] for r in results],
                           "audit_passed": all(r["audit_passed"] for r in results),
                           "goals": [], "cpu_us_per_vote": {}}
    for i, goal in enumerate(results[0]["goals"]):
        values = [r["goals"][i]["measured"] for r in results]
        known = [v for v in values if v is not None]
        median = float(np.median(known)) if known else None
        op, threshold = goal["target"].split(" ", 1)
        limit = float(threshold.replace(",", ""))
        met = median is not None and (median >= limit if op == ">=" else median <= limit)
        out["goals"].append({**goal, "measured": median, "met": met, "per_run": values})
    names = {name for r in results if r.get("cpu") for name in r["cpu"]["cpu_us_per_vote"]}
    for name in sorted(names):
        values = [r["cpu"]["cpu_us_per_vote"].get(name) for r in results if r.get("cpu")]
        out["cpu_us_per_vote"][name] = float(np.median([v for v in values if v is not None]))
    return out


def median_lines(summary: dict[str, Any]) -> list[str]:
    """`medians` in a few lines for the terminal."""
    lines = ["", f"Median of {len(summary['runs'])} runs ({', '.join(summary['runs'])}); "
                 f"audit {'PASS in every run' if summary['audit_passed'] else 'FAILED'}"]
    for goal in summary["goals"]:
        per_run = ", ".join("-" if v is None else f"{v:,.2f}" for v in goal["per_run"])
        shown = "-" if goal["measured"] is None else f"{goal['measured']:,.2f}"
        lines.append(f"  goal {'met' if goal['met'] else 'MISSED':<6} {goal['goal']}: "
                     f"{shown} (target {goal['target']}; runs: {per_run})")
    if summary["cpu_us_per_vote"]:
        lines.append("  µs of CPU per vote (median): " + ", ".join(
            f"{name} {us:,.0f}" for name, us in summary["cpu_us_per_vote"].items()))
    return lines
