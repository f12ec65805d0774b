"""`python -m loadtest.selection` (`make selection-bench`): the pair-selection benchmark.

For each seed, a uniform and an adaptive cause share one hidden truth; simulated voters
(10-20 votes each, ties and skips as the voter model has them) vote in both at once through
NextPair / SubmitVote (the next pair in SubmitVote's reply when the gateway gives it) until
each cause spent the vote budget; the admin accepts new proposals at set shares of it. As
the votes counted grow it compares the full ranking with the truth (top-10 recall, Kendall's
tau, 95% interval coverage, interval width of the true top 20, votes per proposal), then
derives the votes each strategy needed, their ratios and medians over the seeds, and writes
<out>/<run_id>.json and .png.

Without --target it starts its own scratch cluster (run folder <run-dir>/selection-bench,
ports 50151-50153 and 6398, an empty Redis, every vote trusted) and stops it at the end; with
--target it uses a running one (`make up`'s, tokens from the run folder or the environment;
start it with INGEST_MIN_VIEW_MS=0, or the voters' instant votes are left out of its
rankings). Loopback only."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from loadtest.plan import PlanError, check_loopback
from loadtest.selection.plan import PRESETS, preset
from pairwise import event_loop

# The scratch cluster's ports: apart from `make up`'s (50051-50053, 6399), so both can run.
PORTS = {"GATEWAY_PORT": "50151", "INGEST_PORT": "50152", "RANKER_PORT": "50153",
         "REDIS_PORT": "6398", "CONSOLE_PORT": "8052"}
# The simulated voters answer as soon as a pair is shown, which ingest would flag as too fast
# for a person (and the ranking would leave out): the bench measures pair selection, so its
# scratch cluster trusts every vote. A --target cluster must be started so too.
TRUST_EVERY_VOTE = {"INGEST_MIN_VIEW_MS": "0"}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                     argparse.RawDescriptionHelpFormatter):
    """Defaults after each flag; the description keeps its lines."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.selection", description=__doc__,
                                formatter_class=_HelpFormatter)
    p.add_argument("--preset", choices=list(PRESETS), default="1k",
                   help="1k: 1,000 proposals, 200,000 votes a strategy; 34k: new proposals "
                        "among 34,000, 60,000 votes after 600,000 imported; 34k-nextpair: "
                        "NextPair's latency there, a NextPair before every vote; short: the "
                        "test suite's quick check")
    p.add_argument("--votes", type=int, help="vote budget per strategy (preset's if unset)")
    p.add_argument("--history-votes", type=int,
                   help="past votes imported into each cause before the voters come "
                        "(preset's if unset)")
    p.add_argument("--seeds", type=int, help="runs, one per seed (preset's if unset)")
    p.add_argument("--seed", type=int, help="first seed (preset's if unset)")
    p.add_argument("--proposals", type=int, help="seed proposals (preset's if unset)")
    p.add_argument("--new-per-wave", type=int,
                   help="proposals the admin accepts at each wave (preset's if unset)")
    p.add_argument("--concurrency", type=int,
                   help="voters voting at once in each cause (preset's if unset)")
    p.add_argument("--time-limit", type=float,
                   help="seconds of voting per seed at most (preset's if unset)")
    p.add_argument("--target", help="gateway HOST:PORT of a running cluster, loopback only "
                                    "(default: start a scratch cluster)")
    p.add_argument("--run-dir", type=Path, default=Path(os.environ.get("RUN_DIR") or "run"),
                   help="run folder: the scratch cluster lives in <run-dir>/selection-bench; "
                        "with --target, where `make up` keeps the tokens")
    p.add_argument("--out", type=Path, default=Path("results/selection"),
                   help="folder for <run_id>.json and <run_id>.png")
    return p


def main(argv: list[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    args = parser().parse_args(argv)
    try:
        plan = preset(args.preset, votes=args.votes, history_votes=args.history_votes,
                      seeds=args.seeds, seed=args.seed,
                      proposals=args.proposals, new_per_wave=args.new_per_wave,
                      concurrency=args.concurrency, time_limit_s=args.time_limit)
        if args.target:
            check_loopback(args.target)
    except PlanError as exc:
        print(f"selection benchmark: {exc}", file=sys.stderr)
        return 2
    from cluster import control
    from loadtest.gateway_client import credentials
    from loadtest.selection import run

    # A stop request, even to a run started in the background (where a shell ignores
    # SIGINT), ends it as Ctrl-C does: its scratch cluster is stopped and wiped on the way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with _cluster(args, environ) as (target, run_dir):
            creds = credentials(environ, run_dir)
            if creds is None:
                print("selection benchmark: no tokens: set PAIRWISE_ADMIN_TOKEN and "
                      f"PAIRWISE_PLATFORM_TOKEN, or keep them in {run_dir / 'tokens.env'}",
                      file=sys.stderr)
                return 2
            result = event_loop.run(run.benchmark(plan, target, creds, args.out))
    except control.ClusterError as exc:
        print(f"selection benchmark: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nselection benchmark interrupted", file=sys.stderr)
        return 130
    return 0 if result["checks_passed"] else 1


@contextmanager
def _cluster(args: argparse.Namespace,
             environ: Mapping[str, str]) -> Iterator[tuple[str, Path]]:
    """(gateway address, run folder holding its tokens): the --target cluster, or a scratch
    cluster started here on its own ports with an empty Redis, stopped and wiped after."""
    if args.target:
        yield args.target, args.run_dir
        return
    from cluster import control
    from cluster.run_folder import RunFolder

    run = RunFolder((args.run_dir / "selection-bench").absolute())
    scratch = not run.supervisor_running()
    if scratch:
        shutil.rmtree(run.redis_data, ignore_errors=True)
    own = {name: value for name, value in environ.items() if name != "REDIS_URL"}
    try:
        with control.running(run, {**own, **PORTS, **TRUST_EVERY_VOTE}) as addr:
            yield addr, run.root
    finally:
        if scratch:
            shutil.rmtree(run.redis_data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
