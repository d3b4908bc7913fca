"""Consume loops that never die silently, shared by every MessageBus adapter.

`handle_delivery` turns every failure of one message into a verdict, so what can still
break a loop is the adapter's own code or an unexpected driver error. Before this
helper, such an exception ended the task with only asyncio's "Task exception was never
retrieved", and the bus kept reporting healthy while nothing was consumed. Now each loop
runs under a `Supervisor`: an exception is logged with its traceback, counted
(`loop_failures`), makes `health_check()` unhealthy for `unhealthy_for` seconds, and the
loop starts again after a short back-off. Adapters that handle one message per callback
(RabbitMQ) report such a failure with `failed()` instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bento.adapters.shared.metrics import BusCounters
from bento.domain.errors import clipped

logger = logging.getLogger(__name__)

#: Seconds `health_check()` stays unhealthy after a consume loop failed.
UNHEALTHY_FOR = 60.0
_FIRST_DELAY, _MAX_DELAY = 0.1, 5.0


class Supervisor:
    """Runs and restarts one bus's consume loops; see the module docstring."""

    def __init__(
        self, component: str, counters: BusCounters | None = None, *, unhealthy_for: float = UNHEALTHY_FOR
    ) -> None:
        self.component = component
        self.counters = counters if counters is not None else BusCounters()
        self.unhealthy_for = unhealthy_for
        self._latest: tuple[float, str] | None = None

    @property
    def failures(self) -> int:
        return self.counters.loop_failures

    def spawn(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], *, stopping: Callable[[], bool] | None = None
    ) -> asyncio.Task[None]:
        """Start `run()` as a task named `name`; when it raises, record it and call `run()` again
        (unless `stopping()` says the owner is shutting down). A normal return ends the task."""
        return asyncio.create_task(self._supervise(name, run, stopping), name=name)

    async def _supervise(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], stopping: Callable[[], bool] | None
    ) -> None:
        delay = _FIRST_DELAY
        while True:
            try:
                await run()
                return
            except Exception as exc:
                self.failed(name, exc, restarting=True)
            if stopping is not None and stopping():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
            if stopping is not None and stopping():
                return

    def failed(self, where: str, exc: BaseException, *, restarting: bool = False) -> None:
        """Record an unexpected exception in a consume loop or callback: log, count, unhealthy."""
        self.counters.loop_failures += 1
        summary = clipped(f"{type(exc).__name__}: {exc}", 300)
        self._latest = (time.monotonic(), f"{where}: {summary}")
        logger.error(
            "%s consumer %s failed%s: %s",
            self.component,
            where,
            "; restarting it" if restarting else "; carrying on",
            summary,
            exc_info=exc,
        )

    def problem(self) -> str | None:
        """Why the consumers are unhealthy (a loop failed within `unhealthy_for` seconds), or None."""
        if self._latest is None:
            return None
        at, what = self._latest
        ago = time.monotonic() - at
        if ago > self.unhealthy_for:
            return None
        return f"{self.counters.loop_failures} consumer loop failure(s); latest {ago:.1f}s ago in {what}"
