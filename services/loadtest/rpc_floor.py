"""`python -m loadtest.rpc_floor`: how many empty unary gRPC calls per second this machine
serves, an asyncio (grpc.aio) server and client on the same cores, as the cluster's gateway
and the load generator run.

Every interactive vote is at least one such call (SubmitVote, the next pair in its reply), so
this is the ceiling of interactive votes/s that no work inside the gateway, ingest or Redis
can raise: a figure that is below a votes/s goal says the goal needs faster cores (or more of
them), not leaner code. The server answers the standard health check, with nothing behind it;
it runs in a process of its own, on the cluster's event loop (`pairwise.event_loop`), on a
free loopback port; each run is bounded in time and the server stops with the tool.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pairwise import event_loop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    event_loop.run(main())


async def _calls_per_s(port: int, callers: int, seconds: float) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        request = health_pb2.HealthCheckRequest()
        await check(request, wait_for_ready=True, timeout=10)
        done = 0
        stop = time.monotonic() + seconds

        async def caller() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await check(request, timeout=10)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(callers)))
        return done / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--callers", type=int, default=64, help="calls in flight at once")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,),
                                                           daemon=True)
    server.start()
    try:
        rates = [event_loop.run(_calls_per_s(port, args.callers, args.seconds))
                 for _ in range(args.runs)]
    finally:
        server.terminate()
        server.join(5)
    print(f"empty unary gRPC calls/s, {args.callers} in flight, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}: median {statistics.median(rates):,.0f} "
          f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
