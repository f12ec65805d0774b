"""The gateway's channels to the internal services: ingest, and one ranker per shard."""

from __future__ import annotations

import json

import grpc

from pairwise.sharding import shard_of
from pairwise.v1 import ingest_pb2_grpc, ranker_pb2_grpc

# Retried on UNAVAILABLE only: every internal call is a read or an idempotent write
# (votes carry a vote_id or idempotency key), so a repeat cannot double-count.
_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "pairwise.v1.IngestService"},
                 {"service": "pairwise.v1.RankerService"}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})

_CHANNEL_OPTIONS = [
    ("grpc.service_config", _SERVICE_CONFIG),
    ("grpc.enable_retries", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
]


class Upstreams:
    """grpc.aio channels to ingest and the ranker shards; create inside the event loop."""

    def __init__(self, ingest_addr: str, ranker_addrs: tuple[str, ...]) -> None:
        if not ranker_addrs:
            raise ValueError("at least one ranker address is needed")
        self._channels = [grpc.aio.insecure_channel(ingest_addr, options=_CHANNEL_OPTIONS)]
        self.ingest = ingest_pb2_grpc.IngestServiceStub(self._channels[0])
        self._rankers = []
        for addr in ranker_addrs:
            channel = grpc.aio.insecure_channel(addr, options=_CHANNEL_OPTIONS)
            self._channels.append(channel)
            self._rankers.append(ranker_pb2_grpc.RankerServiceStub(channel))

    def ranker_for(self, cause_id: str) -> ranker_pb2_grpc.RankerServiceStub:
        """The ranker replica that consumes and serves `cause_id` (pairwise.sharding)."""
        return self._rankers[shard_of(cause_id, len(self._rankers))]

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
