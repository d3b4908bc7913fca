"""BrokerProjectionFeed: a projection fed by broker subscriptions instead of an event store."""

from __future__ import annotations

import asyncio
import time

from bento.application import telemetry
from bento.application.ports.event_store import StoredEvent
from bento.application.projections import Projection, project_span
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent


class BrokerProjectionFeed:
    """Applies events from broker subscriptions to a projection. The broker's group offsets
    are the checkpoint; positions are this process's arrival order (monotonic across restarts),
    which is what read-model versions need. Order holds per topic only: a projection that needs
    one global order reads a shared event store (ClickHouse) instead."""

    def __init__(self, projection: Projection, codec: JsonCodec) -> None:
        self.projection, self.codec = projection, codec
        self._lock = asyncio.Lock()
        self._position = 0

    async def apply(self, event: DomainEvent) -> None:
        encoded = self.codec.encode_for_store(event)
        async with self._lock:  # the projection's buffers take one batch at a time
            self._position = max(self._position + 1, time.time_ns() // 1000)
            stored = StoredEvent(
                position=self._position,
                stream=event.metadata.aggregate_id or "",
                version=0,
                event_id=encoded.event_id,
                event_type=encoded.event_type,
                schema_version=encoded.schema_version,
                data=encoded.data,
                metadata=encoded.metadata,
                recorded_at=event.timestamp,
                aggregate_type=encoded.aggregate_type,
                tenant_id=encoded.tenant_id,
                correlation_id=encoded.correlation_id,
                causation_id=encoded.causation_id,
            )
            try:
                if telemetry.tracer is None:
                    await self._apply(event, stored)
                else:
                    with telemetry.span(*project_span(self.projection.name, [stored])):
                        await self._apply(event, stored)
            except BaseException:
                await self.projection.discard()
                raise  # the broker redelivers, then dead-letters

    async def _apply(self, event: DomainEvent, stored: StoredEvent) -> None:
        await self.projection.apply(event, stored)
        await self.projection.commit()
