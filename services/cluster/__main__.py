"""`python -m cluster up|down|status|demo [--run-dir run]`: the cluster on one machine."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from cluster import control
from cluster.run_folder import RunFolder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster in the background")
    up.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for every service to be SERVING")
    down = commands.add_parser("down", help="stop what `up` started")
    down.add_argument("--grace", type=float, default=10.0,
                      help="seconds each process gets to drain before SIGKILL")
    commands.add_parser("status", help="processes, pids, restarts, health")
    demo = commands.add_parser("demo", help="a simulated consultation with a live ranking")
    demo.add_argument("--seconds", type=float,
                      default=float(os.environ.get("DEMO_SECONDS", "") or 45),
                      help="how long voters vote (DEMO_SECONDS, default 45)")
    demo.add_argument("--seed", type=int, default=2017, help="seed of the hidden truth")
    commands.add_parser("supervise", help="(internal) the supervisor `up` starts")
    for sub in (up, down, demo, *(commands.choices[c] for c in ("status", "supervise"))):
        sub.add_argument("--run-dir", type=Path, default=Path("run"),
                         help="folder for logs, pids, tokens and Redis data (default run/)")
    args = parser.parse_args(argv)
    run = RunFolder(args.run_dir.absolute())

    if args.command == "up":
        return control.up(run, os.environ, timeout_s=args.timeout)
    if args.command == "down":
        return control.down(run, grace_s=args.grace)
    if args.command == "status":
        return control.status(run)
    if args.command == "demo":
        from cluster import demo as demo_run

        return demo_run.main(run, os.environ, seconds=args.seconds, seed=args.seed)
    return _supervise(run)


def _supervise(run: RunFolder) -> int:
    from cluster import supervisor, tokens, topology
    from pairwise import logs

    logs.configure("supervisor")
    plan = topology.plan(run, os.environ, tokens.resolve(run.tokens_file, os.environ))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Detached from any terminal: a hang-up must not stop the cluster.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    grace_s = float(os.environ.get("STOP_GRACE_S", "") or 10)
    return supervisor.serve(supervisor.Supervisor(
        plan.processes, run, grace_s=grace_s,
        facts={"gateway_addr": plan.gateway_addr, "redis_url": plan.redis_url,
               "embedded_redis": plan.embedded_redis}), stop)


if __name__ == "__main__":
    sys.exit(main())
