"""Facts about processes from /proc (Linux): who a pid is, which session it belongs to.

A pid alone can be recycled; a pid with its start time (clock ticks since boot) names one
process, which is how `down` makes sure it stops only what `up` started.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started (/proc/<pid>/stat field 22), or None when no such process runs."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def is_same_process(pid: int, start_ticks: int | None) -> bool:
    """True when `pid` is alive (not a zombie) and, when `start_ticks` is known, is the
    process that started then."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def members(*, session: int | None = None, group: int | None = None,
            started_since: int = 0) -> list[int]:
    """Live pids in `session` and/or process `group` that started at or after
    `started_since` clock ticks since boot."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if (fields is None or fields[0] == "Z" or int(fields[19]) < started_since
                or (group is not None and int(fields[2]) != group)
                or (session is not None and int(fields[3]) != session)):
            continue
        found.append(int(entry.name))
    return found


def kill_group(pgid: int, wait_s: float = 2.0) -> None:
    """SIGKILL every process left in process group `pgid` (none left is fine), and wait up
    to `wait_s` seconds for them to be gone."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait_s
    while members(group=pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def command_name(pid: int) -> str:
    """The short command name of `pid` (/proc/<pid>/comm), or "?" when it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, pgrp, session, ...), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: split after its last ')'.
    return stat.rsplit(")", 1)[1].split()
