"""The operator's commands on a local cluster: up (start a detached supervisor and wait for
health), down (stop exactly what up started), status (what runs, restarts, health)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import redis

from cluster.process_table import command_name, is_same_process, kill_group, members
from cluster.run_folder import RunFolder
from cluster.tokens import ADMIN, CLIENT_NAMES, NAMES, Tokens, resolve
from cluster.topology import HTTP, Topology, plan
from pairwise import health_probe
from pairwise.redis_client import shown

# Exit status of `status` when nothing runs (as LSB init scripts do).
NOT_RUNNING = 3


def up(run: RunFolder, environ: Mapping[str, str], *, timeout_s: float = 60.0,
       out: TextIO = sys.stdout) -> int:
    """Start the cluster in the background and wait until every gRPC service is SERVING.

    Returns 0 when it serves (or already did), 1 when it did not become healthy within
    `timeout_s` seconds; in that case the logs' tails are printed and what started is stopped.
    """
    run.create()
    if run.supervisor_running():
        state = run.read_state()
        print(f"Pairwise cluster already running (supervisor pid {state.get('supervisor_pid')}, "
              f"gateway {state.get('gateway_addr')}); `make down` stops it.", file=out)
        return 0
    tokens = resolve(run.tokens_file, environ)
    topology = plan(run, environ, tokens)
    busy = [f"{port} ({name})" for name, port in topology.ports().items() if port_in_use(port)]
    if busy:
        print(f"cannot start: port in use: {', '.join(busy)}. Stop what holds it (`make down` "
              "if it is a cluster started earlier) or choose other ports (REDIS_PORT, "
              "INGEST_PORT, RANKER_PORT, GATEWAY_PORT, CONSOLE_PORT).", file=out)
        return 1
    run.remove_pid_files()
    with open(run.log_file("supervisor"), "ab") as log:
        # A new session: the supervisor outlives this command and the terminal's Ctrl-C.
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "cluster", "supervise", "--run-dir", str(run.root)],
            env={**environ, **tokens.as_env()}, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    print(f"starting Pairwise cluster (run folder {run.root}) ...", file=out, flush=True)
    if not _wait_healthy(supervisor, topology, timeout_s):
        print(f"\ncluster not healthy after {timeout_s:.0f} s; last log lines:", file=out)
        _print_log_tails(run, topology, out)
        down(run, out=out)
        return 1
    _print_running(run, topology, tokens, out)
    return 0


def down(run: RunFolder, *, grace_s: float = 10.0, out: TextIO = sys.stdout) -> int:
    """Stop the supervisor (which stops its processes in order), then anything left of
    what it started: processes of a killed supervisor, strays in its session.

    Always returns 0; says "not running" when there was nothing to stop.
    """
    stopped_something = False
    pid = run.read_pid(run.supervisor_pid_file)
    if run.supervisor_running() and pid is not None:
        print(f"stopping Pairwise cluster (supervisor pid {pid}) ...", file=out, flush=True)
        os.kill(pid, signal.SIGTERM)
        # The supervisor stops up to three groups (gateway; ingest + rankers; Redis), each
        # within its own grace period.
        deadline = time.monotonic() + 3 * grace_s + 5
        while run.supervisor_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if run.supervisor_running():
            print("supervisor did not stop in time; killing it", file=out)
            _kill(pid)
        stopped_something = True
    state = run.read_state()
    # The supervisor lets go of its lock just before it exits: let it finish exiting.
    if state.get("supervisor_pid"):
        deadline = time.monotonic() + 5
        while (is_same_process(state["supervisor_pid"], state.get("supervisor_start_ticks"))
               and time.monotonic() < deadline):
            time.sleep(0.02)
    # Processes a killed supervisor left behind, identified by pid and start time.
    leftovers = [(name, child) for name, child in state.get("children", {}).items()
                 if child.get("pid") and is_same_process(child["pid"], child.get("start_ticks"))]
    for name, child in sorted(leftovers, key=lambda item: item[1].get("stop_group", 0)):
        print(f"stopping leftover {name} (pid {child['pid']})", file=out)
        _terminate(child["pid"], child.get("start_ticks"), grace_s)
        stopped_something = True
    # Anything else started from the supervisor's session (it leads its own), e.g. worker
    # processes orphaned by a service killed with -9.
    if state.get("supervisor_pid") and state.get("supervisor_start_ticks") is not None:
        strays = members(session=state["supervisor_pid"],
                         started_since=state["supervisor_start_ticks"])
        if strays:
            names = ", ".join(f"{command_name(pid)} (pid {pid})" for pid in strays)
            print(f"killing stray processes of the cluster's session: {names}", file=out)
            stopped_something = True
        for stray in strays:
            _kill(stray)
    run.remove_pid_files()
    print("stopped" if stopped_something else "Pairwise cluster not running", file=out)
    return 0


def status(run: RunFolder, *, out: TextIO = sys.stdout) -> int:
    """Print each process: pid, restarts, health. 0 = all healthy, 1 = degraded, 3 = stopped."""
    if not run.supervisor_running():
        print(f"Pairwise cluster not running (run folder {run.root})", file=out)
        orphans = [f"{name} (pid {child['pid']})"
                   for name, child in run.read_state().get("children", {}).items()
                   if child.get("pid") and is_same_process(child["pid"], child.get("start_ticks"))]
        if orphans:
            print(f"but its supervisor died and left running: {', '.join(orphans)}; "
                  "`make down` stops them", file=out)
        return NOT_RUNNING
    state = run.read_state()
    print(f"Pairwise cluster: supervisor pid {state.get('supervisor_pid')}, "
          f"gateway {state.get('gateway_addr')}, run folder {run.root}", file=out)
    print(f"  {'process':<10} {'pid':>8} {'restarts':>8}  {'health':<12} {'address':<22} log",
          file=out)
    healthy = True
    for name, child in state.get("children", {}).items():
        health = _health(child, state)
        healthy &= health in (health_probe.SERVING, "PONG")
        print(f"  {name:<10} {child.get('pid') or '-':>8} {child.get('restarts', 0):>8}  "
              f"{health:<12} {child.get('addr') or shown(state.get('redis_url', '')):<22} "
              f"{run.log_file(name)}", file=out)
    return 0 if healthy else 1


class ClusterError(RuntimeError):
    """The cluster did not start, or its state names no gateway; the message says which."""


@contextlib.contextmanager
def running(run: RunFolder, environ: Mapping[str, str], *,
            out: TextIO = sys.stdout) -> Iterator[str]:
    """The cluster of `run` serving for the duration of the block; yields its gateway
    address. Started here and stopped on exit, unless it already ran (then left running).

    Raises ClusterError when it does not become healthy (the logs' tails are printed).
    """
    started_here = not run.supervisor_running()
    if started_here and up(run, environ, out=out) != 0:
        raise ClusterError("the cluster did not start (its logs' tails are above)")
    try:
        addr = gateway_address(run)
        if addr is None:
            raise ClusterError("no gateway address in the run folder's state; try `make down` "
                               "then start again")
        yield addr
    finally:
        if started_here:
            down(run, out=out)


def gateway_address(run: RunFolder) -> str | None:
    """Where the running cluster's gateway listens, from the supervisor's state."""
    addr = run.read_state().get("gateway_addr")
    return str(addr) if addr else None


def _health(child: dict[str, Any], state: dict[str, Any]) -> str:
    if not child.get("running"):
        return "DOWN"
    if child.get("addr"):
        return _check(child["addr"], child.get("health"))
    client = redis.Redis.from_url(state.get("redis_url", ""), socket_connect_timeout=1.0)
    try:
        return "PONG" if client.ping() else "NO PONG"
    except redis.exceptions.RedisError as exc:
        return type(exc).__name__
    finally:
        client.close()


def _wait_healthy(supervisor: subprocess.Popen[bytes], topology: Topology,
                  timeout_s: float) -> bool:
    checked = [(p.addr, p.health) for p in topology.processes if p.addr]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if supervisor.poll() is not None:
            return False
        if all(_check(addr, health) == health_probe.SERVING for addr, health in checked):
            return True
        time.sleep(0.2)
    return False


def _check(addr: str, health: str | None) -> str:
    """The health of the service at `addr`, asked the way it answers (gRPC or HTTP)."""
    if health == HTTP:
        return health_probe.check_http(addr, timeout_s=1.0)
    return health_probe.check(addr, timeout_s=1.0)


def _print_log_tails(run: RunFolder, topology: Topology, out: TextIO, lines: int = 15) -> None:
    for name in ["supervisor", *(p.name for p in topology.processes)]:
        path = run.log_file(name)
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            continue
        print(f"--- {path}", file=out)
        for line in tail:
            print(f"    {line}", file=out)


def _print_running(run: RunFolder, topology: Topology, tokens: Tokens, out: TextIO) -> None:
    state = run.read_state()
    print(f"Pairwise cluster running (supervisor pid {state.get('supervisor_pid')}).", file=out)
    for name, child in state.get("children", {}).items():
        where = child.get("addr") or shown(topology.redis_url)
        print(f"  {name:<10} pid {child.get('pid')!s:<8} {where}", file=out)
    if not topology.embedded_redis:
        print(f"  redis      external {shown(topology.redis_url)} (REDIS_URL)", file=out)
    print(f"\nGateway: {topology.gateway_addr}  (pairwise.v1.GatewayService; health and "
          "reflection on)", file=out)
    print(f"Console: {topology.console_url}  (sign in with the admin token)", file=out)
    print("Tokens (metadata `authorization: Bearer <token>`):", file=out)
    for name in CLIENT_NAMES:
        value = tokens.as_env()[name]
        source = tokens.sources[name]
        print(f"  {name}={'(from the environment)' if source == 'environment' else value}",
              file=out)
    if any(tokens.sources[n] != "environment" for n in NAMES):
        print(f"  dev defaults kept in {run.tokens_file}; set the variables to override.",
              file=out)
    # The same commands as the README's first example, with this cluster's paths and address.
    print("\nTry it (buf comes with `make install`):", file=out)
    if tokens.sources[ADMIN] != "environment":
        print(f"  . {_shown(run.tokens_file)}", file=out)
    buf = Path(sys.executable).parent / "buf"
    print(f"  {_shown(buf) if buf.exists() else 'buf'} curl --protocol grpc "
          "--http2-prior-knowledge \\\n"
          "      -H \"authorization: Bearer $PAIRWISE_ADMIN_TOKEN\" \\\n"
          "      -d '{\"cause_id\":\"hello\",\"title\":\"Comment lutter contre les violences "
          "faites aux femmes ?\"}' \\\n"
          f"      http://{topology.gateway_addr}/pairwise.v1.GatewayService/CreateCause", file=out)
    print(f"\nLogs: {run.logs}/<name>.log   Status: make status   Stop: make down", file=out)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (as typed there)."""
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def port_in_use(port: int) -> bool:
    """True when a live socket holds `port` on 127.0.0.1.

    SO_REUSEADDR is what the servers themselves bind with (grpc, Valkey): with it a port whose
    only sockets are in TIME_WAIT, as after `make down`, counts as free, while a listener still
    makes the bind fail.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _terminate(pid: int, start_ticks: int | None, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after `grace_s` seconds; then the rest of its process group."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while is_same_process(pid, start_ticks) and time.monotonic() < deadline:
        time.sleep(0.05)
    if is_same_process(pid, start_ticks):
        _kill(pid)
    kill_group(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
