"""Handler deadlines without a timer per message.

`asyncio.timeout` schedules and cancels a timer for every call; at tens of thousands
of deliveries a second that is a large share of a consumer's time. Handler timeouts
are long (minutes) and need no millisecond precision, so one watchdog per event loop
keeps the deadlines of the running handlers in a dict and, twice a second, cancels
the tasks that overran. `run_with_deadline` turns that cancellation into TimeoutError
(and `uncancel`s the task), exactly as `asyncio.timeout` would.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: How often the watchdog looks; a handler may overrun its deadline by this much.
TICK_SECONDS = 0.5


class _Watchdog:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.deadlines: dict[asyncio.Task[object], float] = {}
        self.expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, task: asyncio.Task[object], deadline: float) -> None:
        self.deadlines[task] = deadline
        if self._timer is None:
            self._timer = self._loop.call_later(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self._loop.time()
        for task, deadline in list(self.deadlines.items()):
            if deadline <= now and task not in self.expired:
                self.expired.add(task)
                task.cancel()
        if self.deadlines:
            self._timer = self._loop.call_later(TICK_SECONDS, self._tick)


_watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = weakref.WeakKeyDictionary()


async def run_with_deadline(awaitable: Awaitable[T], timeout: float) -> T:
    """Await `awaitable`; raise TimeoutError if it runs more than about `timeout` seconds."""
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always inside a task under asyncio
        return await awaitable
    loop = asyncio.get_running_loop()
    watchdog = _watchdogs.get(loop)
    if watchdog is None:
        watchdog = _watchdogs[loop] = _Watchdog(loop)
    previous = watchdog.deadlines.get(task)  # nested deadlines in one task: keep the outer one
    watchdog.watch(task, loop.time() + timeout if previous is None else min(previous, loop.time() + timeout))
    try:
        return await awaitable
    except asyncio.CancelledError:
        if task in watchdog.expired and previous is None:
            watchdog.expired.discard(task)
            task.uncancel()
            raise TimeoutError(f"handler ran longer than {timeout:g} s") from None
        raise
    finally:
        if previous is None:
            watchdog.deadlines.pop(task, None)
            watchdog.expired.discard(task)
        else:
            watchdog.deadlines[task] = previous
