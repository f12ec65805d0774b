"""One benchmark measurement per process: ``python -m bench.tasks TASK DIR REPEATS BUDGET_S``.

A fresh process per (size, task) makes peak memory (ru_maxrss) attributable to that task.
Inputs and outputs are ``.npy``/``.json`` files in DIR, written by `bench.__main__`:

    votes_*.npy      raw votes (kinds, a, b, new) of the size
    base_*.npy       aggregated pairs before the 1% new votes (i, j, wins_ij, wins_ji)
    next_*.npy       the same after merging them
    <task>.json      timings and figures; <task>_abilities.npy the task's answer
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.special import expit

from bench import references
from ranker import bradley_terry, scores
from ranker.pair_counts import TIE, PairCounts

PAIR_FIELDS = ("i", "j", "wins_ij", "wins_ji")


def _rss_mb() -> float:
    """Resident set size now, MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


Pairs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load_pairs(folder: Path, prefix: str) -> Pairs:
    i, j, wins_ij, wins_ji = (np.load(folder / f"{prefix}_{name}.npy") for name in PAIR_FIELDS)
    return i, j, wins_ij, wins_ji


def save_pairs(folder: Path, prefix: str, pairs: tuple[np.ndarray, ...]) -> None:
    for name, array in zip(PAIR_FIELDS, pairs, strict=True):
        np.save(folder / f"{prefix}_{name}.npy", array)


def _timed(call: Callable[[], object], repeats: int, budget_s: float) -> tuple[list[float], object]:
    """Run `call` `repeats` times (fewer if the first run alone exceeds `budget_s` / repeats
    and the total would overrun `budget_s`; always at least once); (seconds each, last result)."""
    times: list[float] = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
        if sum(times) + times[-1] > budget_s and len(times) < repeats:
            break
    return times, result


def exact_scores(abilities: np.ndarray) -> np.ndarray:
    """100 · mean_{j≠i} σ(θi − θj), exactly, in row blocks: the O(n²) oracle for scores."""
    n = abilities.shape[0]
    out = np.empty(n)
    for start in range(0, n, 1024):
        block = abilities[start:start + 1024, None] - abilities[None, :]
        out[start:start + 1024] = (expit(block).sum(axis=1) - 0.5) * 100.0 / (n - 1)
    return out


def task_aggregate(folder: Path, repeats: int, budget_s: float) -> dict:
    kinds, a, b, new = (np.load(folder / f"votes_{k}.npy") for k in ("kinds", "a", "b", "new"))
    base = ~new
    kinds_base, a_base, b_base = kinds[base], a[base], b[base]
    kinds_new, a_new, b_new = kinds[new], a[new], b[new]
    n_items = int(max(a.max(), b.max())) + 1
    before = _rss_mb()

    def apply_all() -> PairCounts:
        counts = PairCounts(n_items)
        counts.apply(kinds_base, a_base, b_base)
        return counts

    apply_times, counts = _timed(apply_all, repeats, budget_s)
    assert isinstance(counts, PairCounts)
    apply_peak = _peak_mb() - before
    steady_bytes = counts.nbytes
    base_pairs = counts.subset(np.arange(n_items))
    save_pairs(folder, "base", base_pairs)
    merge_times, compact_times = [], []
    merged = counts
    for _ in range(repeats):
        merged = counts.copy()
        started = time.perf_counter()
        merged.apply(kinds_new, a_new, b_new)
        merge_times.append(time.perf_counter() - started)
        merged.compact()  # what the next read (a fit's subset, a snapshot) would pay
        compact_times.append(time.perf_counter() - started)
    batch = 2_000  # the ranker's read batch
    batch_times = []
    streamed = counts.copy()
    for start in range(0, min(kinds_new.shape[0], 50 * batch), batch):
        started = time.perf_counter()
        streamed.apply(kinds_new[start:start + batch], a_new[start:start + batch],
                       b_new[start:start + batch])
        batch_times.append(time.perf_counter() - started)
    save_pairs(folder, "next", merged.subset(np.arange(n_items)))
    return {
        "apply_votes": int(base.sum()), "apply_s": apply_times, "apply_peak_mb": apply_peak,
        "merge_votes": int(new.sum()), "merge_s": merge_times,
        "merge_and_compact_s": compact_times, "batch_2000_s": batch_times,
        "n_pairs": counts.n_pairs, "n_pairs_after_merge": merged.n_pairs,
        "bytes_per_pair": (steady_bytes - 40 * n_items) / counts.n_pairs,
        "pair_counts_mb": steady_bytes / 2**20,
    }


