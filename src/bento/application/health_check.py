"""Seed 003's health-check topic: a publisher that proves the bus carries messages, and a
subscriber checker that notices when they stop arriving.

`bus.health_check()` answers "does the broker answer this client"; it cannot tell that
messages actually flow end to end (a broker that accepts publishes into a partition no one
reads, a subscription silently stuck). Seed 003 adds a topic for that: one or more services
publish a small `HealthCheckMessage` every `interval` seconds, and any service subscribes
and is unhealthy when the newest one is older than `max_age`. Both are written against the
`MessageBus` port only, so they work on every bus.

Failure callbacks are called on transitions, once per outage: `on_failure(status)` when a
checker turns unhealthy, `on_recovery(status)` when it is healthy again (sync or async; one
that raises is logged and the checker carries on). The publisher's status is the outcome of
its latest round (`health_check()` of the bus, then a publish); the subscriber's is the age
of the newest message, checked every `check_interval` seconds and at each `status()` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from bento.application.ports.capabilities import HealthStatus
from bento.application.ports.message_bus import MessageBus, Subscription
from bento.domain.events import DomainEvent
from bento.domain.metadata import utc_now

logger = logging.getLogger(__name__)

#: Seed 003's topic name (`HealthCheckTopic = "health_check_topic"`).
HEALTH_CHECK_TOPIC = "health_check_topic"

#: What `on_failure` and `on_recovery` accept: called with the status that changed.
HealthCallback = Callable[[HealthStatus], Awaitable[None] | None]


class HealthCheckMessage(DomainEvent, name="bento.health_check"):
    """What the publisher sends: who sent it, and its sequence number since that one started."""

    source: str
    sequence: int


def default_source() -> str:
    """`host:pid`: identifies one publishing process in the subscriber's status."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Transitions:
    """Remembers the last health and calls the callbacks when it flips."""

    def __init__(self, name: str, on_failure: HealthCallback | None, on_recovery: HealthCallback | None) -> None:
        self.name = name
        self._on_failure, self._on_recovery = on_failure, on_recovery
        self.healthy: bool | None = None
        self.failures = 0

    async def record(self, status: HealthStatus) -> None:
        previous, self.healthy = self.healthy, status.healthy
        if status.healthy and previous is False:
            logger.info("%s is healthy again: %s", self.name, status.detail)
            await self._call(self._on_recovery, status)
        elif not status.healthy and previous is not False:
            self.failures += 1
            logger.warning("%s is unhealthy: %s", self.name, status.detail)
            await self._call(self._on_failure, status)

    async def _call(self, callback: HealthCallback | None, status: HealthStatus) -> None:
        if callback is None:
            return
        try:
            outcome = callback(status)
            if outcome is not None:
                await outcome
        except Exception:
            logger.exception("%s callback %r failed", self.name, callback)


