"""A subscription's dead-letter queue read, requeued and purged (`MessageBus.dead_letters` and friends).

A queue has no random access, so every operation takes the letters with `basic.get` and holds
them unacknowledged on a helper channel: reading gives them all back (`nack(requeue=True)`),
requeueing acknowledges each letter only after the broker confirmed its copy, purging
acknowledges the chosen ones. Whatever the channel still holds when it closes, or when the
connection drops mid-way, RabbitMQ puts back in the queue: a letter is never lost, and one whose
copy was confirmed but whose ack did not reach the broker is requeued again by the next run (the
subscriber's inbox absorbs that copy).
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity

from bento.adapters.rabbitmq import _codec, _topology
from bento.adapters.rabbitmq._connection import DRIVER_ERRORS
from bento.adapters.rabbitmq._publisher import ConfirmedPublisher
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.dead_letters import replay_copy, requeue_each
from bento.adapters.shared.wire_headers import WireEncoder
from bento.application.errors import SubscribeError
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection

logger = logging.getLogger(__name__)

Held = list[tuple[AbstractIncomingMessage, DeadLetter]]


class DeadLetterQueue:
    """One subscription's DLQ, `(pattern, group)`, on a connection the bus owns."""

    def __init__(
        self, connection: AbstractRobustConnection, settings: RabbitMQSettings, pattern: str, group: str | None
    ) -> None:
        self._connection, self._settings = connection, settings
        self._pattern, self._group = pattern, group
        self.name = _topology.dead_letter_queue(settings, pattern, group)

    async def read(self, limit: int) -> list[DeadLetter]:
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            held = await self._take(channel, limit)
            await _give_back([incoming for incoming, _ in held])
            return [dead for _, dead in held]
        except DRIVER_ERRORS as exc:
            raise self._error("reading", exc) from exc
        finally:
            await close_quietly(channel)

    async def requeue(
        self,
        publisher: ConfirmedPublisher,
        wire: WireEncoder,
        selection: DeadLetterSelection | None,
        rate: float | None,
    ) -> list[DeadLetter]:
        """Copies go to the group's queue through the default exchange (only that group gets
        them), or for a broadcast subscription to the exchange with the letter's topic."""
        exchange, routing_key = await self._target()
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            held = await self._take(channel, None)
            deliveries = {id(dead): incoming for incoming, dead in held}

            async def send(dead: DeadLetter) -> None:
                copy = replay_copy(wire, dead, topic=dead.topic)
                if copy.message is None:
                    props = _codec.properties(None, copy.key, copy.headers)
                else:
                    props = _codec.message_properties(copy.message, None, dict(copy.headers), wire.content_type)
                await publisher.send(exchange, routing_key or dead.topic, [(copy.body, props)], topic=dead.topic)

            async def remove(dead: DeadLetter) -> None:
                await deliveries.pop(id(dead)).ack()

            try:
                return await requeue_each([dead for _, dead in held], selection, rate, send, remove)
            finally:
                await _give_back(list(deliveries.values()))
        except DRIVER_ERRORS as exc:
            raise self._error("requeueing", exc) from exc
        finally:
            await close_quietly(channel)

    async def purge(self, selection: DeadLetterSelection | None) -> int:
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            if selection is None:
                try:
                    queue = await channel.declare_queue(self.name, passive=True, robust=False)
                except ChannelNotFoundEntity:
                    return 0
                purged = await queue.purge()
                return int(purged.message_count or 0)
            held = await self._take(channel, None)
            count = 0
            for incoming, dead in held:
                if selection.matches(dead):
                    await incoming.ack()
                    count += 1
                else:
                    await incoming.nack(requeue=True)
            return count
        except DRIVER_ERRORS as exc:
            raise self._error("purging", exc) from exc
        finally:
            await close_quietly(channel)

    async def _take(self, channel: AbstractRobustChannel, limit: int | None) -> Held:
        """Up to `limit` letters (all when None), oldest first, held unacknowledged on `channel`."""
        try:
            queue = await channel.declare_queue(self.name, passive=True, robust=False)
        except ChannelNotFoundEntity:
            return []
        held: Held = []
        while limit is None or len(held) < limit:
            got = await queue.get(no_ack=False, fail=False)
            if got is None:
                break
            dead = _codec.dead_letter(got.body, got.headers, self._group, self._pattern, got.message_id)
            held.append((got, dead))
        return held

    async def _target(self) -> tuple[str, str | None]:
        """(exchange, routing key) of the copies; a group queue must exist, or a confirmed copy
        would be dropped unroutable while its letter is removed."""
        if self._group is None:
            return self._settings.exchange_name, None
        queue = _topology.subscription_queue(self._settings, self._pattern, self._group)
        probe = await self._connection.channel(publisher_confirms=False)
        try:
            await probe.declare_queue(queue, passive=True, robust=False)
        except ChannelNotFoundEntity as exc:
            raise SubscribeError(
                self._pattern, f"queue {queue!r} of group {self._group!r} does not exist; subscribe first, then requeue"
            ) from exc
        finally:
            await close_quietly(probe)
        return "", queue

    def _error(self, doing: str, exc: BaseException) -> SubscribeError:
        return SubscribeError(self._pattern, f"{doing} dead-letter queue {self.name!r} failed: {exc}")


async def _give_back(held: list[AbstractIncomingMessage]) -> None:
    """Return held letters to the queue. If the channel is already gone, so are they: the broker
    put them back when it closed."""
    for incoming in held:
        try:
            await incoming.nack(requeue=True)
        except DRIVER_ERRORS as exc:
            logger.info("dead letters go back to their queue with the closed channel (%s)", exc)
            return


async def close_quietly(channel: AbstractRobustChannel) -> None:
    """Close a helper channel; one already closed by the broker (an error before) is fine."""
    try:
        await channel.close()
    except DRIVER_ERRORS as exc:
        logger.debug("helper channel already closed: %s", exc)
