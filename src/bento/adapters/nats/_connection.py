"""The bus's link to NATS: one nats-py client at a time, replaced when nats-py gives it up.

nats-py reconnects by itself after a network failure. But an error the server answers
with `-ERR` (a message over `max_payload`, a control line too long, …) makes nats-py
close the client for good, and a bus holding that client would fail every publish and
pull from then on. So when a client closes that the bus did not close, `Connection`
connects a new one, re-declares the streams, tells the subscriptions (their pull loops
move to the new client at once), and runs the reconnect callbacks, as after any
reconnect. A client that closed because `max_reconnect_attempts` ran out stays closed:
that limit is the user's decision, and `health_check()` reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from bento.adapters.nats._streams import ensure_streams
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.reconnect import ReconnectCallbacks
from bento.application.errors import BrokerUnavailableError, ConfigurationError

logger = logging.getLogger(__name__)


class Connection:
    """`nc` / `js` are the live client and its JetStream context (None before `open()`
    and after `close()`); read them at each use, since a replacement swaps them."""

    def __init__(self, settings: NatsSettings, counters: BusCounters, callbacks: ReconnectCallbacks) -> None:
        self.settings, self._counters, self._callbacks = settings, counters, callbacks
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._listeners: list[Callable[[], None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._closing = False
        self._connecting = False

    @property
    def where(self) -> str:
        return self.settings.address

    def live(self) -> tuple[Client, JetStreamContext]:
        """The current client and context; ConnectionClosedError when there is none, so
        callers treat it like any closed client (their loops retry)."""
        if self.nc is None or self.js is None:
            raise nats.errors.ConnectionClosedError
        return self.nc, self.js

    def on_replaced(self, listener: Callable[[], None]) -> None:
        """Call `listener()` each time a new client replaced a closed one."""
        self._listeners.append(listener)

    async def open(self) -> None:
        nc = await self._connect()
        js = nc.jetstream(timeout=self.settings.publish_timeout)
        try:
            await ensure_streams(js, self.settings)
        except BaseException:
            await nc.close()
            raise
        self.nc, self.js = nc, js

    async def close(self, deadline: float) -> None:
        """Stop replacing, then drain the client (pending acks and publishes reach the
        server) until `deadline` (`time.monotonic()`), and close it."""
        self._closing = True
        for task in list(self._background):
            task.cancel()
        nc, self.nc, self.js = self.nc, None, None
        if nc is None or nc.is_closed:
            return
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                await nc.drain()
        except (nats.errors.Error, TimeoutError) as exc:
            logger.warning("NATS drain did not finish cleanly (%s); closing the connection", exc or "timed out")
            await nc.close()

    async def _connect(self) -> Client:
        settings = self.settings
        # nats-py annotates these as int but sleeps on them, so fractions of a second work.
        options: dict[str, Any] = {
            "connect_timeout": settings.connect_timeout,
            "reconnect_time_wait": settings.reconnect_wait,
            "drain_timeout": max(0.1, settings.drain_timeout),
        }
        if settings.user is not None:
            options["user"] = settings.user
        if settings.password is not None:
            options["password"] = settings.password.get_secret_value()
        if settings.token is not None:
            options["token"] = settings.token.get_secret_value()
        nc = Client()

        async def closed() -> None:
            self._on_closed(nc)

        self._connecting = True
        try:
            # nats-py retries the server list on its own (and reports each failed attempt to
            # error_cb); the outer timeout gives each server `connect_timeout` in all.
            async with asyncio.timeout(settings.connect_timeout * len(settings.servers)):
                await nc.connect(
                    servers=settings.server_urls(),
                    name=settings.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=settings.max_reconnect_attempts,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    closed_cb=closed,
                    **options,
                )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self._counters.connection_errors += 1
            await nc.close()  # stops the reconnect attempts a cancelled connect may leave behind
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else "no server answered in time"
            raise BrokerUnavailableError("NATS", self.where, reason) from exc
        finally:
            self._connecting = False
        return nc

    # -- nats-py callbacks ------------------------------------------------------------
    async def _on_error(self, exc: Exception) -> None:
        self._counters.connection_errors += 1
        if self._connecting:
            return  # the first connect reports its own failure, once, as BrokerUnavailableError
        logger.warning("NATS connection error: %s: %s", type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if not self._closing and self.nc is not None and not self.nc.is_closed:
            logger.warning("disconnected from NATS; the client reconnects on its own")
            self._spawn(self._callbacks.disconnected(), "bento-nats-disconnected")

    async def _on_reconnected(self) -> None:
        self._counters.reconnects += 1
        logger.info("reconnected to NATS")
        # Not awaited here: JetStream requests need the client's read loop, which runs
        # the callback, so re-initialisation happens in its own task.
        self._spawn(self._after_reconnect(), "bento-nats-reconnect")

    def _on_closed(self, nc: Client) -> None:
        if self._closing or nc is not self.nc:
            return
        if isinstance(nc.last_error, nats.errors.NoServersError):
            logger.error(
                "NATS client gave up after max_reconnect_attempts=%d; the bus stays disconnected",
                self.settings.max_reconnect_attempts,
            )
            return
        self._counters.connection_errors += 1
        logger.warning("NATS closed the client (%s); connecting a new one", nc.last_error or "no reason given")
        self._spawn(self._replace(), "bento-nats-replace")

    # -- replacement ------------------------------------------------------------------
    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _replace(self) -> None:
        limit, attempts = self.settings.max_reconnect_attempts, 0
        while not self._closing:
            attempts += 1
            try:
                nc = await self._connect()
            except BrokerUnavailableError as exc:
                if 0 <= limit < attempts:
                    logger.error("no new NATS client after %d attempts (%s); the bus stays disconnected", limit, exc)
                    return
                logger.warning("connecting a new NATS client failed (%s); retrying", exc)
                await asyncio.sleep(max(0.1, self.settings.reconnect_wait))
                continue
            if self._closing:
                await nc.close()
                return
            self.nc, self.js = nc, nc.jetstream(timeout=self.settings.publish_timeout)
            self._counters.reconnects += 1
            logger.info("a new NATS client replaced the closed one")
            await self._redeclare()
            for listener in list(self._listeners):
                listener()
            await self._callbacks.run()
            return

    async def _after_reconnect(self) -> None:
        await self._redeclare()
        await self._callbacks.run()

    async def _redeclare(self) -> None:
        if self.js is not None:
            try:
                await ensure_streams(self.js, self.settings)
            except (BrokerUnavailableError, ConfigurationError) as exc:
                logger.error("re-declaring streams after reconnect failed: %s", exc)
