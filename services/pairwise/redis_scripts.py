"""Lua scripts on Redis: every script of every service runs through `ScriptRunner`.

A script is sent by its SHA1 (EVALSHA), never by its text; one the server does not know
(first use, Redis restarted, or SCRIPT FLUSH) is loaded and only the calls that did not run
are sent again. Calls go in pipelined round trips: the calls made at about the same time
share one (`run`), or a caller sends its own list in one (`run_all`). Under a few hundred
concurrent voters every NextPair and SubmitVote runs a script; one pipeline per event-loop
iteration costs a fraction of one round trip per call, and each call still gets its own
reply or error.

On a Redis Cluster (pairwise.redis_client) each script call runs on the node of its keys'
slot (every call names keys of one slot); the round trip is one pipeline per node, sent to
the nodes at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from pairwise.coalescing import Coalescer
from pairwise.redis_client import is_cluster_client

# Pipelined calls per shared round trip at most, and shared round trips in flight at once
# (one at a time makes the groups larger: less CPU per call under load, one round trip of
# wait when idle).
MAX_GROUP = 256
MAX_IN_FLIGHT = 1

ScriptArg = str | int | float | bytes | memoryview


@dataclass(frozen=True)
class Script:
    """A Lua script and the SHA1 that EVALSHA names it by."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# One script call: the script, its KEYS and its ARGV.
Call = tuple[Script, Sequence[str], Sequence[ScriptArg]]


@dataclass(frozen=True)
class FollowUp:
    """A command sent after the scripts of every round trip, on the same connection, so Redis
    runs it after them (marking the causes written as awake, WAITAOF after writes). `check`
    receives its reply, or its error reply as an exception, and may raise to fail the whole
    `run_all`.

    On a Redis Cluster the scripts run on several nodes, and a command with keys runs on its
    slot's node: it is sent once every script replied, in a round trip of its own. One that
    is about the connection (`per_connection`: WAITAOF covers the writes made on its own
    connection) goes instead to every master, each on the connection that ran that node's
    scripts, and `check` receives the masters' replies in a dict by node name."""

    command: tuple[str | int, ...]
    check: Callable[[Any], None]
    per_connection: bool = False


class ScriptRunner:
    """EVALSHA through pipelines on `redis_client` (a redis.asyncio client).

    A Redis error reply to one call is that call's error only; a connection failure or a
    timeout raises for every call of its round trip.
    """

    def __init__(self, redis_client: Redis, *, max_group: int = MAX_GROUP,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._redis = redis_client
        self._cluster = is_cluster_client(redis_client)
        self._groups: Coalescer[Call, Any] = Coalescer(
            self.run_all, max_group=max_group, max_in_flight=max_in_flight)

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """The reply of `script` run with `keys` and `args`, sent in one round trip with the
        other calls of `run` made at about the same time. Raises the call's error reply."""
        return await self._groups.submit((script, keys, args))

    async def run_now(self, script: Script, keys: Sequence[str],
                      args: Sequence[ScriptArg]) -> Any:
        """Like `run`, in a round trip of its own, sent at once (a call that must not wait
        behind other callers' groups, or that is large enough to slow them down)."""
        (reply,) = await self.run_all([(script, keys, args)])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def run_all(self, calls: Sequence[Call], *,
                      follow_ups: Sequence[FollowUp] = ()) -> list[Any]:
        """Run `calls` in one pipelined round trip, in order; per call, its reply or its error
        reply as an exception (returned, not raised).

        Calls whose script the server does not know are sent again, in a further round trip,
        once their scripts are loaded; the `follow_ups` go, in order, after the calls of
        every round trip.
        """
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        while todo:
            results = await self._round_trip([calls[i] for i in todo], follow_ups)
            missing: list[int] = []
            moved: list[redis.exceptions.MovedError] = []
            for i, result in zip(todo, results, strict=True):
                if isinstance(result, redis.exceptions.NoScriptError):
                    missing.append(i)
                elif isinstance(result, redis.exceptions.MovedError) and self._cluster:
                    missing.append(i)
                    moved.append(result)
                else:
                    replies[i] = result
            for script in {calls[i][0] for i in missing}:
                await self._redis.script_load(script.source)
            for redirect in moved:
                await self._redis.nodes_manager.move_slot(redirect)  # type: ignore[attr-defined]
            todo = missing
        return replies

    async def _round_trip(self, calls: Sequence[Call],
                          follow_ups: Sequence[FollowUp]) -> list[Any]:
        """The replies of `calls`, sent in one pipeline, after which the `follow_ups` are
        sent and checked."""
        if self._cluster:
            return await self._cluster_round_trip(calls, follow_ups)
        async with self._redis.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
            for follow_up in follow_ups:
                pipe.execute_command(*follow_up.command)
            results = await pipe.execute(raise_on_error=False)
        for follow_up, result in zip(follow_ups, results[len(calls):], strict=True):
            follow_up.check(result)
        return list(results[:len(calls)])

    async def _cluster_round_trip(self, calls: Sequence[Call],
                                  follow_ups: Sequence[FollowUp]) -> list[Any]:
        """`_round_trip` on a Redis Cluster: a call whose slot moved (a failover) is not
        followed to its new node by the client, but answered MovedError, so that `run_all`
        sends it again with the `follow_ups` of its new round trip (a WAITAOF must follow
        it on its new node's connection)."""
        on_connection = [f for f in follow_ups if f.per_connection]
        after = [f for f in follow_ups if not f.per_connection]
        cluster: RedisCluster = self._redis  # type: ignore[assignment]
        # The client's map of the slots (made at the first command, refreshed after errors).
        await cluster.initialize()
        # The nodes the calls go to, by that map, with the calls each.
        nodes: dict[str, tuple[ClusterNode, list[int]]] = {}
        for i, (_, keys, _) in enumerate(calls):
            try:
                node = cluster.get_node_from_key(keys[0]) if keys else None
            except redis.exceptions.SlotNotCoveredError:
                node = None  # the call fails on its own
            if node is not None:
                nodes.setdefault(node.name, (node, []))[1].append(i)
        # Each follow-up is sent to each node on its own: sent to several nodes at once, the
        # client would merge their replies (it sums WAIT's, so one master's 0 and another's 1
        # would pass for 1) and turn one node's error into the whole command's.
        checks = [(follow_up, name) for follow_up in on_connection for name in nodes]
        async with cluster.pipeline(transaction=False) as pipe:
            for script, keys, args in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
            for follow_up, name in checks:
                pipe.execute_command(*follow_up.command, target_nodes=[nodes[name][0]])
            results = await pipe.execute(raise_on_error=False, allow_redirections=False)
        # A node whose every call was redirected is no longer the master of their slots: it
        # wrote nothing of them, and its answer (a replica refusing) concerns no write.
        moved = {name for name, (_, called) in nodes.items()
                 if all(isinstance(results[i], redis.exceptions.MovedError) for i in called)}
        for (follow_up, name), result in zip(checks, results[len(calls):], strict=True):
            if name not in moved:
                follow_up.check(result)
        for follow_up in after:
            try:
                reply = await self._redis.execute_command(*follow_up.command)
            except redis.exceptions.ResponseError as error:
                reply = error
            follow_up.check(reply)
        return list(results[:len(calls)])
