"""Where a cause's Redis memory goes: bytes by key family, per vote and per voter.

    python -m loadtest.redis_memory --cause ID [--cause ID ...] [--redis-url URL] [--run-dir run]

Every key of a cause carries its hash tag (`pairwise.keys`); the keys are found with SCAN on
the tag and sized with MEMORY USAGE (the server's own estimate, allocator overhead included),
then grouped by family — the key's prefix before the tag (`votes`, `receipts`, `seen`, ...) —
with whether the family's keys expire (used prompt tokens and seen pairs do; see
`pairwise.keys`).
Per vote divides by the votes in the cause's log (`XLEN` counts entries, so a bulk entry of
1,000 votes counts 1,000 — the vote-id field holds them all); per voter divides by the voters
with a seen-pair set. The figures an operator sizes `maxmemory` from: docs/performance.md.
Without `--redis-url` the URL of the cluster `make up` started is read from the run folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis

from cluster.run_folder import RunFolder
from pairwise import keys

SCAN_COUNT = 1_000


def family(key: str, cause_id: str) -> str:
    """The family of one of the cause's keys: its prefix before the cause's hash tag."""
    return key.split(":{" + cause_id + "}", 1)[0]


def cause_memory(client: redis.Redis, cause_id: str) -> dict[str, Any]:
    """Bytes and keys by family for one cause, with its votes and voters."""
    by_family: dict[str, dict[str, int]] = defaultdict(lambda: {"keys": 0, "bytes": 0})
    expiring: dict[str, bool] = {}
    pattern, cursor = f"*{{{_glob_escape(cause_id)}}}*", 0
    while True:
        # One round trip per SCAN page, not per key: a cause may keep a key per voter.
        cursor, page = client.scan(cursor, match=pattern, count=SCAN_COUNT)
        names = [key.decode() if isinstance(key, bytes) else str(key) for key in page]
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.memory_usage(name, samples=0)
                pipe.ttl(name)
            replies = pipe.execute()
        for name, size, ttl in zip(names, replies[::2], replies[1::2], strict=True):
            if size is None:  # expired between SCAN and MEMORY USAGE
                continue
            kind = family(name, cause_id)
            by_family[kind]["keys"] += 1
            by_family[kind]["bytes"] += int(size)
            expiring.setdefault(kind, ttl >= 0)  # a family's keys all expire, or none does
        if cursor == 0:
            break
    votes = _votes_in_log(client, cause_id)
    total = sum(f["bytes"] for f in by_family.values())
    return {
        "cause_id": cause_id, "votes": votes,
        "voters_with_seen_pairs": by_family["seen"]["keys"] if "seen" in by_family else 0,
        "bytes": total,
        "bytes_per_vote": round(total / votes, 1) if votes else None,
        "families": {
            name: {**f, "bytes_per_vote": round(f["bytes"] / votes, 1) if votes else None,
                   "bytes_per_key": round(f["bytes"] / f["keys"], 1),
                   "expires": expiring[name]}
            for name, f in sorted(by_family.items(), key=lambda item: -item[1]["bytes"])},
    }


def _votes_in_log(client: redis.Redis, cause_id: str) -> int:
    """Votes in the cause's log: one per character of each entry's kinds (`pairwise.vote_log`)."""
    votes, after = 0, "-"
    while True:
        page: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
            keys.votes(cause_id), min=after, max="+", count=SCAN_COUNT)
        if not page:
            return votes
        votes += sum(len(fields[b"k"]) for _, fields in page)
        after = "(" + page[-1][0].decode()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.redis_memory",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--cause", action="append", required=True, help="cause id (repeatable)")
    parser.add_argument("--redis-url", help="default: the URL `make up` wrote to the run folder")
    parser.add_argument("--run-dir", type=Path, default=Path("run"))
    args = parser.parse_args(argv)
    url = args.redis_url or RunFolder(args.run_dir).read_state().get("redis_url")
    if not url:
        print(f"no --redis-url and no running cluster in {args.run_dir}/", file=sys.stderr)
        return 2
    client = redis.Redis.from_url(url)
    try:
        print(json.dumps([cause_memory(client, cause) for cause in args.cause], indent=2))
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
