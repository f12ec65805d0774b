"""Starts the services as forks of one process that imported them once, so that a service
killed with SIGKILL serves again within a fraction of a second rather than after the seconds
its imports take on a loaded machine (tests/faults/test_chaos.py kills services dozens of
times a run). What a fork runs is what `python -m <service>` runs, from a process that has
started no thread, event loop, gRPC channel or Redis client: each fork starts clean.

Run as `python service_launcher.py`; one JSON request a line on stdin, one answer a line on
stdout:
    {"start": "gateway", "env": {...}, "log": "/path"}  ->  {"pid": 1234}
    {"kill": 1234}   SIGKILL, then reaped               ->  {"killed": 1234}
    {"alive": 1234}  reaps it if it has exited          ->  {"alive": false}
The fork's environment is exactly `env`; its stdout and stderr go to `log`. At the end of its
input the launcher kills the forks still running and exits.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import traceback

import gateway.server  # noqa: F401  imported once, here, for every fork
import ingest.server  # noqa: F401
import ranker.server  # noqa: F401

SERVICES = ("gateway", "ingest", "ranker")


def fork_service(service: str, env: dict[str, str], log: str) -> int:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    pid = os.fork()
    if pid:
        return pid
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(env)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        runpy.run_module(service, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    children: set[int] = set()
    for line in sys.stdin:
        request = json.loads(line)
        if "start" in request:
            pid = fork_service(request["start"], request["env"], request["log"])
            children.add(pid)
            answer: dict[str, object] = {"pid": pid}
        elif "kill" in request:
            pid = int(request["kill"])
            if pid in children:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                children.discard(pid)
            answer = {"killed": pid}
        else:
            pid = int(request["alive"])
            alive = pid in children and os.waitpid(pid, os.WNOHANG) == (0, 0)
            if not alive:
                children.discard(pid)
            answer = {"alive": alive}
        print(json.dumps(answer), flush=True)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
