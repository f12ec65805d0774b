"""The live view of a run: a rich progress bar per mode (time used, or votes sent out of a
budget; votes sent, OK votes/s, votes counted, lag, errors) on a terminal; a plain line every
few seconds elsewhere."""

from __future__ import annotations

import time
from collections import deque
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from loadtest.campaign import Campaign


class _Rate:
    """Per-second rate of a growing counter over the last `window_s` seconds."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, int]] = deque()

    def update(self, value: int) -> float:
        now = time.monotonic()
        self._points.append((now, value))
        while len(self._points) > 2 and now - self._points[0][0] > self.window_s:
            self._points.popleft()
        (t0, v0), (t1, v1) = self._points[0], self._points[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0


class LiveProgress:
    """Use as a context manager; call `refresh()` often (it is cheap). The bars fill with
    time up to `duration_s`, or with votes sent up to `votes` when given."""

    def __init__(self, campaigns: list[Campaign], duration_s: float, out: TextIO,
                 plain_every_s: float = 5.0, votes: int | None = None) -> None:
        self.campaigns = campaigns
        self.duration_s = duration_s
        self.votes = votes
        self.console = Console(file=out)
        self.live = self.console.is_terminal
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self._rates = {c.mode: (_Rate(), _Rate()) for c in campaigns}
        self._progress = Progress(
            TextColumn("{task.description:<11}"), BarColumn(bar_width=24),
            TimeElapsedColumn(), TextColumn("{task.fields[line]}"),
            console=self.console, disable=not self.live, refresh_per_second=4)
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self._progress.__enter__()
        for campaign in self.campaigns:
            self._tasks[campaign.mode] = self._progress.add_task(
                campaign.mode, total=self.votes or self.duration_s, line="starting")
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.refresh()
        self._progress.__exit__(kind, value, trace)

    def line(self, campaign: Campaign) -> str:
        c = campaign.counters
        ok_rate, counted_rate = self._rates[campaign.mode]
        return (f"sent {c.sent:>10,}  OK {c.ok:>10,} ({ok_rate.update(c.ok):>8,.0f}/s)  "
                f"counted {campaign.counted:>10,} ({counted_rate.update(campaign.counted):>8,.0f}"
                f"/s)  lag {max(0, c.ok - campaign.counted):>8,}  errors {c.errors.total():,}")

    def refresh(self) -> None:
        now = time.monotonic()
        plain = not self.live and now - self._last_plain >= self.plain_every_s
        for campaign in self.campaigns:
            line = self.line(campaign)
            if self.live:
                done = (min(self.votes, campaign.counters.sent) if self.votes
                        else min(self.duration_s, campaign.elapsed()))
                self._progress.update(self._tasks[campaign.mode], completed=done, line=line)
            elif plain:
                self.console.print(f"[{campaign.elapsed():6.1f} s] {campaign.mode:<11} {line}",
                                   highlight=False)
        if plain:
            self._last_plain = now

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)
