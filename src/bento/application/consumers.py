"""Bind EventBus subscribers to a MessageBus, one subscription per subscriber.

Each subscriber gets its own consumer group (`{service}.{subscriber}`), so a failure
in one is retried and dead-lettered by the broker for that subscriber alone, and a
redelivery never re-runs the subscribers that already succeeded. With an Inbox, a
redelivered message whose id the subscriber already processed is acknowledged and
skipped (idempotent consumer).
"""

from __future__ import annotations

import logging
import re

from bento.application.buses import EventBus, Subscriber
from bento.application.ports.inbox import Inbox
from bento.application.ports.message_bus import MessageBus, MessageHandler, Subscription
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)


def _group_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("._") or "subscriber"


def group_name(service: str, subscriber_name: str) -> str:
    """The consumer group of one subscriber of a service: `{service}.{subscriber}`, each part
    reduced to characters every broker accepts in a group (queue, durable) name."""
    return f"{_group_part(service)}.{_group_part(subscriber_name)}"


def _idempotent(subscriber: Subscriber, consumer: str, inbox: Inbox | None) -> MessageHandler:
    if inbox is None:
        return subscriber.call

    async def handle(event: DomainEvent) -> None:
        if await inbox.is_processed(consumer, event.message_id):
            logger.debug("%s skips already processed %s", consumer, event.message_id)
            return
        await subscriber.call(event)
        await inbox.mark_processed(consumer, event.message_id)

    return handle


async def bind_event_handlers(
    message_bus: MessageBus,
    event_bus: EventBus,
    *,
    service: str,
    inbox: Inbox | None = None,
    topic_prefix: str = "",
) -> list[Subscription]:
    """Subscribe every EventBus subscriber to its event's topic (the wire name)."""
    return [
        await bind_subscriber(
            message_bus, subscriber, group_name(service, subscriber.name), inbox=inbox, topic_prefix=topic_prefix
        )
        for subscriber in event_bus.subscribers
    ]


async def bind_subscriber(
    message_bus: MessageBus,
    subscriber: Subscriber,
    group: str,
    *,
    inbox: Inbox | None = None,
    topic_prefix: str = "",
) -> Subscription:
    """Subscribe one subscriber, in its own group, to its event's topic (the wire name)."""
    if subscriber.event_type.__abstract_event__:
        raise TypeError(f"{subscriber.name} subscribes to an abstract event type; brokers route by wire name")
    topic = topic_prefix + subscriber.event_type.__wire_name__
    return await message_bus.subscribe(topic, _idempotent(subscriber, group, inbox), group=group)
