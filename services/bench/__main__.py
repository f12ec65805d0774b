"""Run the ranking benchmarks, print one table per size and write them as JSON.

    python -m bench [--sizes 1k,10k,34k] [--repeats 3] [--out results/bench]

Each measurement runs in its own process (`bench.tasks`) so its peak memory is its own; the
figures are medians over `--repeats` runs (a measurement whose runs would overrun `--budget`
seconds is run fewer times, at least once, and the table says how many; a reference fitter
still running after `--timeout` seconds is stopped and shown as not finished).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse
import scipy.sparse.csgraph

from bench import datasets, references, tasks
from ranker import bradley_terry
from ranker.pair_counts import TIE

REFERENCES = ("choix", "lbfgs", "newton_cg")
LABELS = {
    "ours_cold": "pairwise fit, cold",
    "ours_warm": "pairwise fit, warm (+1% votes)",
    "choix": "choix ilsr_pairwise_dense",
    "lbfgs": "scipy L-BFGS-B (aggregated)",
    "newton_cg": "scipy Newton-CG (exact Hv)",
}
CHOIX_MAX_ITEMS = 2_000  # choix needs dense n×n matrices
RESPONSIVENESS_MIN_ITEMS = 30_000  # the event-loop measurement runs at the largest size


def _task_env(blas_threads: int) -> dict[str, str]:
    env = dict(os.environ)
    if blas_threads > 0:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(blas_threads)
    return env


def _run_task(task: str, folder: Path, repeats: int, budget_s: float,
              timeout_s: float | None = None, env: dict[str, str] | None = None) -> dict:
    """Run one task in its own process; a reference still running after `timeout_s` is
    stopped and reported as not finished."""
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "bench.tasks", task, str(folder), str(repeats),
                        str(budget_s)], check=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return {"timed_out_s": timeout_s, "wall_s": time.perf_counter() - started}
    figures = json.loads((folder / f"{task}.json").read_text())
    figures["wall_s"] = time.perf_counter() - started
    return figures


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _machine() -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory_kb / 2**20, 1),
        "python": platform.python_version(), "numpy": np.__version__,
        "scipy": scipy.__version__, "commit": commit,
        "env": {name: os.environ.get(name) for name in
                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                 "OMP_NUM_THREADS")},
    }


def run_size(name: str, repeats: int, budget_s: float, timeout_s: float,
             env: dict[str, str]) -> dict:
    """Generate one size's votes, run every task on them, and return the figures."""
    votes = datasets.SIZES[name]()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        folder = Path(tmp)
        for field in ("kinds", "a", "b", "new"):
            np.save(folder / f"votes_{field}.npy", getattr(votes, field))
        np.save(folder / "truth.npy", votes.abilities)
        results: dict = {"size": name, "n_items": votes.n_items,
                         "votes": votes.n_base_votes, "new_votes": int(votes.new.sum()),
                         "generator": votes.description, "tasks": {},
                         "load_average_before": os.getloadavg()}
        order = ["aggregate", "ours_cold", "ours_warm"]
        if votes.n_items <= CHOIX_MAX_ITEMS and _unpenalised_mle_exists(votes):
            order += ["choix", "choix_std_errors"]
        order += ["lbfgs", "newton_cg", "reference_mle"]
        if votes.n_items >= RESPONSIVENESS_MIN_ITEMS:
            order += ["responsiveness", "ranker_reads"]
        for task in order:
            print(f"[{name}] {task} ...", file=sys.stderr, flush=True)
            limit = timeout_s if task in REFERENCES else None
            results["tasks"][task] = _run_task(task, folder, repeats, budget_s, limit, env)
        results["load_average_after"] = os.getloadavg()
        _accuracy(folder, results)
    return results


def _unpenalised_mle_exists(votes: datasets.Votes) -> bool:
    """Whether the plain MLE choix computes exists: every item can be reached from every
    other along wins in the base votes (a strongly connected graph); sparse data with an
    all-win item has none. Ties count both ways."""
    n = votes.n_items
    base = ~votes.new
    a, b, tie = votes.a[base], votes.b[base], votes.kinds[base] == TIE
    winners = np.concatenate([a, b[tie]])
    losers = np.concatenate([b, a[tie]])
    graph = scipy.sparse.coo_matrix((np.ones(winners.shape[0]), (losers, winners)),
                                    shape=(n, n)).tocsr()
    count, _ = scipy.sparse.csgraph.connected_components(graph, directed=True,
                                                         connection="strong")
    return count == 1