def _fit_task(folder: Path, repeats: int, budget_s: float, warm: bool) -> dict:
    pairs = load_pairs(folder, "base")
    n_items = int(np.load(folder / "truth.npy").shape[0])
    init = None
    if warm:
        init = bradley_terry.fit(n_items, *pairs).abilities
        pairs = load_pairs(folder, "next")
    before = _rss_mb()
    times, fit = _timed(lambda: bradley_terry.fit(n_items, *pairs, init=init), repeats, budget_s)
    assert isinstance(fit, bradley_terry.BTFit)
    peak = _peak_mb() - before
    name = "ours_warm" if warm else "ours_cold"
    np.save(folder / f"{name}_abilities.npy", fit.abilities)
    figures = {"seconds": times, "peak_mb": peak, "iterations": fit.iterations,
               "exact_std_errors": fit.exact_std_errors}
    if not warm:
        truth = np.load(folder / "truth.npy")
        truth = truth - truth.mean()
        covered = (fit.ci_low <= truth) & (truth <= fit.ci_high)
        figures["coverage_95"] = float(covered.mean())
        figures["median_std_error"] = float(np.median(fit.std_errors))
        score_times, values = _timed(
            lambda: scores.win_probability_scores(fit.abilities), max(repeats, 5), 30.0)
        figures["scores_s"] = score_times
        figures["scores_max_error"] = float(np.max(np.abs(values - exact_scores(fit.abilities))))
        se_times, _ = _timed(lambda: bradley_terry.std_errors(
            n_items, fit.abilities, *pairs), repeats, budget_s)
        figures["std_errors_s"] = se_times
        bare_times, _ = _timed(lambda: bradley_terry.fit(n_items, *pairs,
                                                         with_std_errors=False),
                               repeats, budget_s)
        figures["without_std_errors_s"] = bare_times
    return figures


def task_ours_cold(folder: Path, repeats: int, budget_s: float) -> dict:
    return _fit_task(folder, repeats, budget_s, warm=False)


def task_ours_warm(folder: Path, repeats: int, budget_s: float) -> dict:
    return _fit_task(folder, repeats, budget_s, warm=True)


def _reference_task(name: str, run: Callable[..., np.ndarray], penalised: bool):
    def task(folder: Path, repeats: int, budget_s: float) -> dict:
        pairs = load_pairs(folder, "base")
        n_items = int(np.load(folder / "truth.npy").shape[0])
        args = (n_items, *pairs, bradley_terry.PRIOR_STRENGTH) if penalised \
            else (n_items, *pairs)
        before = _rss_mb()
        times, abilities = _timed(lambda: run(*args), repeats, budget_s)
        peak = _peak_mb() - before
        np.save(folder / f"{name}_abilities.npy", np.asarray(abilities))
        return {"seconds": times, "peak_mb": peak}
    return task


def task_choix(folder: Path, repeats: int, budget_s: float) -> dict:
    """choix.ilsr_pairwise_dense; its dense n×n input is built before the clock starts."""
    import choix

    pairs = load_pairs(folder, "base")
    n_items = int(np.load(folder / "truth.npy").shape[0])
    matrix = references.comparison_matrix(n_items, *pairs)
    before = _rss_mb()
    times, abilities = _timed(
        lambda: choix.ilsr_pairwise_dense(matrix, alpha=0.0, tol=1e-8, max_iter=10_000),
        repeats, budget_s)
    peak = _peak_mb() - before
    abilities = np.asarray(abilities)
    np.save(folder / "choix_abilities.npy", abilities - abilities.mean())
    return {"seconds": times, "peak_mb": peak}


