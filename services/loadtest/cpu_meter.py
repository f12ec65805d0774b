"""CPU time spent during a run, from /proc: by each cluster process (with the workers it
spawned), by this load generator, and by anything else on the machine — so a report shows
where the cores went and whether something foreign shared them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _process_ticks(pid: int) -> tuple[int, int] | None:
    """(utime + stime in ticks, parent pid) of `pid`, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12]), int(fields[1])


def _machine_busy_ticks() -> int:
    """Ticks all CPUs spent not idle (nor waiting for I/O) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4]


@dataclass(frozen=True)
class CpuSnapshot:
    by_name: dict[str, int]
    machine_busy: int


class CpuMeter:
    """Measures `processes` (name -> pid, e.g. the run folder's state) and their children,
    plus this process. Without /proc (not Linux), `available` is False."""

    def __init__(self, processes: Mapping[str, int]) -> None:
        self.processes = dict(processes)
        self.available = Path("/proc/stat").exists()

    def snapshot(self) -> CpuSnapshot | None:
        if not self.available:
            return None
        by_pid: dict[int, tuple[int, int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                found = _process_ticks(int(entry.name))
                if found is not None:
                    by_pid[int(entry.name)] = found
        by_name = {name: 0 for name in self.processes}
        owner = {pid: name for name, pid in self.processes.items()}
        owner[os.getpid()] = "loadtest"
        by_name["loadtest"] = 0
        for pid, (ticks, parent) in by_pid.items():
            # Direct children count for their parent: the ranker's fit workers, the
            # embedded baseline server.
            name = owner.get(pid) or owner.get(parent)
            if name is not None:
                by_name[name] += ticks
        return CpuSnapshot(by_name, _machine_busy_ticks())

    @staticmethod
    def usage(before: CpuSnapshot | None, after: CpuSnapshot | None, seconds: float,
              votes: int) -> dict[str, Any] | None:
        """CPU seconds per process between two snapshots, "other" for the rest of the
        machine's busy time, and microseconds of CPU per vote."""
        if before is None or after is None or seconds <= 0:
            return None
        spent = {name: (after.by_name.get(name, 0) - before.by_name.get(name, 0)) * _TICK_S
                 for name in after.by_name}
        busy = (after.machine_busy - before.machine_busy) * _TICK_S
        spent["other"] = max(0.0, busy - sum(spent.values()))
        return {"wall_s": round(seconds, 3), "cores_busy": round(busy / seconds, 3),
                "cpu_s": {k: round(v, 3) for k, v in spent.items()},
                "cpu_us_per_vote": ({k: round(v / votes * 1e6, 2) for k, v in spent.items()}
                                    if votes else None)}
