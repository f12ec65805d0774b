"""The run folder: everything a local cluster leaves on disk, in one place.

    run/
      supervisor.pid   supervisor.lock   state.json   tokens.env (mode 600)
      logs/<name>.log  pids/<name>.pid   redis/ (AOF of the embedded server)

`state.json` is written by the supervisor (atomically) and read by `status`, `down`, `demo`.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def redis_data(self) -> Path:
        return self.root / "redis"

    @property
    def supervisor_pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def tokens_file(self) -> Path:
        return self.root / "tokens.env"

    def create(self) -> RunFolder:
        for folder in (self.root, self.logs, self.pids, self.redis_data):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def write_pid(self, path: Path, pid: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, f"{pid}\n")

    def read_pid(self, path: Path) -> int | None:
        """The pid in `path`, or None when the file is missing or unreadable."""
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def read_state(self) -> dict[str, Any]:
        """The supervisor's last written state, or {} when there is none."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        _replace(self.state_file, json.dumps(state, indent=2) + "\n")

    def remove_pid_files(self) -> None:
        for path in [self.supervisor_pid_file, *self.pids.glob("*.pid")]:
            path.unlink(missing_ok=True)

    def supervisor_running(self) -> bool:
        """True while a supervisor holds the run folder's lock (it holds it for its lifetime,
        so a crashed supervisor never looks alive, whatever its pid file says)."""
        if not self.lock_file.exists():
            return False
        with open(self.lock_file, "a") as probe:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(probe, fcntl.LOCK_UN)
            return False

    def hold_lock(self) -> int:
        """Take the supervisor lock for the life of this process; returns the open fd.

        Raises BlockingIOError when another supervisor already holds it.
        """
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise
        return fd


def _replace(path: Path, text: str) -> None:
    # Write then rename, so a reader never sees a half-written file; mode 600 from the start
    # (the state holds the Redis URL, password included).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)
