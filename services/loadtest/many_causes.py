"""`python -m loadtest.many_causes`: one ranker process with many causes, on a scratch cluster
of its own (an embedded Redis, `python -m ingest`, `python -m ranker`), bounded in time.

`--idle` stored causes whose votes are all counted (written straight into Redis as a ranker
leaves them: a vote, its checkpoint, the group past it), then `--active` causes get votes
through ingest for `--duration` seconds: every `--period` s one RecordVotes call brings one
vote to each. Reported as JSON: the ranker's Redis connections (CLIENT LIST by its client
name, sampled every second), the causes it loaded (at start, and in all: the active ones, no
idle one), the warnings and errors in its log, CPU seconds of the ranker (with its fit
workers) and of Redis, the ranker's RSS, the machine's load average, and the audit: every
active cause's checkpoint counts exactly the votes ingest accepted, nothing stays pending,
and idle causes read afterwards load from their checkpoints with their votes.
Loopback only; everything it starts is stopped and its files removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis

from pairwise import checkpoint_fields, internal_auth, keys, proposal_record, vote_log
from pairwise.embedded_redis import EmbeddedRedis
from pairwise.v1 import ingest_pb2, ingest_pb2_grpc, ranker_pb2, ranker_pb2_grpc, types_pb2

CONSUMER = "ranker-0"
# Causes written per pipeline while seeding (about a dozen commands each).
_SEED_PAGE = 1_000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.many_causes", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--idle", type=int, default=100_000, help="stored causes, all counted")
    p.add_argument("--active", type=int, default=1_000, help="causes voted on during the run")
    p.add_argument("--proposals", type=int, default=10, help="proposals of each active cause")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of votes")
    p.add_argument("--period", type=float, default=0.5,
                   help="seconds between RecordVotes calls (one vote per active cause each)")
    p.add_argument("--idle-unload", type=float, default=300.0,
                   help="RANKER_IDLE_UNLOAD_S of the ranker; at most 120: the run then waits "
                        "for every cause loaded to be unloaded again")
    p.add_argument("--timeout", type=float, default=1_200.0, help="the whole run, at most (s)")
    p.add_argument("--out", type=Path, default=Path("run/many_causes/report.json"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep-logs", action="store_true",
                   help="copy the services' logs next to the report")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    deadline = time.monotonic() + args.timeout
    folder = Path(tempfile.mkdtemp(prefix="many-causes-"))
    processes: list[subprocess.Popen[bytes]] = []
    server = EmbeddedRedis(folder / "redis").start()
    try:
        report = _run(args, server, folder, processes, deadline)
    finally:
        if args.keep_logs:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            for log in folder.glob("*.log"):
                shutil.copy(log, args.out.parent / log.name)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"report: {args.out}", file=sys.stderr)
    return 0 if report["ok"] else 1


def _run(args: argparse.Namespace, server: EmbeddedRedis, folder: Path,
         processes: list[subprocess.Popen[bytes]], deadline: float) -> dict[str, Any]:
    client = redis.Redis.from_url(server.url)
    report: dict[str, Any] = {"idle_causes": args.idle, "active_causes": args.active,
                              "duration_s": args.duration, "period_s": args.period,
                              "cpus": os.cpu_count(), "load_average_before": os.getloadavg()}
    started = time.monotonic()
    seed_idle(client, args.idle)
    active = [f"active-{k:05d}" for k in range(args.active)]
    seed_catalogs(client, active, args.proposals)
    report["seed_s"] = round(time.monotonic() - started, 1)
    report["redis_used_memory_mb"] = round(client.info("memory")["used_memory"] / 2**20, 1)

    internal_secret = os.urandom(16).hex()
    environ = {**os.environ, "REDIS_URL": server.url, "PAIRWISE_TOKEN_SECRET": os.urandom(16).hex(),
               internal_auth.SETTING: internal_secret}
    ranker_log = folder / "ranker.log"
    ranker_started = time.monotonic()
    ranker = _spawn("ranker", {**environ, "RANKER_PORT": "0", "RANKER_NAME": CONSUMER,
                               "RANKER_IDLE_UNLOAD_S": str(args.idle_unload)},
                    ranker_log, processes)
    ingest = _spawn("ingest", {**environ, "INGEST_PORT": "0"}, folder / "ingest.log", processes)
    ranker_port = _served_port(ranker, ranker_log, deadline)
    ingest_port = _served_port(ingest, folder / "ingest.log", deadline)
    swept = _wait(lambda: _records(ranker_log, "stored causes swept"), deadline, 600)
    report["start"] = {
        "sweep_s": round(time.monotonic() - ranker_started, 1),
        "sweep_loaded": swept[0].get("loaded") if swept else None,
        "causes_loaded": len(_records(ranker_log, "cause owned")),
        "ranker_cpu_s": round(_cpu_s(ranker.pid), 2)}

    sampler = _Sampler(client, ranker.pid)
    sent = asyncio.run(_vote(f"127.0.0.1:{ingest_port}", internal_secret, active, args,
                             sampler, deadline))
    report["votes_sent"] = sum(sent.values())

    def uncounted() -> list[str]:
        with client.pipeline(transaction=False) as pipe:
            for cause_id in active:
                pipe.hget(keys.checkpoint(cause_id), checkpoint_fields.VOTES_COUNTED)
            stored = pipe.execute()
        return [c for c, n in zip(active, stored, strict=True) if int(n or 0) != sent[c]]

    audit_started = time.monotonic()
    left = _wait(lambda: not uncounted(), deadline, 120)
    report["counted_after_s"] = round(time.monotonic() - audit_started, 1)
    report["run"] = sampler.summary()
    with client.pipeline(transaction=False) as pipe:
        for cause_id in active:
            pipe.xpending(keys.votes(cause_id), keys.RANKER_GROUP)
        pending = sum(int(p["pending"]) for p in pipe.execute())
    rng = np.random.default_rng(args.seed)
    idle_read = [f"idle-{k:06d}" for k in rng.choice(max(args.idle, 1), size=min(5, args.idle),
                                                        replace=False)]
    with grpc.insecure_channel(f"127.0.0.1:{ranker_port}") as channel:
        stub = internal_auth.authenticated(ranker_pb2_grpc.RankerServiceStub(channel),
                                           internal_secret)
        idle_counts = [stub.ReadRanking(ranker_pb2.ReadRankingRequest(cause_id=c, limit=2),
                                        timeout=30).ranking.votes_counted for c in idle_read]
    if args.idle_unload <= 120:
        # Every cause loaded goes back to sleep once idle: all unloaded, none loaded again.
        idle_started = time.monotonic()
        unloaded = _wait(lambda: r_len(client) == 0 and len(_records(
            ranker_log, "cause unloaded")) >= len(_records(ranker_log, "cause owned")),
            deadline, args.idle_unload + 120)
        report["after_idle"] = {
            "all_unloaded": bool(unloaded),
            "seconds": round(time.monotonic() - idle_started, 1),
            "awake_causes": r_len(client), "ranker_rss_mb": _rss_mb(ranker.pid)}
    loads = _records(ranker_log, "cause owned")
    loaded = collections.Counter("idle" if r.get("cause_id", "").startswith("idle-")
                                 else "active" for r in loads)
    troubles = [r for r in _records(ranker_log)
                if r.get("level") in ("WARNING", "ERROR", "CRITICAL")]
    problems = collections.Counter(r.get("msg", "?") for r in troubles)
    first_errors: dict[str, str] = {}
    for record in troubles:
        first_errors.setdefault(record.get("msg", "?"), str(record.get("error", ""))[:200])
    report["audit"] = {
        "every_vote_counted_once": bool(left) and not uncounted(),
        "pending_entries": pending,
        "idle_causes_read": dict(zip(idle_read, idle_counts, strict=True)),
        "loads": dict(loaded), "reloads_of_active_causes": loaded["active"] - len(active),
        "unloads": len(_records(ranker_log, "cause unloaded")),
        "fits": len(_records(ranker_log, "fit")),
        "checkpoints": len(_records(ranker_log, "checkpoint saved")),
        "ranker_warnings_and_errors": dict(problems),
        "first_error_of_each": first_errors}
    report["load_average_after"] = os.getloadavg()
    run = report["run"]
    report["ok"] = bool(
        report["audit"]["every_vote_counted_once"] and not pending and not problems
        and run["ranker_connections_max"] <= 10 and all(n == 1 for n in idle_counts)
        and loaded["idle"] == len(idle_read) and report["start"]["causes_loaded"] == 0
        and report.get("after_idle", {}).get("all_unloaded", True))
    client.close()
    return report


def r_len(client: redis.Redis) -> int:
    """Causes in the awake set."""
    return int(client.scard(keys.AWAKE_CAUSES))


def seed_idle(client: redis.Redis, n: int) -> None:
    """`n` causes of 2 proposals and one vote, counted: the log, its group past the vote and
    a checkpoint of it, as a ranker leaves a cause it put to sleep (the awake set without it).
    """
    from ranker.pair_counts import PairCounts

    counts = PairCounts(2)
    counts.apply(np.array([vote_log.WIN_CODE], dtype=np.uint8), np.array([0]), np.array([1]))
    parts = [bytes(part) for part in counts.snapshot_parts()]
    now_ms = int(time.time() * 1000)
    vote = vote_log.VoteEntry(kind="w", a=0, b=1, vote_id="seed-1", voter_id="seed").fields()
    for start in range(0, n, _SEED_PAGE):
        ids = [f"idle-{k:06d}" for k in range(start, min(start + _SEED_PAGE, n))]
        with client.pipeline(transaction=False) as pipe:
            _catalogs(pipe, ids, 2, now_ms)
            for cause_id in ids:
                pipe.xadd(keys.votes(cause_id), vote, id="1-1")  # type: ignore[arg-type]
                pipe.xgroup_create(keys.votes(cause_id), keys.RANKER_GROUP, id="$")
                pipe.rpush(keys.checkpoint_base(cause_id), *parts)
                pipe.hset(keys.checkpoint(cause_id), mapping={
                    checkpoint_fields.TOKEN: "seed", checkpoint_fields.LAST_ID: "1-1",
                    checkpoint_fields.VOTES_COUNTED: 1, checkpoint_fields.VOTES_UNTRUSTED: 0,
                    checkpoint_fields.VOTES_EXCLUDED: 0, checkpoint_fields.EXCLUSIONS_VERSION: 0,
                    checkpoint_fields.BASE_PARTS: len(parts),
                    checkpoint_fields.DELTAS: 0, checkpoint_fields.CONSUMER: "seed",
                    checkpoint_fields.SAVED_AT_MS: now_ms})
                pipe.hset(keys.vote_stats(cause_id), "accepted", 1)
            pipe.execute()


def seed_catalogs(client: redis.Redis, cause_ids: list[str], n_proposals: int) -> None:
    now_ms = int(time.time() * 1000)
    for start in range(0, len(cause_ids), _SEED_PAGE):
        with client.pipeline(transaction=False) as pipe:
            _catalogs(pipe, cause_ids[start:start + _SEED_PAGE], n_proposals, now_ms)
            pipe.execute()


def _catalogs(pipe: Any, cause_ids: list[str], n_proposals: int, now_ms: int) -> None:
    """Causes of `n_proposals` accepted proposals, as the gateway stores them."""
    pipe.sadd(keys.CAUSES, *cause_ids)
    ids = [f"p{k}" for k in range(n_proposals)]
    records = {}
    for index, proposal_id in enumerate(ids):
        record = json.loads(proposal_record.encode_new(f"Proposition {index}", "seed",
                                                       "ACCEPTED", now_ms))
        records[proposal_id] = json.dumps({**record, "index": index})
    for cause_id in cause_ids:
        pipe.hset(keys.cause(cause_id), mapping={"title": cause_id, "auto_accept": 1,
                                                 "created_at_ms": now_ms})
        pipe.rpush(keys.proposal_ids(cause_id), *ids)
        pipe.hset(keys.proposal_index(cause_id), mapping={p: k for k, p in enumerate(ids)})
        pipe.hset(keys.proposals(cause_id), mapping=records)
        pipe.sadd(keys.accepted(cause_id), *range(n_proposals))
        pipe.set(keys.catalog_version(cause_id), 1)


async def _vote(address: str, internal_secret: str, active: list[str], args: argparse.Namespace,
                sampler: _Sampler, deadline: float) -> dict[str, int]:
    """Every `period` s one RecordVotes call with one vote per active cause, for `duration`
    s; samples once a second. The votes each cause got accepted."""
    rng = np.random.default_rng(args.seed)
    sent = dict.fromkeys(active, 0)
    ids = [f"p{k}" for k in range(args.proposals)]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = internal_auth.authenticated(ingest_pb2_grpc.IngestServiceStub(channel),
                                           internal_secret)
        begin = time.monotonic()
        next_sample = begin
        round_index = 0
        while time.monotonic() - begin < args.duration and time.monotonic() < deadline:
            pairs = np.argsort(rng.random((len(active), args.proposals)), axis=1)[:, :2]
            votes = [types_pb2.ImportedVote(
                vote_id=f"v{round_index}", cause_id=cause_id, voter_id=f"u{round_index % 97}",
                winner_id=ids[int(a)], loser_id=ids[int(b)])
                for cause_id, (a, b) in zip(active, pairs, strict=True)]
            reply = await stub.RecordVotes(ingest_pb2.RecordVotesRequest(votes=votes),
                                           timeout=30)
            if reply.accepted != len(votes):
                raise RuntimeError(f"ingest accepted {reply.accepted} of {len(votes)}")
            for cause_id in active:
                sent[cause_id] += 1
            round_index += 1
            now = time.monotonic()
            if now >= next_sample:
                sampler.sample()
                next_sample = now + 1.0
            await asyncio.sleep(max(0.0, begin + round_index * args.period - time.monotonic()))
        sampler.sample()
    return sent


class _Sampler:
    """Once a second: the ranker's Redis connections, the machine's load, the ranker's RSS."""

    def __init__(self, client: redis.Redis, pid: int) -> None:
        self._client = client
        self._pid = pid
        self._connections: list[int] = []
        self._load: list[float] = []
        self._rss_mb: list[float] = []
        self._started = time.monotonic()
        self._ranker_cpu = _cpu_s(pid)
        self._redis_cpu = self._redis_cpu_s()

    def _redis_cpu_s(self) -> float:
        cpu = self._client.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def sample(self) -> None:
        self._connections.append(sum(1 for c in self._client.client_list()
                                     if c.get("name", "").startswith(f"{CONSUMER}-")))
        self._load.append(os.getloadavg()[0])
        self._rss_mb.append(_rss_mb(self._pid))

    def summary(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self._started
        return {
            "seconds": round(elapsed, 1), "samples": len(self._connections),
            "ranker_connections_max": max(self._connections),
            "ranker_connections_median": float(np.median(self._connections)),
            "ranker_cpu_s": round(_cpu_s(self._pid) - self._ranker_cpu, 2),
            "redis_cpu_s": round(self._redis_cpu_s() - self._redis_cpu, 2),
            "ranker_rss_mb_max": max(self._rss_mb),
            "load_average_1m_mean": round(float(np.mean(self._load)), 2),
            "load_average_1m_max": max(self._load)}


def _spawn(module: str, environ: dict[str, str], log: Path,
           processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", module], env=environ, stdout=out,
                                   stderr=subprocess.STDOUT)
    processes.append(process)
    return process


def _records(log: Path, msg: str | None = None) -> list[dict[str, Any]]:
    """The JSON log records of `log` (those whose message is `msg`, when given)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and (msg is None or record.get("msg") == msg):
            out.append(record)
    return out


def _served_port(process: subprocess.Popen[bytes], log: Path, deadline: float) -> int:
    def port() -> int | None:
        if process.poll() is not None:
            raise RuntimeError(f"{log.name}: exited before serving:\n"
                               f"{log.read_text(errors='replace')[-2000:]}")
        serving = _records(log, "serving")
        return int(serving[0]["port"]) if serving else None

    found = _wait(port, deadline, 60)
    if not found:
        raise RuntimeError(f"{log.name}: not serving")
    return found


def _wait(probe: Any, deadline: float, timeout_s: float) -> Any:
    """The first truthy value of `probe()`, probing every 0.2 s, or the last one at the end."""
    end = min(deadline, time.monotonic() + timeout_s)
    while True:
        value = probe()
        if value or time.monotonic() >= end:
            return value
        time.sleep(0.2)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its child processes (the fit workers)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    for each in [pid, *map(int, children.stdout.split())]:
        try:
            with open(f"/proc/{each}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except FileNotFoundError:
        pass
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
