"""`python -m loadtest`: simulated voters against a running Pairwise cluster (`make up`),
interactively (a NextPair, then one SubmitVote per vote bringing the next pair), in bulk
(ImportVotes), or both, bounded in votes and time; prints live progress and writes a JSON and
PNG report: votes/s, latency per call, how fresh the ranking is, its accuracy against the
simulated truth, an audit that every vote answered OK is counted once, and the goals below.
Loopback targets only."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

from loadtest.plan import (
    BULK,
    INTERACTIVE,
    MAX_PROPOSALS,
    MODES,
    LoadPlan,
    PlanError,
    check_loopback,
)
from pairwise import event_loop

DEFAULTS = LoadPlan()
# The default: bulk, then interactive, each alone on the cluster, as the published figures
# were measured (two modes at once share the cores, and each measures less).
EACH = "each"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                     argparse.RawDescriptionHelpFormatter):
    """Defaults after each flag; the description and the goals keep their lines."""


def parser() -> argparse.ArgumentParser:
    from loadtest.report import GOALS

    goals = "\n".join(f"  {name} {op} {threshold:,}: {why}"
                      for _, name, why, _, op, threshold in GOALS)
    p = argparse.ArgumentParser(
        prog="python -m loadtest", description=__doc__,
        epilog=f"goals for one 2-core host, checked in every report:\n{goals}",
        formatter_class=_HelpFormatter)
    p.add_argument("--target", help="gateway HOST:PORT, loopback only (default: the address "
                   "in the run folder's state, else 127.0.0.1:$GATEWAY_PORT or 50051)")
    p.add_argument("--run-dir", type=Path, default=Path(os.environ.get("RUN_DIR") or "run"),
                   help="run folder of `make up`: gateway address and dev tokens")
    p.add_argument("--mode", choices=(EACH, *MODES), default=EACH,
                   help="each: bulk, then interactive, one after the other; both: the two at "
                        "once, each on its own cause")
    p.add_argument("--voters", type=int, default=DEFAULTS.voters,
                   help="simulated voters, arriving over the run")
    p.add_argument("--proposals", type=int, default=DEFAULTS.proposals,
                   help=f"seed proposals with hidden abilities (2 to {MAX_PROPOSALS:,})")
    p.add_argument("--new-proposals", type=int, default=DEFAULTS.new_proposals,
                   help="proposals citizens add mid-run (accepted by the admin), in 3 waves")
    p.add_argument("--duration", type=float, default=DEFAULTS.duration_s,
                   help="seconds of load (per run; modes run at the same time)")
    p.add_argument("--max-votes", type=int, default=DEFAULTS.max_votes,
                   help="votes sent per mode, at most")
    p.add_argument("--concurrency", type=int, default=DEFAULTS.concurrency,
                   help="interactive voters voting at once")
    p.add_argument("--arrival-rate", type=float, default=DEFAULTS.arrival_rate,
                   help="new voters per second (Poisson)")
    p.add_argument("--think", type=float, default=DEFAULTS.think_s,
                   help="seconds an interactive voter reads a pair before answering")
    p.add_argument("--next-pair-in-reply", action=argparse.BooleanOptionalAction,
                   default=DEFAULTS.next_pair_in_reply,
                   help="interactive voters get each next pair in SubmitVote's reply (one "
                        "call per vote after their first NextPair); --no-next-pair-in-reply: "
                        "NextPair before every vote")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                   help="votes per ImportVotes call (bulk)")
    p.add_argument("--bulk-streams", type=int, default=DEFAULTS.bulk_streams,
                   help="ImportVotes calls in flight at once (bulk)")
    p.add_argument("--channels", type=int, default=DEFAULTS.channels,
                   help="connections to the gateway, each call on the next (gateway "
                        "processes sharing one port each serve some)")
    p.add_argument("--tie-rate", type=float, default=DEFAULTS.tie_rate,
                   help="P(tie) between equally good proposals (decays with the gap)")
    p.add_argument("--skip-rate", type=float, default=DEFAULTS.skip_rate, help="P(skip)")
    p.add_argument("--catch-up", type=float, default=DEFAULTS.catch_up_s,
                   help="seconds to wait after the load for every vote to be counted")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the naive XADD baseline of bulk mode")
    p.add_argument("--baseline-votes", type=int, default=DEFAULTS.baseline_votes,
                   help="votes the naive baseline writes")
    p.add_argument("--accuracy-every", type=float, default=DEFAULTS.accuracy_every_s,
                   help="seconds between reads of the full ranking for accuracy")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--segments", type=int, default=DEFAULTS.segment_attributes,
                   help="attributes of five values each that voters declare with their votes "
                        "(the ranker refits five segments an attribute)")
    p.add_argument("--runs", type=int, default=1,
                   help="repeat the whole run this many times (a new cause each time) and "
                        "print each goal's median")
    p.add_argument("--out", type=Path,
                   help="folder for <run_id>.json and <run_id>.png (default <run-dir>/loadtest)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cluster.run_folder import RunFolder
    from loadtest.gateway_client import credentials

    target = args.target
    state = RunFolder(args.run_dir.absolute()).read_state()
    if not target:
        target = state.get("gateway_addr") or (
            f"127.0.0.1:{os.environ.get('GATEWAY_PORT') or 50051}")
    # The local cluster's processes, for the CPU figures (when the target is that cluster).
    processes = ({name: child["pid"] for name, child in state.get("children", {}).items()
                  if child.get("pid")} if target == state.get("gateway_addr") else {})
    try:
        check_loopback(target)
        modes = (BULK, INTERACTIVE) if args.mode == EACH else (args.mode,)
        plan = LoadPlan(
            mode=modes[0], voters=args.voters, proposals=args.proposals,
            new_proposals=args.new_proposals, duration_s=args.duration,
            max_votes=args.max_votes, concurrency=args.concurrency,
            arrival_rate=args.arrival_rate, think_s=args.think,
            next_pair_in_reply=args.next_pair_in_reply, batch_size=args.batch_size,
            bulk_streams=args.bulk_streams, channels=args.channels, tie_rate=args.tie_rate,
            skip_rate=args.skip_rate, catch_up_s=args.catch_up, baseline=not args.no_baseline,
            baseline_votes=args.baseline_votes, accuracy_every_s=args.accuracy_every,
            seed=args.seed, segment_attributes=args.segments)
    except PlanError as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return 2
    creds = credentials(os.environ, args.run_dir)
    if creds is None:
        print("loadtest: no tokens: set PAIRWISE_ADMIN_TOKEN and PAIRWISE_PLATFORM_TOKEN, or "
              f"run `make up` so that {args.run_dir / 'tokens.env'} holds them",
              file=sys.stderr)
        return 2
    from loadtest import report, runner

    out_dir = args.out or args.run_dir / "loadtest"
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        for i in range(max(1, args.runs)):
            for mode in modes:
                seeded = dataclasses.replace(plan, mode=mode, seed=plan.seed + i)
                results[mode].append(event_loop.run(runner.run(
                    seeded, target, creds, out_dir, processes=processes)))
    except KeyboardInterrupt:
        print("\nloadtest interrupted", file=sys.stderr)
        return 130
    for runs in results.values():
        if len(runs) > 1:
            summary = report.medians(runs)
            path = out_dir / f"median-{runs[0]['run_id']}.json"
            report.write_json(summary, path)
            for line in report.median_lines(summary) + [f"  summary: {path}"]:
                print(line)
    return 0 if all(r["audit_passed"] for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
