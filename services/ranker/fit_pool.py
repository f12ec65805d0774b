"""Bradley-Terry fits off the serving process's event loop: in a thread, or in a worker process.

Each fit goes one of three ways, chosen in one place (`choose_transport`):
- THREAD: small fits (up to 500 proposals and 20,000 compared pairs: about 50 ms, holding
  the event loop at most 5 ms) run in a thread of the serving process: no copy, no wait for
  a cold worker.
- FILE: larger fits run in a worker process, since parts of numpy/scipy hold the GIL: in a
  thread, a fit of 2,000 proposals / 200,000 votes kept the event loop from running for up
  to 1.7 s, stalling every RPC. The pair arrays reach the worker through a file in /dev/shm
  (memory; the temporary directory when /dev/shm lacks room, see `_transfer_file`):
  writing a file releases the GIL, while pickling 5.4M pairs (170 MB) holds it for ~0.1 s.
- REPLICA: with a single worker, a cause's larger fits use the worker's own copy of the
  cause's pair counts (a replica, `fit_replica`): each refit ships only the votes applied
  since the previous one (9 bytes a vote: 0.6 MB for a 1% round at 34,000 proposals) and
  the ranked items, and the worker cuts the fit input out of its copy. At 34,000 proposals /
  5.4M pairs the serving process then only cuts the tallies (0.3 ms) instead of the fit
  input (63 ms) and writing its 130 MB (54 ms); the worker does that work (applying the
  votes, merging and cutting: ~100 ms) at lower priority, and peaks at ~700 MB, ~70 MB more
  than when it is sent the fit input. In the GetRanking benchmark the serving process spends
  0.08 s of CPU per refit this way, reads and vote intake included, against 0.21 s sending
  the fit input. A replica is named by an epoch and a generation; a worker without the
  generation a shipment extends (a new pool after a crash, a shipment lost to a
  cancellation) answers `ReplicaMissing`, and the cause ships its whole counts once through
  a /dev/shm file, as for its first fit.

Workers cost one interpreter each (numpy + scipy), run one BLAS thread and fit at lower CPU
priority (nice +5, RANKER_FIT_NICE), so a fit never competes with the serving process for
both cores.

The fits of segments of voters (`segment=True`: twenty of them can cost three overall fits)
run in workers of their own (RANKER_SEGMENT_FIT_WORKERS, started at the first such fit), at
a lower priority still (`SEGMENT_NICE_OFFSET`): they use a second core beside the overall
refits instead of queueing with them, and where cores are short the overall refits, which
every reader sees, go first. With no such workers they share the fit workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import glob
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

import numpy as np

from ranker import bradley_terry
from ranker.pair_counts import PairCounts, decode_votes

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# Largest fit run in a thread of the serving process rather than in a worker.
INLINE_MAX_ITEMS = 500
INLINE_MAX_PAIRS = 20_000
# Segment fits run this much nicer than the overall fits: on a busy host the scheduler then
# gives the overall refits most of a core they contend for.
SEGMENT_NICE_OFFSET = 5
_WORKER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the ranker process is gone (e.g. kill -9), instead of
    living on as an orphan holding memory and a CPU for a fit nobody will read."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _warm_up() -> None:
    """Import the fitting code in a fresh worker so the first real fit does not pay for it."""
    bradley_terry.fit(2, np.array([0]), np.array([1]), np.array([1.0]), np.array([1.0]))


def _lower_priority(nice: int) -> None:
    """Run this worker's fits at niceness `nice` (an absolute level, so repeating it changes
    nothing). Start-up and imports stay at normal priority: a ranker stopping soon after it
    started waits for them."""
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) != nice:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        pass  # not permitted here (lowering it back needs privileges): keep the current one


def _call_at_priority(nice: int, function: Callable[..., _T], *args: object) -> _T:
    """Worker side of `FitPool.call`."""
    _lower_priority(nice)
    return function(*args)


class FitTransport(enum.Enum):
    """How one fit runs (see the module docstring)."""

    THREAD = "thread"  # in a thread of the serving process
    FILE = "file"  # in a worker, the pair arrays sent through a file
    REPLICA = "replica"  # in the worker, on its replica of the cause's counts


def choose_transport(n_items: int, n_pairs: int, *, replicas: bool) -> FitTransport:
    """How a fit of `n_items` items over (at most) `n_pairs` pairs runs; `replicas` when
    the worker can keep a replica of the cause's counts."""
    if n_items <= INLINE_MAX_ITEMS and n_pairs <= INLINE_MAX_PAIRS:
        return FitTransport.THREAD
    return FitTransport.REPLICA if replicas else FitTransport.FILE


