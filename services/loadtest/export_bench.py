"""`python -m loadtest.export_bench`: how fast `python -m pairwise export` writes a large
cause, with how much memory, and whether `python -m pairwise rank` reproduces its ranking.

Starts a scratch cluster (run folder <run-dir>/export-bench, ports 50161-50163 and 6396, an
empty Redis), creates a cause with --proposals accepted proposals, and writes --votes
imported votes straight into its vote log in entries of 1,000 (the format ImportVotes
writes, pairwise.vote_log; ~7 votes per voter, 10% ties, 2% flagged untrusted; or of
--votes-per-entry, 1 for a log of interactive votes), since the
export reads the log and nothing else of ingest's. Once the ranker counts them all it runs
the export CLI and the rank CLI as child processes and reports their wall time, votes per
second, and peak RSS (each child's own, from wait4), with the gateway's peak RSS (VmHWM)
before and after, as JSON in <out>/<run_id>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis

from pairwise import embedded_redis, keys, vote_log
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

PORTS = {"GATEWAY_PORT": "50161", "INGEST_PORT": "50162", "RANKER_PORT": "50163",
         "REDIS_PORT": "6396", "CONSOLE_PORT": "8061"}
ENTRIES_PER_ROUND_TRIP = 50


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.export_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--votes", type=int, default=1_000_000)
    p.add_argument("--proposals", type=int, default=1_000)
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--votes-per-entry", type=int, default=vote_log.MAX_VOTES_PER_ENTRY,
                   help="votes in each log entry: 1000 as ImportVotes writes them, 1 as "
                        "interactive voting does")
    p.add_argument("--run-dir", type=Path, default=Path(os.environ.get("RUN_DIR") or "run"))
    p.add_argument("--out", type=Path, default=Path("results/export"))
    p.add_argument("--raw-voter-ids", action="store_true",
                   help="export voter ids as recorded (no pseudonyms)")
    p.add_argument("--keep", action="store_true", help="keep the export folder")
    return p


def _write_log(client: redis.Redis, cause_id: str, n_votes: int, n_proposals: int,
               seed: int, votes_per_entry: int) -> None:
    rng = np.random.default_rng(seed)
    abilities = rng.normal(0, 1, n_proposals)
    n_voters = max(1, n_votes // 7)
    written = 0
    pipe = client.pipeline(transaction=False)
    while written < n_votes:
        m = min(votes_per_entry, n_votes - written)
        a = rng.integers(0, n_proposals, m)
        b = (a + rng.integers(1, n_proposals, m)) % n_proposals
        flip = rng.random(m) > 1 / (1 + np.exp(abilities[b] - abilities[a]))
        a, b = np.where(flip, b, a), np.where(flip, a, b)
        kinds = "".join(np.where(rng.random(m) < 0.1, vote_log.TIE, vote_log.WIN).tolist())
        voters = [f"voter-{v}" for v in rng.integers(0, n_voters, m).tolist()]
        fields = vote_log.batch_fields(kinds, a.tolist(), b.tolist(),
                                       [f"imp-{written + k}" for k in range(m)], voters)
        fields["q"] = "".join(np.where(rng.random(m) < 0.02, "0", "1").tolist())
        pipe.xadd(keys.votes(cause_id), fields)  # type: ignore[arg-type]
        written += m
        if len(pipe) * votes_per_entry >= ENTRIES_PER_ROUND_TRIP * 1000 or written == n_votes:
            pipe.execute()
    client.sadd(keys.AWAKE_CAUSES, cause_id)


def _child(argv: list[str], env: dict[str, str]) -> tuple[int, str, float, float, float]:
    """(exit code, stdout and stderr, wall seconds, peak RSS in MB, CPU seconds) of one
    child process."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    output = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return (child.returncode, output, time.perf_counter() - started, usage.ru_maxrss / 1024,
            usage.ru_utime + usage.ru_stime)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cluster import control
    from cluster.run_folder import RunFolder
    from cluster.tokens import resolve

    run = RunFolder((args.run_dir / "export-bench").absolute())
    shutil.rmtree(run.redis_data, ignore_errors=True)
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | PORTS
    result: dict[str, Any] = {"votes": args.votes, "proposals": args.proposals,
                              "votes_per_entry": args.votes_per_entry,
                              "format": args.format, "seed": args.seed,
                              "raw_voter_ids": args.raw_voter_ids}
    try:
        with control.running(run, environ) as addr:
            tokens = resolve(run.tokens_file, environ)
            admin = (("authorization", f"Bearer {tokens.admin}"),)
            gateway_pid = int(run.read_state()["children"]["gateway"]["pid"])
            cause_id = f"export-bench-{uuid.uuid4().hex[:8]}"
            with grpc.insecure_channel(addr) as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="bench"),
                                 metadata=admin, timeout=10)
                for start in range(0, args.proposals, 1000):
                    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
                        types_pb2.NewProposal(proposal_id=f"p{k}", text=f"proposal {k}")
                        for k in range(start, min(start + 1000, args.proposals))]),
                        metadata=admin, timeout=60)
                client = redis.Redis.from_url(embedded_redis.url(
                    int(PORTS["REDIS_PORT"]), password=tokens.redis_password))
                started = time.perf_counter()
                _write_log(client, cause_id, args.votes, args.proposals, args.seed,
                           args.votes_per_entry)
                result["log_write_s"] = round(time.perf_counter() - started, 1)
                result["redis_used_memory_mb"] = round(
                    client.info("memory")["used_memory"] / 2**20)
                client.close()
                started = time.perf_counter()
                while True:
                    try:
                        ranking = stub.GetRanking(gw.GetRankingRequest(
                            cause_id=cause_id, limit=1), metadata=admin, timeout=60)
                        if ranking.votes_counted == args.votes:
                            break
                    except grpc.RpcError as exc:
                        if exc.code() != grpc.StatusCode.UNAVAILABLE:
                            raise
                    time.sleep(1)
                result["ranker_catch_up_s"] = round(time.perf_counter() - started, 1)
            result["gateway_peak_rss_mb_before"] = _peak_rss_mb(gateway_pid)
            gateway_cpu = _cpu_s(gateway_pid)
            folder = run.root / "export"
            shutil.rmtree(folder, ignore_errors=True)
            env = {**environ, "PAIRWISE_ADMIN_TOKEN": tokens.admin}
            # The machine's load around the export: wall times on shared cores depend on it.
            result["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
            code, output, seconds, rss, cpu = _child(
                [sys.executable, "-m", "pairwise", "export", "--cause", cause_id,
                 "--format", args.format, "--out", str(folder), "--gateway", addr,
                 *(["--raw-voter-ids"] if args.raw_voter_ids else [])], env)
            print(output, end="")
            result["gateway_peak_rss_mb_after"] = _peak_rss_mb(gateway_pid)
            result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            # CPU time says what a quiet machine would give better than wall time on a
            # shared one: the two stages run at once, so the slower one sets the pace.
            result["export"] = {"exit": code, "seconds": round(seconds, 2),
                                "votes_per_s": round(args.votes / seconds),
                                "cli_cpu_s": round(cpu, 2),
                                "gateway_cpu_s": round(_cpu_s(gateway_pid) - gateway_cpu, 2),
                                "peak_rss_mb": round(rss), "output": output.strip()}
            if code != 0:
                raise SystemExit(f"the export failed (exit {code}):\n{output}")
            result["files_mb"] = {p.name: round(p.stat().st_size / 2**20, 1)
                                  for p in sorted(folder.iterdir())}
            code, output, seconds, rss, cpu = _child(
                [sys.executable, "-m", "pairwise", "rank", str(folder)], env)
            print(output, end="")
            result["rank"] = {"exit": code, "seconds": round(seconds, 2), "cpu_s": round(cpu, 2),
                              "peak_rss_mb": round(rss), "output": output.strip()}
            if not args.keep:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(run.redis_data, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{args.votes // 1000}k-{args.format}" + (
        "-raw" if args.raw_voter_ids else "") + (
        f"-{args.votes_per_entry}-per-entry" if args.votes_per_entry != 1000 else "")
    path = args.out / f"{run_id}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("export", "rank")}))
    print(json.dumps({k: v for k, v in result["export"].items() if k != "output"}))
    print(f"written {path}")
    return 0 if result["export"]["exit"] == 0 and result["rank"]["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
