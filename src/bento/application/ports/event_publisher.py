"""EventPublisherPort: how the application publishes domain events."""

from __future__ import annotations

from typing import Protocol

from bento.domain.events import DomainEvent


class EventPublisherPort(Protocol):
    """Publishes domain events to whoever listens, mapping wire names to topics.

    Returns once every event was accepted by the transport; raises PublishError
    otherwise (then none, some or all may have been sent: the outbox relay covers
    that case for events that are in the event store)."""

    async def publish(self, *events: DomainEvent) -> None: ...
