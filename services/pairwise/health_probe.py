"""Ask a gRPC server for its standard health status (grpc.health.v1); exit 0 only when SERVING.

`python -m pairwise.health_probe 127.0.0.1:50051` is the compose healthcheck of every
service and what `python -m cluster status` reports; `--tls-cert FILE` probes a port that
speaks TLS (a gateway with GATEWAY_TLS_CERT), trusting that certificate, and `--tls-name`
the name it is checked against when not the host dialled; `--port-file FILE 127.0.0.1`
probes the port a server wrote to FILE (a ranker started on any free port).
With `--http`, the same question to an HTTP service (the console): SERVING when its /healthz
answers 200.
"""

from __future__ import annotations

import argparse
import http.client
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pairwise import tls

SERVING = "SERVING"
UNREACHABLE = "UNREACHABLE"


def check(addr: str, service: str = "", timeout_s: float = 2.0, *,
          tls_trusted: bytes | None = None, tls_name: str | None = None) -> str:
    """Health of `service` ("" = the whole server) at `addr` ("host:port").

    Returns the status name ("SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", ...), or
    "UNREACHABLE" when no answer came within `timeout_s` seconds, or the gRPC status code
    name (e.g. "NOT_FOUND" for an unknown service) when the check itself failed. Never raises
    for network errors. With `tls_trusted` (PEM), over TLS trusting that certificate.
    """
    channel = (grpc.insecure_channel(addr) if tls_trusted is None else
               grpc.secure_channel(addr, tls.client_credentials(tls_trusted),
                                   options=tls.name_override(tls_name)))
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return UNREACHABLE
            return str(code.name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def check_http(addr: str, timeout_s: float = 2.0) -> str:
    """SERVING when GET http://`addr`/healthz answers 200; "HTTP <status>" for another
    answer, UNREACHABLE for none within `timeout_s` seconds. Never raises for network errors.
    """
    host, _, port = addr.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
    try:
        connection.request("GET", "/healthz")
        status = connection.getresponse().status
    except OSError:
        return UNREACHABLE
    finally:
        connection.close()
    return SERVING if status == 200 else f"HTTP {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("addr", help="host:port of the gRPC server (host alone with "
                        "--port-file)")
    parser.add_argument("--port-file", type=Path,
                        help="file holding the server's port (UNREACHABLE while missing)")
    parser.add_argument("--service", default="", help="service name; the whole server if empty")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds")
    parser.add_argument("--tls-cert", default="",
                        help="PEM certificate to trust (the server's own or its CA's): probe "
                             "over TLS; empty: plaintext")
    parser.add_argument("--http", action="store_true",
                        help="an HTTP service: GET /healthz instead of grpc.health.v1")
    parser.add_argument("--tls-name", default="",
                        help="the name the server's certificate is checked against "
                             "(default: the host in addr)")
    args = parser.parse_args(argv)
    addr = args.addr
    if args.port_file is not None:
        try:
            addr = f"{addr}:{int(args.port_file.read_text())}"
        except (OSError, ValueError):
            print(UNREACHABLE)
            return 1
    trusted = Path(args.tls_cert).read_bytes() if args.tls_cert else None
    status = (check_http(addr, args.timeout) if args.http
              else check(addr, args.service, args.timeout, tls_trusted=trusted,
                         tls_name=args.tls_name or None))
    print(status)
    return 0 if status == SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
