"""Ask a gRPC server for its standard health status (grpc.health.v1); exit 0 only when SERVING.

`python -m pairwise.health_probe 127.0.0.1:50051` is the compose healthcheck of every
service and what `python -m cluster status` reports.
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVING = "SERVING"
UNREACHABLE = "UNREACHABLE"


def check(addr: str, service: str = "", timeout_s: float = 2.0) -> str:
    """Health of `service` ("" = the whole server) at `addr` ("host:port").

    Returns the status name ("SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", ...), or
    "UNREACHABLE" when no answer came within `timeout_s` seconds, or the gRPC status code
    name (e.g. "NOT_FOUND" for an unknown service) when the check itself failed. Never raises
    for network errors.
    """
    with grpc.insecure_channel(addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return UNREACHABLE
            return str(code.name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("addr", help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help="service name; the whole server if empty")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds")
    args = parser.parse_args(argv)
    status = check(args.addr, args.service, args.timeout)
    print(status)
    return 0 if status == SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