class ReplicaMissing(Exception):
    """The worker holds no copy of the cause's counts at the generation a shipment extends."""


# Worker side: each cause's replica of the counts, as (epoch, generation, counts).
_replicas: dict[str, tuple[str, int, PairCounts]] = {}


def _fit_replica(cause_id: str, epoch: str, base_generation: int | None, generation: int,
                 votes: bytes, counts_path: str | None, items: np.ndarray,
                 prior_strength: float, init: np.ndarray | None,
                 nice: int = 0) -> tuple[bradley_terry.BTFit, int]:
    """Worker side of `FitPool.fit_replica`: bring the cause's replica to `generation` (load
    it from `counts_path`, or apply `votes` to generation `base_generation`), then fit the
    pairs among `items`. Returns the fit and how many pairs it used."""
    _lower_priority(nice)
    held = _replicas.pop(cause_id, None)  # dropped until it is whole again
    if counts_path is not None:
        held = None  # free the old copy before reading the new one
        with open(counts_path, "rb") as file:
            counts = PairCounts.from_bytes(file.read())
    else:
        if held is None or held[:2] != (epoch, base_generation):
            raise ReplicaMissing(f"no replica of cause {cause_id!r} at generation "
                                 f"{epoch}:{base_generation}")
        counts = held[2]
        if votes:
            counts.apply(*decode_votes(votes))
    _replicas[cause_id] = (epoch, generation, counts)
    i, j, wins_ij, wins_ji = counts.subset(items)
    fit = bradley_terry.fit(len(items), i, j, wins_ij, wins_ji, prior_strength=prior_strength,
                            init=init)
    return fit, len(i)


def _forget(cause_id: str, epoch: str) -> None:
    """Worker side of `FitPool.forget`."""
    held = _replicas.get(cause_id)
    if held is not None and held[0] == epoch:
        del _replicas[cause_id]


def _write_counts(counts: PairCounts, fd: int) -> None:
    with os.fdopen(fd, "wb") as file:
        for part in counts.snapshot_parts():
            file.write(part)


_SHM = "/dev/shm"


def _transfer_file(kind: str, nbytes: int) -> tuple[int, str]:
    """A fresh file for about `nbytes` of `kind` ("fit", "counts"): its descriptor and path.

    In /dev/shm (memory) when it has room with a quarter to spare, else in the temporary
    directory: a container's /dev/shm is 64 MB unless set, and a fit at 34,000 proposals
    ships 130 MB, which would fail with ENOSPC on every refit. The name carries this
    process's identity (`_identity`), so that a ranker starting there removes what a killed
    one left (`remove_orphans`).
    """
    try:
        stats = os.statvfs(_SHM)
        roomy = stats.f_bavail * stats.f_frsize >= nbytes * 1.25
    except OSError:
        roomy = False
    return tempfile.mkstemp(prefix=f"pairwise-{kind}-{_identity(os.getpid())}-",
                            suffix=".bin", dir=_SHM if roomy else tempfile.gettempdir())


