"""The local supervisor with stand-in processes: restarts what dies, stops everything it
started (SIGKILL after the grace period), and the CLI is harmless when nothing runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import eventually

from cluster.process_table import is_same_process
from cluster.run_folder import RunFolder
from cluster.supervisor import Backoff, Supervisor
from cluster.topology import ProcessSpec

SLEEPER = (sys.executable, "-c", "import time; time.sleep(120)")
# Ignores SIGTERM: only the supervisor's SIGKILL after the grace period stops it.
STUBBORN = (sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)")


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[RunFolder, Supervisor, threading.Event]]:
    run = RunFolder(tmp_path / "run").create()
    redis_socket = tmp_path / "redis.sock"
    specs = [
        ProcessSpec("redis", (sys.executable, "-m", "pairwise.embedded_redis", "--unix-socket",
                              str(redis_socket), "--dir", str(run.redis_data)),
                    stop_group=2, ready_redis_url=f"unix://{redis_socket}?db=0"),
        ProcessSpec("worker", SLEEPER, stop_group=1),
        ProcessSpec("stubborn", STUBBORN, stop_group=0),
    ]
    supervisor = Supervisor(specs, run, grace_s=0.5, backoff=Backoff(base_s=0.1))
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        eventually(lambda: all(run.read_state().get("children", {}).get(name, {}).get("running")
                               for name in ("redis", "worker", "stubborn")),
                   "every child running", timeout=15)
        yield run, supervisor, stop
    finally:
        stop.set()
        thread.join(timeout=30)


def test_a_killed_process_is_restarted_and_stop_leaves_nothing_running(
        supervised: tuple[RunFolder, Supervisor, threading.Event]) -> None:
    run, _, stop = supervised
    first_pid = run.read_pid(run.pid_file("worker"))
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)

    def restarted() -> bool:
        child = run.read_state()["children"]["worker"]
        return bool(child["running"] and child["pid"] != first_pid and child["restarts"] == 1)

    eventually(restarted, "the killed worker restarted", timeout=15)
    assert run.read_pid(run.pid_file("worker")) == run.read_state()["children"]["worker"]["pid"]
    assert run.read_state()["children"]["worker"]["last_exit"] == -signal.SIGKILL

    children = run.read_state()["children"]
    stop.set()
    eventually(lambda: run.read_state().get("stopping") and not any(
        c["running"] for c in run.read_state()["children"].values()),
        "every child stopped", timeout=15)
    for name, child in children.items():
        assert not is_same_process(child["pid"], child["start_ticks"]), name
    assert list(run.pids.glob("*.pid")) == []


def test_cli_down_and_status_when_nothing_runs(tmp_path: Path) -> None:
    run_dir = tmp_path / "never-started"
    down = subprocess.run([sys.executable, "-m", "cluster", "down", "--run-dir", str(run_dir)],
                          capture_output=True, text=True, timeout=30)
    assert down.returncode == 0, down.stderr
    assert "not running" in down.stdout
    status = subprocess.run([sys.executable, "-m", "cluster", "status", "--run-dir",
                             str(run_dir)], capture_output=True, text=True, timeout=30)
    assert status.returncode == 3
    assert "not running" in status.stdout