def task_choix_std_errors(folder: Path, repeats: int, budget_s: float) -> dict:
    """choix.ilsr_pairwise_dense plus the standard errors a choix user would add, so that a
    fit which computes them is compared with the same work: the Fisher information at the
    estimate as a dense Laplacian L (from the same n×n input) and the covariance of the
    centred abilities inv(L + 11ᵀ/n) − 11ᵀ/n (L's pseudo-inverse; the unpenalised MLE
    leaves L singular along 1). The dense input is built before the clock starts."""
    import choix

    pairs = load_pairs(folder, "base")
    n_items = int(np.load(folder / "truth.npy").shape[0])
    matrix = references.comparison_matrix(n_items, *pairs)
    counts = matrix + matrix.T

    def run() -> tuple[np.ndarray, np.ndarray]:
        abilities = choix.ilsr_pairwise_dense(matrix, alpha=0.0, tol=1e-8, max_iter=10_000)
        p_win = expit(abilities[:, None] - abilities[None, :])
        information = counts * p_win * p_win.T
        laplacian = np.diag(information.sum(axis=1)) - information
        covariance = np.linalg.inv(laplacian + 1.0 / n_items) - 1.0 / n_items
        return abilities, np.sqrt(np.diag(covariance))

    before = _rss_mb()
    times, result = _timed(run, repeats, budget_s)
    peak = _peak_mb() - before
    assert isinstance(result, tuple)
    np.save(folder / "choix_std_errors.npy", result[1])
    return {"seconds": times, "peak_mb": peak}


def task_reference_mle(folder: Path, repeats: int, budget_s: float) -> dict:
    """The tightly converged MLEs: penalised on base and next data, unpenalised on base."""
    figures = {}
    lam = bradley_terry.PRIOR_STRENGTH
    for prefix, start_name in (("base", "ours_cold"), ("next", "ours_warm")):
        pairs = load_pairs(folder, prefix)
        start = np.load(folder / f"{start_name}_abilities.npy")
        started = time.perf_counter()
        mle, grad = references.polish(start, *pairs, lam)
        np.save(folder / f"mle_{prefix}.npy", mle)
        figures[f"mle_{prefix}"] = {"max_abs_grad": grad,
                                    "seconds": time.perf_counter() - started}
    if (folder / "choix_abilities.npy").exists():
        pairs = load_pairs(folder, "base")
        mle, grad = references.polish(np.load(folder / "choix_abilities.npy"), *pairs, 0.0)
        np.save(folder / "mle_unpenalised.npy", mle)
        figures["mle_unpenalised"] = {"max_abs_grad": grad}
    return figures


def task_responsiveness(folder: Path, repeats: int, budget_s: float) -> dict:
    """Event-loop stalls of a ranker process while it refits this size, as `FitScheduler._fit`
    does it: cut the fit input in a thread, fit in the worker pool, build the ranking in a
    thread. A 1 ms ticker on the loop records how late each tick runs: what a GetRanking
    (served on that loop, ~1 ms of its own for a 100-entry page) would wait."""
    import asyncio

    from ranker.fit_pool import FitPool
    from ranker.ranking import Catalog, fit_input, ranking_from_fit

    kinds, a, b, new = (np.load(folder / f"votes_{k}.npy") for k in ("kinds", "a", "b", "new"))
    n_items = int(np.load(folder / "truth.npy").shape[0])
    counts = PairCounts(n_items)
    counts.apply(kinds[~new], a[~new], b[~new])
    ids = tuple(f"p{k:06d}" for k in range(n_items))
    catalog = Catalog(1, ids, ids, np.arange(n_items))

    async def run() -> dict:
        loop = asyncio.get_running_loop()
        pool = FitPool(1)
        lags: list[float] = []
        fits: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            while not stop.is_set():
                started = loop.time()
                await asyncio.sleep(0.001)
                lags.append(loop.time() - started - 0.001)

        await pool.fit(2, np.array([0]), np.array([1]), np.array([1.0]), np.array([0.0]),
                       prior_strength=bradley_terry.PRIOR_STRENGTH, init=None)  # warm worker
        ticking = asyncio.create_task(ticker())
        previous = None
        for round_ in range(max(repeats, 2)):
            if round_:
                counts.apply(kinds[new][round_::repeats], a[new][round_::repeats],
                             b[new][round_::repeats])
            started = time.perf_counter()
            inputs = await asyncio.to_thread(fit_input, "bench", catalog, counts,
                                             votes_counted=0, last_vote_entry_id="0-0")
            fit = await pool.fit(inputs.n_items, inputs.i, inputs.j, inputs.wins_ij,
                                 inputs.wins_ji, prior_strength=bradley_terry.PRIOR_STRENGTH,
                                 init=previous.abilities_for(inputs.items) if previous else None)
            previous = await asyncio.to_thread(ranking_from_fit, inputs, fit)
            fits.append(time.perf_counter() - started)
        stop.set()
        await ticking
        await pool.close()
        lag_ms = 1000 * np.array(lags)
        # A request arriving while the loop is stalled for L ms waits up to L: spread one
        # request per millisecond over every stall, as arrivals at a steady rate would be.
        waits = np.concatenate([np.linspace(lag, 0.0, max(1, int(lag)) + 1)[:-1]
                                if lag >= 1.0 else [lag] for lag in lag_ms])
        return {"refit_s": fits, "ticks": len(lags),
                "wait_p50_ms": float(np.percentile(waits, 50)),
                "wait_p99_ms": float(np.percentile(waits, 99)),
                "wait_max_ms": float(lag_ms.max())}

    return asyncio.run(run())


