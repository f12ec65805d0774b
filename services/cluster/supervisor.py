"""Keeps the cluster's processes running, as compose's `restart: unless-stopped` would.

The supervisor starts every process of a topology in order (waiting for Redis to answer
before starting the services), restarts any that exits with an exponential backoff, logs
each restart, and on stop terminates them group by group: SIGTERM, a grace period, then
SIGKILL. Pids go to `run/pids/<name>.pid`, output to `run/logs/<name>.log`, and a summary
(pids, restarts, last exit codes) to `run/state.json` after every change.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from cluster.process_table import kill_group, process_start_ticks
from cluster.run_folder import RunFolder
from cluster.topology import ProcessSpec
from pairwise.redis_client import shown

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Delay before restart n of a process that keeps failing: base_s * 2**(n-1), capped.

    A process that ran at least `stable_s` seconds before exiting restarts after `base_s`
    again, so one crash after hours of service is not punished for earlier ones.
    """

    base_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 10.0

    def delay(self, consecutive_failures: int) -> float:
        return min(self.max_s, self.base_s * 2 ** max(0, consecutive_failures - 1))


@dataclass
class _Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # wall clock, for humans
    started_monotonic: float = 0.0
    restarts: int = 0
    consecutive_failures: int = 0
    restart_at: float | None = None  # monotonic
    last_exit: int | None = None

    def state(self) -> dict[str, Any]:
        running = self.process is not None and self.process.poll() is None
        pid = self.process.pid if running and self.process else None
        return {"pid": pid, "running": running, "restarts": self.restarts,
                "started_at": self.started_at if running else None,
                "start_ticks": process_start_ticks(pid) if pid else None,
                "last_exit": self.last_exit, "addr": self.spec.addr, "health": self.spec.health,
                "stop_group": self.spec.stop_group}


@dataclass
class Supervisor:
    """Runs `processes` (in start order) until `run(stop)`'s event is set, then stops them."""

    processes: Sequence[ProcessSpec]
    run_folder: RunFolder
    grace_s: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    poll_s: float = 0.1
    ready_timeout_s: float = 30.0
    # Extra facts written into state.json (gateway address, Redis URL).
    facts: dict[str, Any] = field(default_factory=dict)
    _children: list[_Child] = field(default_factory=list, init=False)

    def run(self, stop: threading.Event) -> None:
        """Start everything, supervise until `stop` is set, then stop everything in order."""
        self.run_folder.create()
        self._children = [_Child(spec) for spec in self.processes]
        try:
            for child in self._children:
                if stop.is_set():
                    break
                self._start(child)
                if child.spec.ready_redis_url:
                    self._wait_redis(child, stop)
            self._write_state(stopping=False)
            while not stop.wait(self.poll_s):
                if self._supervise_once():
                    self._write_state(stopping=False)
        finally:
            self._write_state(stopping=True)
            self._stop_all()
            self._write_state(stopping=True)

    def _supervise_once(self) -> bool:
        """Notice exits and start due restarts; True when anything changed."""
        changed = False
        now = time.monotonic()
        for child in self._children:
            if child.process is not None:
                code = child.process.poll()
                if code is None:
                    continue
                ran_s = now - child.started_monotonic
                kill_group(child.process.pid)
                child.process = None
                child.last_exit = code
                child.consecutive_failures = (
                    1 if ran_s >= self.backoff.stable_s else child.consecutive_failures + 1)
                delay = self.backoff.delay(child.consecutive_failures)
                child.restart_at = now + delay
                self.run_folder.pid_file(child.spec.name).unlink(missing_ok=True)
                logger.warning("process exited; restarting", extra={
                    "child": child.spec.name, "exit_code": code, "ran_s": round(ran_s, 2),
                    "restart_in_s": delay, "restart_number": child.restarts + 1})
                changed = True
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._start(child)
                changed = True
        return changed

    def _start(self, child: _Child) -> None:
        spec = child.spec
        log_path = self.run_folder.log_file(spec.name)
        with open(log_path, "ab") as log:
            # The child keeps its own copy of the log descriptor; ours closes here.
            # Its own process group, so that whatever it spawned (e.g. the ranker's fit
            # workers) goes with it when it dies, as processes of a container do.
            child.process = subprocess.Popen(
                spec.argv, env={**os.environ, **spec.env}, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, process_group=0)
        child.started_at = time.time()
        child.started_monotonic = time.monotonic()
        child.restart_at = None
        self.run_folder.write_pid(self.run_folder.pid_file(spec.name), child.process.pid)
        logger.info("process started", extra={"child": spec.name, "pid": child.process.pid,
                                               "restarts": child.restarts})

    def _wait_redis(self, child: _Child, stop: threading.Event) -> None:
        assert child.spec.ready_redis_url is not None
        client = redis.Redis.from_url(child.spec.ready_redis_url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + self.ready_timeout_s
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                if child.process is None or child.process.poll() is not None:
                    logger.error("redis exited during start-up", extra={"child": "redis"})
                    return
                try:
                    if client.ping():
                        logger.info("redis ready", extra={"url": shown(child.spec.ready_redis_url)})
                        return
                except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                    pass
                stop.wait(0.05)
            logger.error("redis not ready in time", extra={"timeout_s": self.ready_timeout_s})
        finally:
            client.close()

    def _stop_all(self) -> None:
        for group in sorted({c.spec.stop_group for c in self._children}):
            members = [c for c in self._children
                       if c.spec.stop_group == group and c.process is not None]
            for child in members:
                assert child.process is not None
                if child.process.poll() is None:
                    child.process.terminate()
            deadline = time.monotonic() + self.grace_s
            for child in members:
                assert child.process is not None
                try:
                    child.process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    # Past the grace period: the server had its chance to drain.
                    logger.warning("process ignored SIGTERM; killing",
                                   extra={"child": child.spec.name, "grace_s": self.grace_s})
                    child.process.kill()
                    child.process.wait()
                child.last_exit = child.process.returncode
                kill_group(child.process.pid)
                logger.info("process stopped", extra={"child": child.spec.name,
                                                      "exit_code": child.last_exit})
                child.process = None
                self.run_folder.pid_file(child.spec.name).unlink(missing_ok=True)
        for child in self._children:
            child.restart_at = None

    def _write_state(self, stopping: bool) -> None:
        self.run_folder.write_state({
            **self.facts, "supervisor_pid": os.getpid(), "stopping": stopping,
            "supervisor_start_ticks": process_start_ticks(os.getpid()),
            "children": {c.spec.name: c.state() for c in self._children}})


def serve(supervisor: Supervisor, stop: threading.Event) -> int:
    """Run `supervisor` as the run folder's one supervisor (lock + supervisor.pid).

    Returns 1 without starting anything when another supervisor holds the folder.
    """
    run = supervisor.run_folder.create()
    try:
        lock_fd = run.hold_lock()
    except BlockingIOError:
        logger.error("another supervisor is running", extra={"run_dir": str(run.root)})
        return 1
    try:
        run.write_pid(run.supervisor_pid_file, os.getpid())
        supervisor.run(stop)
        return 0
    finally:
        run.remove_pid_files()
        os.close(lock_fd)