def _accuracy(folder: Path, results: dict) -> None:
    """Add max |Δability| and log-likelihood gap against the reference MLEs to each method."""
    lam = bradley_terry.PRIOR_STRENGTH
    figures = results["tasks"]
    for method in ("ours_cold", "ours_warm", *REFERENCES):
        if method not in figures or "timed_out_s" in figures[method]:
            continue
        penalised = method != "choix"
        prefix = "next" if method == "ours_warm" else "base"
        mle_name = f"mle_{prefix}" if penalised else "mle_unpenalised"
        pairs = tasks.load_pairs(folder, prefix)
        mle = np.load(folder / f"{mle_name}.npy")
        abilities = np.load(folder / f"{method}_abilities.npy")
        weight = lam if penalised else 0.0
        gap = references.neg_log_posterior(abilities, *pairs, weight)[0] \
            - references.neg_log_posterior(mle, *pairs, weight)[0]
        figures[method]["max_abs_error"] = float(np.max(np.abs(abilities - mle)))
        figures[method]["loglik_gap"] = float(gap)
        figures[method]["against"] = mle_name


def _format_size(results: dict) -> str:
    figures = results["tasks"]
    refs = [m for m in REFERENCES if m in figures]
    finished = [m for m in refs if "seconds" in figures[m]]
    # With every reference stopped, the shortest time limit bounds the best one from below.
    best_ref = min(finished, key=lambda m: _median(figures[m]["seconds"])) if finished \
        else None
    best_s = _median(figures[best_ref]["seconds"]) if best_ref \
        else min(figures[m]["timed_out_s"] for m in refs)
    at_least = "" if best_ref else ">"

    def ratio(seconds: float) -> str:
        return f"{at_least}{best_s / seconds:.2f}"
    agg = figures["aggregate"]
    load = results["load_average_before"][0], results["load_average_after"][0]
    lines = [
        f"== {results['size']}: {results['n_items']:,} items, {results['votes']:,} votes, "
        f"{agg['n_pairs']:,} distinct pairs ({results['generator']})",
        f"{'method':34s} {'median s':>9s} {'runs':>4s} {'best ref/this':>13s} "
        f"{'ℓ gap':>9s} {'max|Δθ|':>9s} {'peak MB':>8s}  notes",
    ]
    cold = figures["ours_cold"]
    bare_s = _median(cold["without_std_errors_s"])
    lines.append(f"{'pairwise fit, cold, no std errors':34s} {bare_s:9.3f} "
                 f"{len(cold['without_std_errors_s']):4d} {ratio(bare_s):>12s}x "
                 f"{'':>9s} {'':>9s} {'':>8s}  abilities only, as choix gives")
    for method in ("ours_cold", "ours_warm", *refs):
        f = figures[method]
        if "timed_out_s" in f:
            lines.append(f"{LABELS[method]:34s} {'>' + format(f['timed_out_s'], '.0f'):>9s} "
                         f"{0:4d} {'<' + format(best_s / f['timed_out_s'], '.2f'):>12s}x "
                         f"{'-':>9s} {'-':>9s} {'-':>8s}  stopped: did not finish in "
                         f"{f['timed_out_s']:.0f} s")
            continue
        median = _median(f["seconds"])
        notes = []
        if "iterations" in f:
            notes.append(f"{f['iterations']} Newton it.")
        if method == "ours_cold" and "seconds" in figures.get("choix_std_errors", {}):
            with_errors = _median(figures["choix_std_errors"]["seconds"])
            notes.append(f"{with_errors / median:.2f}x choix + std errors "
                         f"({with_errors:.3f} s: Fisher information, dense inverse)")
        if method == "choix":
            notes.append("unpenalised MLE; input matrix not timed")
        if method == best_ref:
            notes.append("best reference")
        lines.append(
            f"{LABELS[method]:34s} {median:9.3f} {len(f['seconds']):4d} "
            f"{ratio(median):>12s}x {f['loglik_gap']:9.2e} {f['max_abs_error']:9.2e} "
            f"{f['peak_mb']:8.0f}  {'; '.join(notes)}")
    lines += [
        f"aggregation: apply {agg['apply_votes']:,} votes {_median(agg['apply_s']):.3f} s "
        f"(peak +{agg['apply_peak_mb']:.0f} MB); merge {agg['merge_votes']:,} new votes "
        f"{_median(agg['merge_s']):.3f} s ({_median(agg['merge_and_compact_s']):.3f} s with "
        f"the merge into the sorted arrays); batches of 2,000 votes: median "
        f"{1000 * _median(agg['batch_2000_s']):.1f} ms, max "
        f"{1000 * max(agg['batch_2000_s']):.1f} ms; {agg['bytes_per_pair']:.1f} B/pair "
        f"({agg['pair_counts_mb']:.0f} MB counts)",
        f"inside the cold fit: standard errors {_median(cold['std_errors_s']):.3f} s "
        f"({'exact' if cold['exact_std_errors'] else 'approximate'}), 95% interval coverage "
        f"of the true abilities {cold['coverage_95']:.1%}; after it, the ranking's scores "
        f"{1000 * _median(cold['scores_s']):.1f} ms, max error "
        f"{cold['scores_max_error']:.1e} points",
        f"load average (1 min) before/after this size: {load[0]:.2f} / {load[1]:.2f}",
    ]
    if "responsiveness" in figures:
        r = figures["responsiveness"]
        lines.append(
            f"ranker event loop during {len(r['refit_s'])} refits (fit input, worker fit, "
            f"ranking; {_median(r['refit_s']):.2f} s each): a request would wait p50 "
            f"{r['wait_p50_ms']:.2f} ms, p99 {r['wait_p99_ms']:.1f} ms, max "
            f"{r['wait_max_ms']:.1f} ms")
    if "ranker_reads" in figures:
        g = figures["ranker_reads"]
        lines.append(
            f"GetRanking of {g['limit']} entries from a ranker process (ReadRanking every "
            f"{g['period_ms']:.0f} ms for {g['windows']}×{g['window_s']:.0f} s, rounds of "
            f"{g['votes_per_round']:,} new votes; {g['refits']} refits): p50 "
            f"{g['p50_ms']:.1f} ms, p95 {g['p95_ms']:.1f} ms, p99 {g['p99_ms']:.1f} ms "
            f"(per window {', '.join(f'{p:.0f}' for p in g['window_p99_ms'])}), max "
            f"{g['max_ms']:.0f} ms")
        if g.get("checkpoints"):
            lines.append(
                f"  its checkpoints: {g['checkpoints']}, median {g['checkpoint_median_mb']:.2f} MB"
                f" in {1000 * g['checkpoint_median_s']:.0f} ms (largest "
                f"{g['checkpoint_max_mb']:.1f} MB, slowest {g['checkpoint_max_s']:.2f} s); fits "
                f"median {g.get('fit_median_s', 0):.2f} s; failed reads {g.get('errors') or 0}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(datasets.SIZES),
                        help=f"comma-separated, from {', '.join(datasets.SIZES)}")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="seconds one measurement may take before it is repeated less")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds after which a reference fitter is stopped")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="OpenBLAS/OpenMP threads of every measured process, as the "
                             "ranker's fit workers use (0: leave the environment alone)")
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in datasets.SIZES]
    if unknown:
        parser.error(f"unknown size(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(datasets.SIZES)}")
    started = time.perf_counter()
    env = _task_env(args.blas_threads)
    report = {"machine": _machine(), "repeats": args.repeats, "sizes": [],
              "blas_threads": args.blas_threads}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{'-'.join(sizes)}.json"
    for name in sizes:
        results = run_size(name, args.repeats, args.budget, args.timeout, env)
        report["sizes"].append(results)
        # Written before the table, so that minutes of measurements outlive a report bug.
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(_format_size(results), "\n", flush=True)
    report["total_s"] = time.perf_counter() - started
    machine = report["machine"]
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB; "
          f"Python {machine['python']}, numpy {machine['numpy']}, scipy {machine['scipy']}; "
          f"commit {machine['commit']}; BLAS threads per process "
          f"{args.blas_threads or 'default'}; total {report['total_s']:.0f} s")
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written {path}")


if __name__ == "__main__":
    main()
