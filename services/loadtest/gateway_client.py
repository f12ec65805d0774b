"""The load generator's side of `pairwise.v1.GatewayService`: grpc.aio calls that time
themselves and tally their failures by status code."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from cluster.tokens import ADMIN, PLATFORM, read_file
from loadtest.measurements import ModeCounters
from pairwise.v1 import gateway_pb2_grpc

RPC_TIMEOUT_S = 10.0
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


@dataclass(frozen=True)
class Credentials:
    admin: str
    platform: str


def credentials(environ: Mapping[str, str], run_dir: Path) -> Credentials | None:
    """The cluster's bearer tokens: the environment's, else those `make up` saved in the
    run folder's tokens.env; None when neither has both."""
    stored = read_file(run_dir / "tokens.env")
    admin = environ.get(ADMIN) or stored.get(ADMIN)
    platform = environ.get(PLATFORM) or stored.get(PLATFORM)
    return Credentials(admin, platform) if admin and platform else None


class Gateway:
    """`channels` connections to the gateway, each call on the next; every call is timed
    into the given mode's counters.

    Several gateway processes sharing one port (SO_REUSEPORT) each serve the connections
    the kernel hands them, so one connection would load one process: each channel keeps a
    connection of its own (a local subchannel pool).
    """

    def __init__(self, target: str, creds: Credentials, channels: int = 1) -> None:
        self.channels = [
            grpc.aio.insecure_channel(target, options=[
                *_CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)])
            for _ in range(max(1, channels))]
        self._stubs = itertools.cycle(
            [gateway_pb2_grpc.GatewayServiceStub(c) for c in self.channels])
        self._admin = (("authorization", f"Bearer {creds.admin}"),)
        self._platform = (("authorization", f"Bearer {creds.platform}"),)

    async def call(self, rpc: str, request: Any, counters: ModeCounters | None = None, *,
                   admin: bool = False, timeout: float = RPC_TIMEOUT_S) -> Any:
        """Call `rpc` (a GatewayService method name) with `request` (for ImportVotes, a list
        of requests streamed in one call). Raises grpc.aio.AioRpcError after tallying it."""
        method = getattr(next(self._stubs), rpc)
        metadata = self._admin if admin else self._platform
        started = time.perf_counter()
        try:
            reply = await method(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if counters is not None:
                counters.errors.add(rpc, exc.code().name, exc.details() or "")
            raise
        if counters is not None:
            counters.latencies.add(rpc, time.perf_counter() - started)
        return reply

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
