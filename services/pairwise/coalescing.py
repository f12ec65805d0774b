"""Coalescing: concurrent requests of one kind answered by one call per group (group commit).

Under load, one internal call or Redis round trip for a group of requests costs about what
one request alone costs; idle, a request waits for nothing but the current event-loop
iteration. Each request still gets its own answer or its own error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# One result per item: the item's answer, or the exception its request should raise.
RunGroup = Callable[[list[T]], Awaitable[Sequence[R | BaseException]]]


class Coalescer(Generic[T, R]):
    """Runs `run_group(items)` over the requests made at about the same time.

    A request joins the group of the current event-loop iteration; the group starts at the
    next iteration unless `max_in_flight` groups are already running, in which case it grows
    (up to `max_group` items) until one of them finishes. A group still running after
    `slow_after_s` seconds stops counting, so one stuck call (a peer that hangs until the
    deadline) does not hold every later request back. `run_group` returns one result per
    item, in order: a value, or an exception for that item alone; if `run_group` itself
    raises, every request of the group raises that exception. A request cancelled by its
    caller (deadline, disconnect) gets no answer; its item may still have been processed.
    """

    def __init__(self, run_group: RunGroup[T, R], *, max_group: int, max_in_flight: int,
                 slow_after_s: float = 0.25) -> None:
        if max_group < 1 or max_in_flight < 1:
            raise ValueError("max_group and max_in_flight must be at least 1")
        self._run_group = run_group
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._slow_after_s = slow_after_s
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """The result of `item` once its group ran; raises the item's or the group's error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending and not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._start_groups, loop)

    def _start_groups(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        while self._pending and self._in_flight < self._max_in_flight:
            group = [(item, future) for item, future in self._pending[:self._max_group]
                     if not future.done()]
            del self._pending[:self._max_group]
            if group:
                self._in_flight += 1
                slot = _Slot()
                slot.timer = loop.call_later(self._slow_after_s, self._release, slot, loop)
                task = loop.create_task(self._run(group, loop, slot))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _release(self, slot: _Slot, loop: asyncio.AbstractEventLoop) -> None:
        """The group holding `slot` finished or turned slow: let another one start."""
        if slot.held:
            slot.held = False
            self._in_flight -= 1
            self._schedule(loop)

    async def _run(self, group: list[tuple[T, asyncio.Future[R]]],
                   loop: asyncio.AbstractEventLoop, slot: _Slot) -> None:
        try:
            results = await self._run_group([item for item, _ in group])
        except asyncio.CancelledError:
            for _, future in group:
                future.cancel()
            raise
        except Exception as exc:
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            if slot.timer is not None:
                slot.timer.cancel()
            self._release(slot, loop)


class _Slot:
    """One in-flight group's claim on `max_in_flight`."""

    __slots__ = ("held", "timer")

    def __init__(self) -> None:
        self.held = True
        self.timer: asyncio.TimerHandle | None = None
