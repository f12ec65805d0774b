"""`python -m loadtest.archive_bench`: a cause's Redis memory open and archived, and the round
trip of its archive into a new cause.

Starts a scratch cluster (run folder <run-dir>/archive-bench, ports 50171-50173 and 6397, an
empty Redis, archives in its folder), creates a cause with --proposals accepted proposals,
imports --votes votes through ImportVotes (the path that writes receipts; ~7 votes per
voter, 10 % ties, 2 % skips) and has --voters voters cast --votes-per-voter votes each through
NextPair and SubmitVote (seen pairs, used prompt tokens, rate-limit state). Once the ranker
counted them all it measures the cause's memory by key family (loadtest.redis_memory), closes
the cause, archives it (ArchiveCause), measures again, then imports the archive folder as a
new cause (`python -m pairwise import --close --check`, a child process) and reports whether
it ranks as the archive did. JSON in <out>/<run_id>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis

from loadtest.redis_memory import cause_memory
from pairwise import embedded_redis
from pairwise.v1 import gateway_pb2 as gw
from pairwise.v1 import gateway_pb2_grpc, types_pb2

PORTS = {"GATEWAY_PORT": "50171", "INGEST_PORT": "50172", "RANKER_PORT": "50173",
         "REDIS_PORT": "6397"}
VOTES_PER_CALL = 100_000
VOTES_PER_MESSAGE = 5_000
VOTERS_AT_ONCE = 32


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.archive_bench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--votes", type=int, default=1_000_000, help="imported votes")
    p.add_argument("--proposals", type=int, default=1_000)
    p.add_argument("--voters", type=int, default=1_000, help="interactive voters")
    p.add_argument("--votes-per-voter", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", type=Path, default=Path(os.environ.get("RUN_DIR") or "run"))
    p.add_argument("--out", type=Path, default=Path("results/archive"))
    return p


def _imported(cause_id: str, n_votes: int, n_proposals: int,
              seed: int) -> Iterator[list[gw.ImportVotesRequest]]:
    rng = np.random.default_rng(seed)
    abilities = rng.normal(0, 1, n_proposals)
    n_voters = max(1, n_votes // 7)
    for first in range(0, n_votes, VOTES_PER_CALL):
        call = []
        for start in range(first, min(first + VOTES_PER_CALL, n_votes), VOTES_PER_MESSAGE):
            m = min(VOTES_PER_MESSAGE, n_votes - start)
            a = rng.integers(0, n_proposals, m)
            b = (a + rng.integers(1, n_proposals, m)) % n_proposals
            flip = rng.random(m) > 1 / (1 + np.exp(abilities[b] - abilities[a]))
            a, b = np.where(flip, b, a), np.where(flip, a, b)
            kind = rng.random(m)
            voters = rng.integers(0, n_voters, m)
            call.append(gw.ImportVotesRequest(votes=[
                types_pb2.ImportedVote(vote_id=f"imp-{start + k}", cause_id=cause_id,
                                       voter_id=f"voter-{voters[k]}", winner_id=f"p{a[k]}",
                                       loser_id=f"p{b[k]}", tie=bool(kind[k] < 0.1),
                                       skip=bool(kind[k] > 0.98))
                for k in range(m)]))
        yield call


def _until(probe: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float,
           what: str) -> Any:
    """Call `probe` until `done` says yes (UNAVAILABLE answers are tried again)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = probe()
            if done(value):
                return value
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from cluster import control
    from cluster.run_folder import RunFolder
    from cluster.tokens import resolve

    run = RunFolder((args.run_dir / "archive-bench").absolute())
    shutil.rmtree(run.redis_data, ignore_errors=True)
    archives = run.root / "archives"
    shutil.rmtree(archives, ignore_errors=True)
    environ = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | PORTS | {
        "GATEWAY_ARCHIVE_DIR": str(archives)}
    result: dict[str, Any] = {"votes_imported": args.votes, "proposals": args.proposals,
                              "voters": args.voters, "votes_per_voter": args.votes_per_voter,
                              "seed": args.seed}
    try:
        with control.running(run, environ) as addr:
            tokens = resolve(run.tokens_file, environ)
            admin = (("authorization", f"Bearer {tokens.admin}"),)
            platform = (("authorization", f"Bearer {tokens.platform}"),)
            cause_id = f"archive-bench-{uuid.uuid4().hex[:8]}"
            client = redis.Redis.from_url(embedded_redis.url(
                int(PORTS["REDIS_PORT"]), password=tokens.redis_password))
            with grpc.insecure_channel(addr) as channel:
                stub = gateway_pb2_grpc.GatewayServiceStub(channel)
                stub.CreateCause(gw.CreateCauseRequest(cause_id=cause_id, title="bench",
                                                       pair_selection=types_pb2.PAIR_SELECTION_UNIFORM),
                                 metadata=admin, timeout=10)
                for start in range(0, args.proposals, 1000):
                    stub.AddProposals(gw.AddProposalsRequest(cause_id=cause_id, proposals=[
                        types_pb2.NewProposal(proposal_id=f"p{k}", text=f"proposal {k}")
                        for k in range(start, min(start + 1000, args.proposals))]),
                        metadata=admin, timeout=60)
                started = time.perf_counter()
                for call in _imported(cause_id, args.votes, args.proposals, args.seed):
                    reply = stub.ImportVotes(iter(call), metadata=admin, timeout=300)
                    assert reply.rejected == 0, reply.errors[:3]
                result["import_s"] = round(time.perf_counter() - started, 1)
                started = time.perf_counter()

                def voter_votes(voter: int) -> int:
                    for _ in range(args.votes_per_voter):
                        pair = stub.NextPair(gw.NextPairRequest(
                            cause_id=cause_id, voter_id=f"web-{voter}"), metadata=platform,
                            timeout=30)
                        stub.SubmitVote(gw.SubmitVoteRequest(
                            cause_id=cause_id, voter_id=f"web-{voter}",
                            prompt_token=pair.prompt_token, choice=types_pb2.CHOICE_LEFT),
                            metadata=platform, timeout=30)
                    return args.votes_per_voter

                # Voters at once share the vote store's fsyncs.
                with ThreadPoolExecutor(VOTERS_AT_ONCE) as pool:
                    interactive = sum(pool.map(voter_votes, range(args.voters)))
                result["interactive_votes"] = interactive
                result["interactive_s"] = round(time.perf_counter() - started, 1)
                total = args.votes + interactive
                _until(lambda: stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, limit=1),
                                               metadata=admin, timeout=60),
                       lambda r: r.votes_counted == total, 600, "the ranker counting every vote")
                result["open"] = cause_memory(client, cause_id)
                stub.CloseCause(gw.CloseCauseRequest(cause_id=cause_id, reason="bench"),
                                metadata=admin, timeout=10)
                final = _until(lambda: stub.GetRanking(gw.GetRankingRequest(
                    cause_id=cause_id, limit=1), metadata=admin, timeout=60),
                    lambda r: r.final, 600, "the final ranking")
                started = time.perf_counter()
                archived = _until(lambda: stub.ArchiveCause(gw.ArchiveCauseRequest(
                    cause_id=cause_id, reason="bench"), metadata=admin, timeout=300),
                    lambda _: True, 600, "the archive")
                result["archive_s"] = round(time.perf_counter() - started, 1)
                result["keys_released"] = archived.keys_released
                result["archived"] = cause_memory(client, cause_id)
                result["archived"]["votes"] = archived.votes_archived
                after = stub.GetRanking(gw.GetRankingRequest(cause_id=cause_id, limit=1),
                                        metadata=admin, timeout=10)
                result["ranking_kept"] = (after.votes_counted == final.votes_counted
                                          and after.final and list(after.entries)
                                          == list(final.entries))
            result["archived_over_open"] = round(
                result["archived"]["bytes"] / result["open"]["bytes"], 4)
            folder = Path(archived.cause.archive)
            result["archive_files_mb"] = {p.name: round(p.stat().st_size / 2**20, 1)
                                          for p in sorted(folder.iterdir())}
            env = {**environ, "PAIRWISE_ADMIN_TOKEN": tokens.admin,
                   "PAIRWISE_PLATFORM_TOKEN": tokens.platform}
            started = time.perf_counter()
            child = subprocess.run(
                [sys.executable, "-m", "pairwise", "import", str(folder), "--cause",
                 f"{cause_id}-copy", "--close", "--check", "--gateway", addr],
                env=env, capture_output=True, text=True, timeout=1800)
            print(child.stdout + child.stderr, end="")
            result["round_trip"] = {"exit": child.returncode,
                                    "seconds": round(time.perf_counter() - started, 1),
                                    "output": (child.stdout + child.stderr).strip()}
            client.close()
    finally:
        shutil.rmtree(run.redis_data, ignore_errors=True)
        shutil.rmtree(archives, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{args.votes // 1000}k-s{args.seed}"
    path = args.out / f"{run_id}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: result[k] for k in ("archived_over_open", "keys_released", "archive_s",
                                      "ranking_kept")}
    summary["open_mb"] = round(result["open"]["bytes"] / 2**20, 1)
    summary["archived_mb"] = round(result["archived"]["bytes"] / 2**20, 3)
    print(json.dumps(summary))
    print(f"written {path}")
    return 0 if result["round_trip"]["exit"] == 0 and result["ranking_kept"] else 1


if __name__ == "__main__":
    sys.exit(main())