def _identity(pid: int) -> str | None:
    """`pid` and its start time ("1.52311"): a process id alone is reused, and in a
    container the ranker is process 1 in every incarnation. None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The fields after the command name (which may hold spaces): state is field 3,
            # the start time field 22.
            started = stat.read().rpartition(b")")[2].split()[19].decode()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except (OSError, IndexError):  # no /proc: the process id alone
        return str(pid) if _running(pid) else None
    return f"{pid}.{started}"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphans() -> list[str]:
    """Remove the transfer files of processes that no longer run: a ranker killed while
    a file was in flight leaves it, in memory when in /dev/shm, and nothing else frees it.
    The paths removed."""
    removed = []
    for directory in {_SHM, tempfile.gettempdir()}:
        for path in glob.glob(os.path.join(directory, "pairwise-*-*-*.bin")):
            writer = os.path.basename(path).split("-")[2]
            pid = writer.partition(".")[0]
            if pid.isdigit() and _identity(int(pid)) != writer:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(path)
    return removed
    return True


def _write_pairs(i: np.ndarray, j: np.ndarray, wins_ij: np.ndarray,
                 wins_ji: np.ndarray) -> str:
    """Write the pair arrays (indices as int32 when they fit) to a fresh file; its path.

    Raw buffers through `file.write`, which releases the GIL during the copy (np.save's
    `tofile` holds it: a 20 ms stall per 86 MB), after a one-line header of dtypes/lengths.
    """
    small = i.size == 0 or max(int(i.max()), int(j.max())) < np.iinfo(np.int32).max
    arrays = [np.ascontiguousarray(a.astype(np.int32) if small else a) for a in (i, j)]
    arrays += [np.ascontiguousarray(a, dtype=np.float64) for a in (wins_ij, wins_ji)]
    header = " ".join(f"{a.dtype.str}:{a.shape[0]}" for a in arrays) + "\n"
    fd, path = _transfer_file("fit", len(header) + sum(a.nbytes for a in arrays))
    with os.fdopen(fd, "wb") as file:
        file.write(header.encode())
        for array in arrays:
            file.write(array.data.cast("B"))
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fit_from_file(path: str, n_items: int, prior_strength: float,
                   init: np.ndarray | None, nice: int = 0,
                   approximate_errors: bool = False,
                   tol: float = bradley_terry.TOLERANCE) -> bradley_terry.BTFit:
    """Worker side of a file transfer: read the pairs, then fit (the caller deletes the file)."""
    _lower_priority(nice)
    with open(path, "rb") as file:
        fields = [field.split(":") for field in file.readline().decode().split()]
        i, j, wins_ij, wins_ji = (np.fromfile(file, dtype=np.dtype(dtype), count=int(count))
                                  for dtype, count in fields)
    return bradley_terry.fit(n_items, i, j, wins_ij, wins_ji, prior_strength=prior_strength,
                             init=init, tol=tol, **_errors(approximate_errors))


def _errors(approximate: bool) -> dict[str, Any]:
    """`bradley_terry.fit`'s standard-error settings: the default, or belief propagation in
    every component (`approximate`: O(pairs) instead of a dense factorisation per fit, for
    the many fits of a cause's segments; within 0.3% of exact on random pairs)."""
    return {"exact": False, "exact_component_max": 1} if approximate else {}


class FitPool:
    """A pool of `workers` processes running `bradley_terry.fit`; rebuilt if a worker dies."""

    def __init__(self, workers: int, *, nice: int = 5, segment_workers: int = 0) -> None:
        self._workers = max(1, workers)
        self._nice = nice
        self._segment_workers = max(0, segment_workers)
        self._segment_pool: ProcessPoolExecutor | None = None
        # spawn, not fork: the serving process runs gRPC and event-loop threads.
        self._context = multiprocessing.get_context("spawn")
        # Spawned workers (started on demand, and again after a crash) read their BLAS
        # settings from this process's environment at start-up; the serving process's own
        # BLAS is loaded already, so this only changes the workers.
        os.environ.update(_WORKER_ENV)
        for path in remove_orphans():
            logger.info("removed a fit transfer file a stopped ranker left",
                        extra={"path": path})
        self._pool = self._new_pool()
        # Refits in threads of this process, one at a time: each holds the GIL for most of
        # its few milliseconds, and with hundreds of active causes refitting, several at once
        # left the event loop too little of it to read its Redis replies (commands then
        # timed out waiting for a pooled connection). A refit queued here only makes that
        # cause's ranking later; urgent fits (a read waits) do not queue.
        self._inline = asyncio.Semaphore(1)

    def _new_pool(self, workers: int | None = None) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(max_workers=workers or self._workers,
                                   mp_context=self._context,
                                   initializer=_exit_with_parent, initargs=(os.getpid(),))
        pool.submit(_warm_up)
        return pool

    def transport(self, n_items: int, n_pairs: int) -> FitTransport:
        """How a cause's fit of `n_items` items, among counts of `n_pairs` pairs, runs. A
        replica needs a single worker: then every call of a cause reaches the process
        holding its replica."""
        return choose_transport(n_items, n_pairs, replicas=self._workers == 1)

    async def fit(self, n_items: int, i: np.ndarray, j: np.ndarray, wins_ij: np.ndarray,
                  wins_ji: np.ndarray, *, prior_strength: float,
                  init: np.ndarray | None, urgent: bool = False,
                  approximate_errors: bool = False, tol: float = bradley_terry.TOLERANCE,
                  segment: bool = False) -> bradley_terry.BTFit:
        """`bradley_terry.fit` in a thread or a worker (THREAD or FILE); raises what it
        raises (FitDidNotConverge, ValueError), or BrokenProcessPool when the worker died
        (the pool is then rebuilt). Fits in threads run one at a time, unless `urgent`.
        `approximate_errors`: standard errors by belief propagation (see `_errors`);
        `tol` as `bradley_terry.fit`'s; `segment`: a segment's fit, in the segment workers
        when there are some."""
        if choose_transport(n_items, len(i), replicas=False) is FitTransport.THREAD:
            fit = functools.partial(bradley_terry.fit, n_items, i, j, wins_ij, wins_ji,
                                    prior_strength=prior_strength, init=init, tol=tol,
                                    **_errors(approximate_errors))
            if urgent:
                return await asyncio.to_thread(fit)
            async with self._inline:
                return await asyncio.to_thread(fit)
        path = await asyncio.to_thread(_write_pairs, i, j, wins_ij, wins_ji)
        segment = segment and self._segment_workers > 0
        nice = self._nice + SEGMENT_NICE_OFFSET if segment else self._nice
        try:
            return await self._run(functools.partial(
                _fit_from_file, path, n_items, prior_strength, init, nice,
                approximate_errors, tol), segment=segment)
        finally:
            # Freeing the file of 5.4M pairs (130 MB of /dev/shm) holds the calling thread
            # ~18 ms: not the event loop's. Not awaited, so a cancelled fit removes it too.
            asyncio.get_running_loop().run_in_executor(None, _remove, path)

    async def fit_replica(self, cause_id: str, epoch: str, base_generation: int | None,
                          generation: int, votes: bytes, counts_path: str | None,
                          items: np.ndarray, *, prior_strength: float,
                          init: np.ndarray | None) -> tuple[bradley_terry.BTFit, int]:
        """Fit the pairs among `items` of the cause's counts in the worker: its replica at
        generation `base_generation` plus `votes` (`pair_counts.encode_votes`), or the counts
        written to `counts_path` (`write_counts`; removed here) when that is not None. The
        replica is then at `generation`. Returns the fit and its number of pairs.

        Raises ReplicaMissing when the worker has no replica at `base_generation`, and
        otherwise what `fit` raises."""
        call = functools.partial(_fit_replica, cause_id, epoch, base_generation, generation,
                                 votes, counts_path, items, prior_strength, init, self._nice)
        try:
            return await self._run(call)
        finally:
            if counts_path is not None:
                asyncio.get_running_loop().run_in_executor(None, _remove, counts_path)

    @staticmethod
    async def write_counts(counts: PairCounts) -> str:
        """Write a snapshot of `counts` to a fresh file for `fit_replica` (in a thread: 110 MB
        at 5.4M pairs, ~50 ms); its path. The counts must not change until it returns (the
        snapshot's parts are views of them)."""
        fd, path = _transfer_file("counts", counts.nbytes)
        try:
            await asyncio.to_thread(_write_counts, counts, fd)
        except BaseException:
            _remove(path)  # a thread still writing it frees the space when it closes it
            raise
        return path

    def forget(self, cause_id: str, epoch: str) -> None:
        """Drop the worker's replica of the cause (if still of `epoch`); not awaited."""
        try:
            self._pool.submit(_forget, cause_id, epoch)
        except RuntimeError:
            pass  # the pool is shut down: its workers and their replicas are gone

    async def call(self, function: Callable[..., _T], *args: object) -> _T:
        """`function(*args)` in a worker at the fits' priority: for the fits `fit` does not
        run (a representative view's, whose strata are pickled to the worker). `function`
        must be importable by name; raises what it raises, or BrokenProcessPool."""
        return await self._run(functools.partial(_call_at_priority, self._nice, function,
                                                 *args))

    async def _run(self, call: Callable[[], _T], *, segment: bool = False) -> _T:
        if segment:
            if self._segment_pool is None:
                self._segment_pool = self._new_pool(self._segment_workers)
            pool = self._segment_pool
        else:
            pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call)
        except BrokenProcessPool:
            if pool is self._pool:
                logger.error("a fit worker process died; starting a new pool")
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
            elif pool is self._segment_pool:
                logger.error("a segment fit worker process died; starting a new one")
                pool.shutdown(wait=False, cancel_futures=True)
                self._segment_pool = None
            raise

    async def close(self) -> None:
        """Cancel queued fits; a fit already running finishes in its worker, off the loop."""
        pools = [self._pool] + ([self._segment_pool] if self._segment_pool else [])
        for pool in pools:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
