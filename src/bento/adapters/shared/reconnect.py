"""The reconnect callbacks of seed 003 (`register_reconnect_callback`), one registry for every adapter.

Each broker client reconnects by itself; what a service must redo afterwards (warm a
cache, re-subscribe something outside the bus) goes in a callback. The rule is the same
on every bus, so it lives here: callbacks run in registration order once the adapter has
restored its own state, sync or async alike, and one that raises is logged with its
traceback and counted as a connection error without stopping the others, because the
broker link itself is healthy again by then.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bento.adapters.shared.metrics import BusCounters

logger = logging.getLogger(__name__)

#: What `register_reconnect_callback` accepts: a function, or a coroutine function, of no arguments.
ReconnectCallback = Callable[[], Awaitable[None] | None]


class ReconnectCallbacks:
    """The callbacks registered on one adapter, and the failure count they feed."""

    def __init__(self, counters: BusCounters) -> None:
        self._counters = counters
        self._callbacks: list[ReconnectCallback] = []

    def register(self, callback: ReconnectCallback) -> None:
        self._callbacks.append(callback)

    async def run(self) -> None:
        """Call every callback (a copy of the list: one may register another)."""
        for callback in list(self._callbacks):
            try:
                outcome = callback()
                if outcome is not None:
                    await outcome
            except Exception:
                self._counters.connection_errors += 1
                logger.exception("reconnect callback %r failed", callback)