def task_ranker_reads(folder: Path, repeats: int, budget_s: float) -> dict:
    """GetRanking's own path under refits: a real ranker process (`python -m ranker`, default
    fit settings) on an embedded Redis holding this size as one cause, answering
    ReadRanking(offset 0, limit 100) every 20 ms while new votes keep it refitting.

    The cause's catalog is written as the gateway writes it (every proposal accepted) and
    the base votes as a ranker checkpoint (counts at entry "0-1"), so the ranker starts with
    all of them at once; then rounds of 1% new votes (the size's held-out ones, cycled) are
    XADDed as an import writes them (entries of 1,000 votes), each round once the previous
    one shows in a fit.
    `repeats` windows of 20 s; latencies are client-side, loopback.
    """
    import multiprocessing
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import grpc
    import redis

    from pairwise import checkpoint_fields, internal_auth, keys
    from pairwise.embedded_redis import EmbeddedRedis, free_port
    from pairwise.v1 import ranker_pb2, ranker_pb2_grpc

    kinds, a, b, new = (np.load(folder / f"votes_{k}.npy") for k in ("kinds", "a", "b", "new"))
    n_items = int(np.load(folder / "truth.npy").shape[0])
    counts = PairCounts(n_items)
    counts.apply(kinds[~new], a[~new], b[~new])
    n_base = int(np.count_nonzero(~new))
    round_votes = max(1, n_base // 100)
    cause_id = "bench-34k"
    window_s, period_s, limit = 20.0, 0.020, 100

    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis").start()
        ranker = writer = None
        client = redis.Redis.from_url(server.url)
        try:
            now_ms = int(time.time() * 1000)
            with client.pipeline(transaction=False) as pipe:
                pipe.sadd(keys.CAUSES, cause_id)
                pipe.hset(keys.cause(cause_id), mapping={
                    "title": "bench", "auto_accept": 1, "created_at_ms": now_ms})
                for start in range(0, n_items, 5_000):
                    block = range(start, min(start + 5_000, n_items))
                    ids = [f"p{k:06d}" for k in block]
                    pipe.rpush(keys.proposal_ids(cause_id), *ids)
                    pipe.hset(keys.proposal_index(cause_id),
                              mapping=dict(zip(ids, block, strict=True)))
                    pipe.hset(keys.proposals(cause_id), mapping={
                        pid: json.dumps({"text": f"Proposition {k}", "author_id": "bench",
                                         "status": "ACCEPTED", "reason": "", "index": k,
                                         "created_at_ms": now_ms})
                        for pid, k in zip(ids, block, strict=True)})
                    pipe.sadd(keys.accepted(cause_id), *block)
                pipe.incr(keys.catalog_version(cause_id))
                pipe.xgroup_create(keys.votes(cause_id), keys.RANKER_GROUP, id="0",
                                   mkstream=True)
                # As the ranker stores a checkpoint: a base snapshot in parts, no deltas yet.
                parts = counts.snapshot_parts()
                for start in range(0, len(parts), 16):
                    pipe.rpush(keys.checkpoint_base(cause_id), *parts[start:start + 16])
                # Every seeded vote trusted, no exclusions (version 0): the ranker takes the
                # counts as they are instead of counting the (empty) log again.
                pipe.hset(keys.checkpoint(cause_id), mapping={
                    checkpoint_fields.TOKEN: "bench:seed", checkpoint_fields.LAST_ID: "0-1",
                    checkpoint_fields.VOTES_COUNTED: n_base,
                    checkpoint_fields.VOTES_UNTRUSTED: 0, checkpoint_fields.VOTES_EXCLUDED: 0,
                    checkpoint_fields.EXCLUSIONS_VERSION: 0,
                    checkpoint_fields.BASE_PARTS: len(parts), checkpoint_fields.DELTAS: 0,
                    checkpoint_fields.CONSUMER: "bench", checkpoint_fields.SAVED_AT_MS: now_ms})
                pipe.execute()
            del counts
            port = free_port()
            internal_secret = os.urandom(16).hex()
            env = dict(os.environ, REDIS_URL=server.url, RANKER_PORT=str(port),
                       **{internal_auth.SETTING: internal_secret})
            with open(Path(tmp) / "ranker.log", "ab") as log:
                ranker = subprocess.Popen([sys.executable, "-m", "ranker"], env=env,
                                          stdout=log, stderr=subprocess.STDOUT)
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = internal_auth.authenticated(ranker_pb2_grpc.RankerServiceStub(channel),
                                               internal_secret)
            request = ranker_pb2.ReadRankingRequest(cause_id=cause_id, offset=0, limit=limit)
            started = time.monotonic()
            while True:  # the checkpoint loaded and the first (cold) fit published
                if time.monotonic() - started > 120 or ranker.poll() is not None:
                    raise RuntimeError("ranker did not publish the checkpointed votes")
                try:
                    reply = stub.ReadRanking(request, timeout=10)
                    if reply.ranking.votes_counted >= n_base:
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.2)

            # The writer runs in its own process: in this one it would hold the GIL while
            # the reads are timed.
            spawn = multiprocessing.get_context("spawn")
            stop = spawn.Event()
            counted = spawn.Value("q", reply.ranking.votes_counted)
            written = spawn.Value("q", n_base)
            writer = spawn.Process(target=_write_vote_rounds, args=(
                server.url, cause_id, folder, round_votes, counted, written, stop))
            writer.start()
            fitted_at = reply.ranking.fitted_at_ms
            latencies: list[float] = []
            window_p99: list[float] = []
            refits = 0
            errors: dict[str, int] = {}
            for _ in range(max(1, repeats)):
                window: list[float] = []
                begin = time.perf_counter()
                tick = 0
                while time.perf_counter() - begin < window_s:
                    wait = begin + tick * period_s - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    tick += 1
                    sent = time.perf_counter()
                    try:
                        reply = stub.ReadRanking(request, timeout=10)
                    except grpc.RpcError as exc:
                        # A failed read counts with the time it took to fail.
                        window.append(time.perf_counter() - sent)
                        code = exc.code().name  # type: ignore[attr-defined]
                        errors[code] = errors.get(code, 0) + 1
                        continue
                    window.append(time.perf_counter() - sent)
                    if reply.ranking.fitted_at_ms != fitted_at:
                        refits += 1
                        fitted_at = reply.ranking.fitted_at_ms
                    counted.value = reply.ranking.votes_counted
                latencies += window
                window_p99.append(float(np.percentile(1000 * np.array(window), 99)))
            stop.set()
            writer.join(60)
            channel.close()
            ms = 1000 * np.array(latencies)
            return {**_ranker_log_figures(Path(tmp) / "ranker.log"),
                    "reads": len(latencies), "windows": len(window_p99),
                    "window_s": window_s, "period_ms": 1000 * period_s, "limit": limit,
                    "refits": refits, "errors": errors,
                    "votes_added": written.value - n_base,
                    "votes_per_round": round_votes, "window_p99_ms": window_p99,
                    "p50_ms": float(np.percentile(ms, 50)),
                    "p95_ms": float(np.percentile(ms, 95)),
                    "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}
        finally:
            if writer is not None and writer.is_alive():
                writer.kill()
                writer.join()
            if ranker is not None and ranker.poll() is None:
                ranker.terminate()
                try:
                    ranker.wait(30)
                except subprocess.TimeoutExpired:
                    ranker.kill()
                    ranker.wait()
            client.close()
            server.stop()
            # The ranker's own log (fits, checkpoints) explains the slow reads, if any.
            shutil.copy(Path(tmp) / "ranker.log", folder / "ranker_reads.log")


def _ranker_log_figures(path: Path) -> dict:
    """Checkpoints and fits the ranker logged (JSON lines): how many, their sizes and times."""
    saves: list[dict] = []
    fits: list[float] = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == "checkpoint saved":
            saves.append(record)
        elif record.get("msg") == "fit":
            fits.append(float(record["seconds"]))
    figures: dict = {"checkpoints": len(saves), "fits_logged": len(fits)}
    if saves:
        sizes = [int(record["bytes"]) for record in saves]
        seconds = [float(record["seconds"]) for record in saves]
        figures |= {"checkpoint_median_mb": float(np.median(sizes)) / 1e6,
                    "checkpoint_max_mb": max(sizes) / 1e6,
                    "checkpoint_median_s": float(np.median(seconds)),
                    "checkpoint_max_s": max(seconds)}
    if fits:
        figures |= {"fit_median_s": float(np.median(fits)), "fit_max_s": max(fits)}
    return figures


def _write_vote_rounds(redis_url: str, cause_id: str, folder: Path, round_votes: int,
                       counted, written, stop) -> None:
    """`task_ranker_reads`' vote source (a child process): XADD rounds of `round_votes` of
    the held-out votes (cycled) as an import writes them (entries of
    `vote_log.MAX_VOTES_PER_ENTRY` votes, pipelined 2,000 votes at a time), each round once
    the reads show the previous one counted (`counted`), until `stop` is set."""
    import redis

    from pairwise import keys, vote_log

    kinds, a, b, new = (np.load(folder / f"votes_{k}.npy") for k in ("kinds", "a", "b", "new"))
    kinds, a, b = kinds[new], a[new], b[new]
    stream = keys.votes(cause_id)
    client = redis.Redis.from_url(redis_url)
    per_entry = vote_log.MAX_VOTES_PER_ENTRY
    n = 0
    try:
        while not stop.is_set():
            for start in range(0, round_votes, 2_000):
                with client.pipeline(transaction=False) as pipe:
                    left = min(2_000, round_votes - start)
                    while left:
                        size = min(per_entry, left)
                        k = np.arange(n, n + size) % kinds.shape[0]
                        letters = "".join(vote_log.TIE if kind == TIE else vote_log.WIN
                                          for kind in kinds[k].tolist())
                        pipe.xadd(stream, vote_log.batch_fields(  # type: ignore[arg-type]
                            letters, a[k].tolist(), b[k].tolist(),
                            [f"b{m}" for m in range(n, n + size)],
                            [f"u{m % 997}" for m in range(n, n + size)]))
                        n += size
                        left -= size
                    pipe.execute()
            written.value += round_votes
            while not stop.is_set() and counted.value < written.value:
                time.sleep(0.05)
    finally:
        client.close()


TASKS: dict[str, Callable[[Path, int, float], dict]] = {
    "aggregate": task_aggregate,
    "ours_cold": task_ours_cold,
    "ours_warm": task_ours_warm,
    "choix": task_choix,
    "choix_std_errors": task_choix_std_errors,
    "lbfgs": _reference_task("lbfgs", references.lbfgs, penalised=True),
    "newton_cg": _reference_task("newton_cg", references.newton_cg, penalised=True),
    "reference_mle": task_reference_mle,
    "responsiveness": task_responsiveness,
    "ranker_reads": task_ranker_reads,
}


def main(argv: list[str]) -> None:
    task, folder, repeats, budget_s = argv[0], Path(argv[1]), int(argv[2]), float(argv[3])
    figures = TASKS[task](folder, repeats, budget_s)
    figures["peak_rss_mb"] = _peak_mb()
    (folder / f"{task}.json").write_text(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
