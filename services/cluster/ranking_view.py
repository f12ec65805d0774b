"""The live ranking in a terminal: a frame of plain text redrawn in place with ANSI codes
(no dependency), or, when output is not a terminal, one progress line now and then."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

BOLD, DIM, RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"
HOME, CLEAR_LINE, CLEAR_BELOW, CLEAR_SCREEN = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"


@dataclass(frozen=True)
class Row:
    rank: int
    score: float  # 0-100
    ci_low: float  # ability, 95 %
    ci_high: float
    wins: int
    losses: int
    ties: int
    text: str
    # Hidden true rank: shown only in the final table, never while the demo runs.
    true_rank: int | None = None


@dataclass(frozen=True)
class Frame:
    title: str
    cause_id: str
    elapsed_s: float
    duration_s: float
    votes_counted: int
    votes_accepted: int
    lag: int
    votes_per_s: float
    voters: int
    ties: int
    skips: int
    proposals_accepted: int
    proposals_pending: int
    proposals_rejected: int
    rows: Sequence[Row]
    events: Sequence[str] = field(default_factory=tuple)


def render(frame: Frame, width: int, max_rows: int) -> list[str]:
    """The frame as lines at most `width` characters wide (before ANSI styling)."""
    lines = [
        f"{BOLD}Pairwise live ranking{RESET}  {frame.title}",
        f"{DIM}cause {frame.cause_id} · {frame.elapsed_s:5.1f} s / {frame.duration_s:.0f} s"
        f"{RESET}",
        f"votes counted {BOLD}{frame.votes_counted:,}{RESET} of {frame.votes_accepted:,} "
        f"accepted (lag {frame.lag:,}) · {frame.votes_per_s:,.0f} votes/s · "
        f"{frame.voters:,} voters · {frame.ties:,} ties · {frame.skips:,} skips",
        f"proposals: {frame.proposals_accepted} accepted · {frame.proposals_pending} pending · "
        f"{frame.proposals_rejected} rejected",
        "",
        *table(frame.rows[:max_rows], width),
    ]
    if frame.events:
        lines += ["", f"{DIM}events{RESET}", *(f"  {event}" for event in frame.events[-4:])]
    return lines


def table(rows: Sequence[Row], width: int) -> list[str]:
    """Rank, score, 95 % interval of the ability, W/L/T and the proposal text, truncated."""
    with_truth = any(row.true_rank is not None for row in rows)
    head = f"{'rank':>4} {'true':>4} " if with_truth else f"{'rank':>4} "
    head += f"{'score':>5}  {'95% CI ability':<14} {'W':>5} {'L':>5} {'T':>4}  proposal"
    text_width = max(20, width - len(head) + len("proposal"))
    lines = [f"{BOLD}{head}{RESET}"]
    for row in rows:
        line = f"{row.rank:>4} "
        if with_truth:
            line += f"{row.true_rank if row.true_rank is not None else '-':>4} "
        line += (f"{row.score:5.1f}  [{row.ci_low:+5.2f}, {row.ci_high:+5.2f}] "
                 f"{row.wins:>5} {row.losses:>5} {row.ties:>4}  {truncate(row.text, text_width)}")
        lines.append(line)
    return lines


def truncate(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


class LiveTerminal:
    """Redraws frames in place on a terminal; elsewhere prints a progress line every
    `plain_every_s` seconds so logs stay short."""

    def __init__(self, out: TextIO = sys.stdout, plain_every_s: float = 5.0) -> None:
        self.out = out
        self.interactive = out.isatty()
        self.plain_every_s = plain_every_s
        self._last_plain = -1e9
        self._cleared = False

    @property
    def width(self) -> int:
        """Columns to lay tables out in: the terminal's, or a wide page for logs."""
        return shutil.get_terminal_size((100, 30)).columns if self.interactive else 160

    def show(self, frame: Frame) -> None:
        if not self.interactive:
            now = time.monotonic()
            if now - self._last_plain >= self.plain_every_s:
                self._last_plain = now
                print(f"[{frame.elapsed_s:5.1f} s] votes counted {frame.votes_counted:,} "
                      f"(lag {frame.lag:,}, {frame.votes_per_s:,.0f}/s), leader: "
                      f"{frame.rows[0].text if frame.rows else '-'}", file=self.out, flush=True)
            return
        size = shutil.get_terminal_size((100, 30))
        lines = render(frame, size.columns, max_rows=max(5, size.lines - 14))
        prefix = HOME if self._cleared else CLEAR_SCREEN + HOME
        self._cleared = True
        self.out.write(prefix + "".join(f"{line}{CLEAR_LINE}\n" for line in lines) + CLEAR_BELOW)
        self.out.flush()

    def print(self, lines: Sequence[str]) -> None:
        """Plain lines after the live view (styling stripped when not a terminal)."""
        for line in lines:
            if not self.interactive:
                for code in (BOLD, DIM, RESET):
                    line = line.replace(code, "")
            print(line, file=self.out)
        self.out.flush()
