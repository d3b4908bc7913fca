"""Moving a group off the unscoped queue names of earlier versions (docs/rabbitmq.md, "Migrating").

Earlier versions named a group's queue `<group>.<pattern>` whatever the exchange, so applications
on one vhost with the same group and pattern shared one queue and split each other's events. Now
that names are scoped by exchange, the old queue would stay bound to the exchange, fill with a copy
of every event nobody reads (until the broker's memory alarm blocks every publisher of the vhost),
and hand old instances still running during a rolling deploy a second copy of each event.

So when a group subscribes under its scoped name, `retire` unbinds the legacy queue from this
application's exchange (only that binding: another application's, if it shared the queue, stays)
and warns while the queue still holds messages. `move` then hands those messages to the scoped
queue. The queues themselves are never deleted here: another application may still use them.
"""

from __future__ import annotations

import logging
from typing import Any

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from bento.adapters.rabbitmq import _codec, _topology
from bento.adapters.rabbitmq._connection import DRIVER_ERRORS
from bento.adapters.rabbitmq._publisher import ConfirmedPublisher
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.delivery import ORIGINAL_TOPIC_HEADER

logger = logging.getLogger(__name__)

#: The exchange a message moved out of a legacy queue was first published on.
_ORIGIN_HEADER = "x-bento-legacy-exchange"
_DOCS = "docs/rabbitmq.md, 'Migrating from unscoped queue names'"


def legacy_warning(settings: RabbitMQSettings) -> str:
    return (
        f"RabbitMQ bus on exchange {settings.exchange_name!r} uses legacy_queue_names=True: group queues "
        "are named <group>.<pattern> and retry queues bento.retry.<ms>ms, shared by every application on "
        "the vhost, so another application with the same group and pattern takes a share of this one's "
        f"events. Keep it for one deployment only, then migrate ({_DOCS})"
    )


async def retire(
    connection: AbstractRobustConnection, settings: RabbitMQSettings, pattern: str, group: str
) -> int | None:
    """Unbind the legacy queue of `group` from this exchange; its message count, None if it is gone."""
    name = _topology.legacy_queue(pattern, group)
    channel = await connection.channel(publisher_confirms=False)
    try:
        try:
            queue = await channel.declare_queue(name, passive=True, robust=False)
        except ChannelNotFoundEntity:
            return None  # the usual case: nothing to migrate
        await queue.unbind(settings.exchange_name, routing_key=pattern)
        count = queue.declaration_result.message_count or 0
    finally:
        await _close_quietly(channel)
    if count:
        logger.warning(
            "legacy queue %r (unscoped name of group %r on %r) still holds %d message(s); it no longer "
            "receives events from exchange %r. Move them with bus.move_legacy_messages(%r, group=%r), "
            "then delete the queue once no application uses it (%s)",
            name,
            group,
            pattern,
            count,
            settings.exchange_name,
            pattern,
            group,
            _DOCS,
        )
    else:
        logger.warning(
            "legacy queue %r (unscoped name of group %r on %r) is empty and no longer receives events from "
            "exchange %r; delete it once no other application on the vhost uses it (%s)",
            name,
            group,
            pattern,
            settings.exchange_name,
            _DOCS,
        )
    return count


async def move(
    connection: AbstractRobustConnection,
    publisher: ConfirmedPublisher,
    settings: RabbitMQSettings,
    pattern: str,
    group: str,
) -> tuple[int, int]:
    """Move what the legacy queue holds now into the scoped queue; returns (moved, left for others).

    A message published on this exchange moves, and so does one that came back from a retry queue
    (exchange `""`; which application it was for is no longer known, and before the migration any
    member of the shared queue could have taken it). A message of another exchange is put back at the
    tail for its own application. Only the messages counted at the start are looked at, so those put
    back are not seen twice; each is acked only after its copy was confirmed (a crash duplicates,
    never loses).
    """
    name = _topology.legacy_queue(pattern, group)
    target = _topology.subscription_queue(settings, pattern, group)
    channel = await connection.channel(publisher_confirms=False)
    moved = left = 0
    try:
        try:
            queue = await channel.declare_queue(name, passive=True, robust=False)
        except ChannelNotFoundEntity:
            return 0, 0
        for _ in range(queue.declaration_result.message_count or 0):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break  # an old instance still consuming the queue took the rest
            headers: dict[str, Any] = _codec.forwardable(message.headers)
            # A message put back earlier arrives through the default exchange: its origin is a header.
            origin = _codec.text(headers.get(_ORIGIN_HEADER)) or message.exchange or ""
            ours = origin in (settings.exchange_name, "")
            if not ours:
                headers[_ORIGIN_HEADER] = origin
            headers.setdefault(ORIGINAL_TOPIC_HEADER, message.routing_key or pattern)
            props = _codec.republished(message.message_id, message.content_type, headers)
            await publisher.send("", target if ours else name, [(message.body, props)], topic=pattern, counted=False)
            await message.ack()
            moved, left = (moved + 1, left) if ours else (moved, left + 1)
    finally:
        await _close_quietly(channel)
    logger.log(
        logging.WARNING if moved or left else logging.INFO,
        "moved %d message(s) from legacy queue %r to %r; %d of other exchanges put back",
        moved,
        name,
        target,
        left,
    )
    return moved, left


async def _close_quietly(channel: AbstractRobustChannel) -> None:
    try:
        await channel.close()
    except DRIVER_ERRORS as exc:
        logger.debug("helper channel already closed: %s", exc)
