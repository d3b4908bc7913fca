"""MessageBusEventPublisher: the EventPublisherPort that sends events to a MessageBus.

How events leave a handler: with an event store, through the store and the outbox relay; without
one, `EventBus.publish`, which the runtime points at this publisher when the event bus is a
broker (`EventBus.forward_to`), so subscribers consume from the broker. With no broker,
`EventBus.publish` runs the subscribers in-process (what a separate local publisher did).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby

from bento.application.ports.message_bus import MessageBus
from bento.domain.events import DomainEvent


def wire_name_topic(event: DomainEvent) -> str:
    """Default topic of an event: its wire name (`order.placed`)."""
    return type(event).__wire_name__


class MessageBusEventPublisher:
    """Publishes events to a MessageBus: topic from `topic_for` (wire name by default,
    optionally prefixed), key = the event's aggregate id; consecutive events for one
    topic go out as one pipelined batch."""

    def __init__(
        self, bus: MessageBus, *, topic_prefix: str = "", topic_for: Callable[[DomainEvent], str] = wire_name_topic
    ) -> None:
        self._bus, self._prefix, self._topic_for = bus, topic_prefix, topic_for

    async def publish(self, *events: DomainEvent) -> None:
        for topic, group in groupby(events, key=self._topic_for):
            batch = list(group)
            if len(batch) == 1:
                await self._bus.publish(self._prefix + topic, batch[0])
            else:
                await self._bus.publish_batch(self._prefix + topic, batch)
