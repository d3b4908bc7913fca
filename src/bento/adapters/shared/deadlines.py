"""Handler deadlines without a timer per message.

`asyncio.timeout` schedules and cancels a timer for every call; at tens of thousands
of deliveries a second that is a large share of a consumer's time. Handler timeouts
are long (minutes) and need no millisecond precision, so one watchdog per event loop
keeps the deadlines of the running handlers in a dict and, twice a second, cancels
the tasks that overran. `Watchdog.expired` then turns that cancellation into
TimeoutError (and `uncancel`s the task), exactly as `asyncio.timeout` would.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: How often the watchdog looks; a handler may overrun its deadline by this much.
TICK_SECONDS = 0.5

_Task = asyncio.Task[object]


class Watchdog:
    """The deadlines of one event loop's running handlers (get it with `watchdog()`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._deadlines: dict[_Task, float] = {}
        self._expired: set[_Task] = set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self, task: _Task, timeout: float) -> float | None:
        """Start watching `task`; returns the outer deadline to hand back to `leave`
        (nested deadlines in one task keep the earlier one)."""
        deadline = self._loop.time() + timeout
        previous = self._deadlines.get(task)
        self._deadlines[task] = deadline if previous is None else min(previous, deadline)
        if self._timer is None:
            self._timer = self._loop.call_later(TICK_SECONDS, self._tick)
        return previous

    def leave(self, task: _Task, previous: float | None) -> None:
        if previous is None:
            del self._deadlines[task]
            if self._expired:
                self._expired.discard(task)
        else:
            self._deadlines[task] = previous

    def expired(self, task: _Task, previous: float | None) -> bool:
        """Call on CancelledError: True (and the task un-cancelled) when the watchdog
        cancelled it for overrunning, False for any other cancellation."""
        if previous is None and task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    def _tick(self) -> None:
        self._timer = None
        now = self._loop.time()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            self._timer = self._loop.call_later(TICK_SECONDS, self._tick)


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = weakref.WeakKeyDictionary()
_last: tuple[asyncio.AbstractEventLoop | None, Watchdog | None] = (None, None)


def watchdog() -> Watchdog:
    """The running loop's watchdog (the last one is cached: a consumer asks per message)."""
    global _last
    loop = asyncio.get_running_loop()
    cached_loop, cached = _last
    if cached_loop is loop and cached is not None:
        return cached
    found = _watchdogs.get(loop)
    if found is None:
        found = _watchdogs[loop] = Watchdog(loop)
    _last = (loop, found)
    return found


async def run_with_deadline(awaitable: Awaitable[T], timeout: float) -> T:
    """Await `awaitable`; raise TimeoutError if it runs more than about `timeout` seconds."""
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always inside a task under asyncio
        return await awaitable
    dog = watchdog()
    previous = dog.enter(task, timeout)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if dog.expired(task, previous):
            raise TimeoutError(f"handler ran longer than {timeout:g} s") from None
        raise
    finally:
        dog.leave(task, previous)
