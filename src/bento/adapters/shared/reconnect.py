"""Seed 003's connection callbacks and counters as every adapter offers them on the port.

Each broker client reconnects by itself; what a service must redo afterwards (warm a
cache, re-subscribe something outside the bus) goes in a reconnect callback, and what it
must do when the link drops (mark itself degraded, stop taking requests) in a disconnect
callback. The rule is the same on every bus, so it lives here: callbacks run in
registration order, sync or async alike, and one that raises is logged with its traceback
and counted as a connection error without stopping the others. `ObservedBus` gives an
adapter the port's `metrics`, `register_reconnect_callback` and
`register_disconnect_callback` from its `_counters` and `_reconnect_callbacks`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bento.application.bus_metrics import BusCounters, BusMetrics
from bento.application.ports.message_bus import ConnectionCallback

logger = logging.getLogger(__name__)

#: What `register_reconnect_callback` accepts: a function, or a coroutine function, of no arguments.
ReconnectCallback = ConnectionCallback


class ReconnectCallbacks:
    """The callbacks registered on one adapter, and the failure count they feed."""

    def __init__(self, counters: BusCounters) -> None:
        self._counters = counters
        self._callbacks: list[ConnectionCallback] = []
        self._on_disconnect: list[ConnectionCallback] = []

    def register(self, callback: ConnectionCallback) -> None:
        self._callbacks.append(callback)

    def register_disconnect(self, callback: ConnectionCallback) -> None:
        self._on_disconnect.append(callback)

    async def run(self) -> None:
        """Call every reconnect callback (a copy of the list: one may register another)."""
        await self._call(self._callbacks, "reconnect")

    async def disconnected(self) -> None:
        """Call every disconnect callback; the adapter calls this once per outage it notices."""
        await self._call(self._on_disconnect, "disconnect")

    async def _call(self, callbacks: list[ConnectionCallback], kind: str) -> None:
        for callback in list(callbacks):
            try:
                outcome = callback()
                if outcome is not None:
                    await outcome
            except Exception:
                self._counters.connection_errors += 1
                logger.exception("%s callback %r failed", kind, callback)


class ObservedBus:
    """The port's counters and callback registration, for an adapter that sets `_counters`
    and `_reconnect_callbacks` in its `__init__`."""

    _counters: BusCounters
    _reconnect_callbacks: ReconnectCallbacks

    @property
    def counters(self) -> BusCounters:
        """The live counters (the adapter's own modules bump them on its event loop)."""
        return self._counters

    @property
    def metrics(self) -> BusMetrics:
        """A point-in-time copy of the counters, safe to hand to an exporter."""
        return self._counters.snapshot()

    def register_reconnect_callback(self, callback: ConnectionCallback) -> None:
        """Run `callback` each time the bus has its broker back after losing it (seed 003)."""
        self._reconnect_callbacks.register(callback)

    def register_disconnect_callback(self, callback: ConnectionCallback) -> None:
        """Run `callback` once each time the bus notices it lost its broker."""
        self._reconnect_callbacks.register_disconnect(callback)


async def watch_connection(
    probe: Callable[[], Awaitable[bool]],
    interval: float,
    counters: BusCounters,
    callbacks: ReconnectCallbacks,
    where: str,
) -> None:
    """Probe every `interval` seconds; on the first failed probe count a connection error and
    run the disconnect callbacks, on the first good one after that count a reconnect and run
    the reconnect callbacks. Runs until cancelled (under the adapter's Supervisor)."""
    connected = True
    while True:
        await asyncio.sleep(interval)
        now = await probe()
        if connected and not now:
            counters.connection_errors += 1
            logger.warning("lost the connection to %s; the client reconnects", where)
            await callbacks.disconnected()
        elif now and not connected:
            counters.reconnects += 1
            logger.info("reconnected to %s", where)
            await callbacks.run()
        connected = now
