"""Operational gauges: how far behind a service is, sampled from the store and the brokers.

Counters and histograms (bento.application.telemetry) are updated on the hot path; these
figures are not events but states, and reading them costs a round trip (the store's head, a
checkpoint, a broker's queue depth). So `Gauges` samples its sources on demand: `refresh()`
asks every source concurrently (each within `timeout`) and keeps the latest readings, which
exporters read without waiting: the Prometheus collector (bento.infrastructure.prometheus)
and OpenTelemetry observable gauges (`observe_with_opentelemetry`). `bento run --http`
refreshes before answering `/metrics`; the runtime also refreshes every `interval` seconds
for exporters that pull on their own schedule.

A source that fails drops its readings until it answers again (a gauge absent is unknown;
a stale figure would mislead), and the failure is logged once per change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bento.application.ports.backlog import BacklogProbe
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_store import EventStore

logger = logging.getLogger(__name__)

#: Gauge names (OpenTelemetry; Prometheus replaces each `.` by `_`).
OUTBOX_LAG = "bento.outbox.lag"
PROJECTION_LAG = "bento.projection.lag"
CONSUMER_BACKLOG = "bento.messaging.consumer.backlog"
DLQ_DEPTH = "bento.messaging.dlq.depth"

#: Every gauge: name -> (unit, description, attribute keys).
GAUGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    OUTBOX_LAG: ("{event}", "Events in the store the outbox relay has not published yet", ("bento.outbox.name",)),
    PROJECTION_LAG: ("{event}", "Events in the store a projection has not applied yet", ("bento.projection.name",)),
    CONSUMER_BACKLOG: (
        "{message}",
        "Messages waiting for a subscription's group, as its broker reports them",
        ("messaging.system", "messaging.destination.name", "messaging.consumer.group.name"),
    ),
    DLQ_DEPTH: (
        "{message}",
        "Messages in a subscription's dead-letter queue",
        ("messaging.system", "messaging.destination.name", "messaging.consumer.group.name"),
    ),
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One gauge value with its attributes (in the order GAUGES lists their keys)."""

    name: str
    attributes: tuple[tuple[str, str], ...]
    value: float


Source = Callable[[], Awaitable[Iterable[Reading]]]


class Gauges:
    """The latest readings of every source; see the module docstring."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._sources: list[tuple[str, Source]] = []
        self._latest: dict[str, list[Reading]] = {}
        self._failing: dict[str, str] = {}
        self._refreshing: asyncio.Future[None] | None = None
        self.refreshed_at = 0.0

    def add(self, label: str, source: Source) -> None:
        """Sample `source` (named `label` in logs) from the next refresh on."""
        self._sources.append((label, source))

    def readings(self, name: str | None = None) -> list[Reading]:
        """The latest readings (of gauge `name`, or all). Safe from any thread."""
        latest = list(self._latest.values())
        return [r for readings in latest for r in readings if name is None or r.name == name]

    async def refresh(self, *, max_age: float = 0.0) -> None:
        """Sample every source, unless the last refresh is younger than `max_age` seconds.
        Concurrent callers share one refresh."""
        if max_age and time.monotonic() - self.refreshed_at < max_age:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._sample_all())
        await asyncio.shield(self._refreshing)

    async def _sample_all(self) -> None:
        await asyncio.gather(*(self._sample(label, source) for label, source in self._sources))
        self.refreshed_at = time.monotonic()

    async def _sample(self, label: str, source: Source) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                readings = list(await source())
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300]
            if self._failing.get(label) != reason:
                logger.warning("gauge source %s failed (its gauges are absent until it answers): %s", label, reason)
            self._failing[label] = reason
            self._latest.pop(label, None)
            return
        if self._failing.pop(label, None) is not None:
            logger.info("gauge source %s answers again", label)
        self._latest[label] = readings

    async def run(self, *, interval: float, stop: asyncio.Event) -> None:
        """Refresh every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)


# -- sources ----------------------------------------------------------------------------------
def outbox_lag(name: str, store: EventStore, checkpoints: CheckpointStore) -> Source:
    """Events stored after the relay's checkpoint: stored, not yet relayed."""

    async def sample() -> list[Reading]:
        head = await store.last_position()
        return [Reading(OUTBOX_LAG, (("bento.outbox.name", name),), max(head - await checkpoints.load(name), 0))]

    return sample


def projection_lag(name: str, store: EventStore, checkpoints: CheckpointStore) -> Source:
    """Global position head minus the projection's checkpoint."""

    async def sample() -> list[Reading]:
        head = await store.last_position()
        lag = max(head - await checkpoints.load(name), 0)
        return [Reading(PROJECTION_LAG, (("bento.projection.name", name),), lag)]

    return sample


def subscription_backlog(probe: BacklogProbe, system: str, subscriptions: Sequence[tuple[str, str]]) -> Source:
    """Waiting messages and dead-letter depth of each (topic, group) on one bus; a figure the
    broker cannot tell (None) is left out."""

    async def sample() -> list[Reading]:
        out: list[Reading] = []
        for topic, group in subscriptions:
            backlog = await probe.backlog(topic, group=group)
            attributes = (
                ("messaging.system", system),
                ("messaging.destination.name", topic),
                ("messaging.consumer.group.name", group),
            )
            if backlog.waiting is not None:
                out.append(Reading(CONSUMER_BACKLOG, attributes, backlog.waiting))
            if backlog.dead_letters is not None:
                out.append(Reading(DLQ_DEPTH, attributes, backlog.dead_letters))
        return out

    return sample


def observe_with_opentelemetry(gauges: Gauges, meter_provider: Any = None) -> list[Any]:
    """Register one OpenTelemetry observable gauge per name, reporting `gauges`' latest readings
    (the SDK's reader calls back on its own schedule; `Gauges.run` keeps them fresh)."""
    try:
        from opentelemetry import metrics as otel_metrics
        from opentelemetry.metrics import CallbackOptions, Observation
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("gauges need OpenTelemetry: pip install 'bento-ddd[otel]'") from exc
    meter = otel_metrics.get_meter("bento", meter_provider=meter_provider)

    def callback_for(name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(r.value, dict(r.attributes)) for r in gauges.readings(name)]

        return observe

    return [
        meter.create_observable_gauge(name, callbacks=[callback_for(name)], unit=unit, description=description)
        for name, (unit, description, _) in GAUGES.items()
    ]