class HealthCheckPublisher:
    """Seed 003's `PublisherHealthChecker`: every `interval` seconds, check the bus and publish
    a `HealthCheckMessage` to `topic`. Use as `async with HealthCheckPublisher(bus): ...`."""

    def __init__(
        self,
        bus: MessageBus,
        *,
        topic: str = HEALTH_CHECK_TOPIC,
        interval: float = 30.0,
        source: str | None = None,
        on_failure: HealthCallback | None = None,
        on_recovery: HealthCallback | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.bus, self.topic, self.interval = bus, topic, interval
        self.source = source or default_source()
        self.sent = 0
        self._state = _Transitions(f"health-check publisher on {topic!r}", on_failure, on_recovery)
        self._latest = HealthStatus(healthy=False, component=self.component, detail="not started")
        self._task: asyncio.Task[None] | None = None

    @property
    def component(self) -> str:
        return f"health_check:publisher:{self.topic}"

    @property
    def failures(self) -> int:
        """Outages seen so far (healthy → unhealthy transitions)."""
        return self._state.failures

    async def start(self) -> None:
        """Publish once now (so subscribers see this publisher at once), then every `interval`."""
        if self._task is None:
            await self.publish_once()
            self._task = asyncio.create_task(self._loop(), name=f"bento-health-publisher-{self.topic}")

    async def publish_once(self) -> HealthStatus:
        """One round: the bus's own check, then a publish; returns (and keeps) the outcome."""
        started = time.perf_counter()
        try:
            checked = await self.bus.health_check()
            if not checked.healthy:
                raise RuntimeError(f"bus health check failed: {checked.detail}")
            self.sent += 1
            await self.bus.publish(self.topic, HealthCheckMessage(source=self.source, sequence=self.sent))
            status = HealthStatus(
                healthy=True,
                component=self.component,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=f"{self.sent} health message(s) sent",
            )
        except Exception as exc:  # a failed round is a status, never a dead loop
            status = HealthStatus(
                healthy=False,
                component=self.component,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=f"publishing to {self.topic!r} failed: {type(exc).__name__}: {exc}"[:500],
            )
        self._latest = status
        await self._state.record(status)
        return status

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.publish_once()

    async def status(self) -> HealthStatus:
        """The outcome of the latest round."""
        return self._latest

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class HealthCheckSubscriber:
    """Seed 003's `SubscriberHealthChecker`: subscribes to `topic` and is unhealthy when no
    health message arrived within `max_age` seconds (counting from `start()` until the first).
    A message already older than `max_age` when it arrives (a redelivery after an outage) is
    counted in `stale` and ignored; clocks of publisher and subscriber hosts must agree to
    well within `max_age`.

    It subscribes for broadcast where the bus offers it (every checker sees every message),
    else in a group of its own."""

    def __init__(
        self,
        bus: MessageBus,
        *,
        topic: str = HEALTH_CHECK_TOPIC,
        max_age: float = 90.0,
        check_interval: float | None = None,
        on_failure: HealthCallback | None = None,
        on_recovery: HealthCallback | None = None,
    ) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        self.bus, self.topic, self.max_age = bus, topic, max_age
        self.check_interval = check_interval if check_interval is not None else max(0.05, max_age / 4)
        self.received = 0
        #: Health messages ignored because they were already older than max_age on arrival.
        self.stale = 0
        self.last_source: str | None = None
        self._state = _Transitions(f"health-check subscriber on {topic!r}", on_failure, on_recovery)
        self._last_at: float | None = None
        self._started_at: float | None = None
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def component(self) -> str:
        return f"health_check:subscriber:{self.topic}"

    @property
    def failures(self) -> int:
        """Outages seen so far (healthy → unhealthy transitions)."""
        return self._state.failures

    @property
    def healthy(self) -> bool | None:
        """The outcome of the latest check (None before the first)."""
        return self._state.healthy

    async def start(self) -> None:
        if self._subscription is not None:
            return
        group = None if self.bus.capabilities.broadcast else f"bento-health-{uuid.uuid4().hex[:12]}"
        self._started_at = time.monotonic()
        self._subscription = await self.bus.subscribe(
            self.topic, self._received, group=group, message_type=HealthCheckMessage
        )
        self._task = asyncio.create_task(self._loop(), name=f"bento-health-subscriber-{self.topic}")

    async def _received(self, message: DomainEvent) -> None:
        # A broker that comes back may redeliver health messages sent before the outage; one
        # older than max_age (by its own timestamp) proves nothing about the link now.
        if (utc_now() - message.timestamp).total_seconds() > self.max_age:
            self.stale += 1
            return
        self.received += 1
        self._last_at = time.monotonic()
        if isinstance(message, HealthCheckMessage):
            self.last_source = message.source

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            await self.status()

    async def status(self) -> HealthStatus:
        """Healthy when the newest health message is at most `max_age` seconds old."""
        now = time.monotonic()
        if self._started_at is None:
            status = HealthStatus(healthy=False, component=self.component, detail="not started")
        elif self._last_at is None:
            waited = now - self._started_at
            status = HealthStatus(
                healthy=waited <= self.max_age,
                component=self.component,
                detail=f"no health message on {self.topic!r} yet ({waited:.1f}s since start, max age {self.max_age}s)",
            )
        else:
            age = now - self._last_at
            status = HealthStatus(
                healthy=age <= self.max_age,
                component=self.component,
                detail=f"newest health message {age:.1f}s old (max age {self.max_age}s), "
                f"{self.received} received, latest from {self.last_source}",
            )
        await self._state.record(status)
        return status

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(Exception):  # the bus may already be closed
                await subscription.cancel()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
