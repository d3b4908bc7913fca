"""RabbitMQ direct reply-to: the DirectReplyPort of the RabbitMQ bus.

The caller consumes the pseudo-queue `amq.rabbitmq.reply-to` in no-ack mode on the channel it
publishes requests on (the bus's confirm channel), and publishes each request with that name as
its AMQP `reply_to`; the broker replaces it with an address routing to that channel
(`amq.rabbitmq.reply-to.<token>`), which the server publishes the reply to through the default
exchange. No queue is declared, stored or acknowledged for replies.

RabbitMQ closes a channel that publishes such a request before it consumes the pseudo-queue,
so `ensure_consuming` runs before every request publish: a no-op on the channel already
consuming, a new consumer on a channel the robust connection re-opened (the broker forgot the
old one; replies addressed to it are dropped and their callers time out).

Requests themselves are ordinary persistent, confirmed messages on the command's durable
queue, so a request survives a server that dies: the next server gets it, with its `reply_to`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping

from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import AbstractChannel, DeliveredMessage

from bento.adapters.rabbitmq._connection import DRIVER_ERRORS
from bento.application.errors import DeserializationError, SubscribeError
from bento.application.ports.direct_reply import REPLY_TO_HEADER
from bento.application.ports.message_bus import MessageHandler
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

#: The pseudo-queue a requester consumes, and the `reply_to` it publishes requests with.
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
#: What the broker turns DIRECT_REPLY_TO into on delivery: the address of one requester's channel.
DIRECT_ADDRESS_PREFIX = DIRECT_REPLY_TO + "."


def is_direct_address(topic: str) -> bool:
    return topic.startswith(DIRECT_ADDRESS_PREFIX)


class DirectReplies:
    """This bus's reply consumer (the Subscription `open_replies` returns; `topic` is the address)."""

    def __init__(self, channel: AbstractRobustChannel, codec: JsonCodec) -> None:
        self._channel, self._codec = channel, codec
        self._handler: MessageHandler | None = None
        self._consuming_on: AbstractChannel | None = None
        self._tag: str | None = None
        self._lock = asyncio.Lock()
        self.malformed = 0

    @property
    def topic(self) -> str:
        return DIRECT_REPLY_TO

    @property
    def group(self) -> str | None:
        return None

    async def open_replies(self, handler: MessageHandler) -> DirectReplies:
        """Take this bus's replies (one taker per bus: the broker routes them to the channel)."""
        if self._handler is not None and self._handler != handler:
            raise SubscribeError(DIRECT_REPLY_TO, "this bus's replies are taken already; open a bus per caller")
        self._handler = handler
        await self.ensure_consuming(await self._channel.get_underlay_channel())
        return self

    async def ensure_consuming(self, channel: AbstractChannel) -> None:
        """Consume the pseudo-queue on `channel` (the underlay a request is about to go out on)."""
        if channel is self._consuming_on or self._handler is None:
            return
        async with self._lock:
            if channel is not self._consuming_on:
                ok = await channel.basic_consume(DIRECT_REPLY_TO, self._deliver, no_ack=True)
                self._consuming_on, self._tag = channel, ok.consumer_tag

    def wants_reply(self, headers: Mapping[str, str] | None) -> bool:
        return self._handler is not None and headers is not None and headers.get(REPLY_TO_HEADER) == DIRECT_REPLY_TO

    async def _deliver(self, message: DeliveredMessage) -> None:
        handler = self._handler
        if handler is None:
            return
        try:
            reply = self._codec.decode(message.body)
        except DeserializationError as exc:
            self.malformed += 1
            logger.warning("dropped an undecodable reply on %s: %s", DIRECT_REPLY_TO, exc)
            return
        await handler(reply)

    async def cancel(self) -> None:
        """Stop taking replies (the consumer goes with the channel when the bus closes)."""
        self._handler = None
        channel, tag, self._consuming_on, self._tag = self._consuming_on, self._tag, None, None
        if channel is None or tag is None or channel.is_closed:
            return
        try:
            await channel.basic_cancel(tag)
        except DRIVER_ERRORS as exc:
            logger.info("reply consumer already gone: %s", exc)


class Addressed:
    """A subscriber's handler for one request delivered with the broker's reply address: the
    request it sees names that address in REPLY_TO_HEADER instead of the pseudo-queue."""

    __slots__ = ("handler", "message_type", "reply_to")

    def __init__(self, handler: MessageHandler, reply_to: str) -> None:
        self.handler, self.reply_to = handler, reply_to
        self.message_type = getattr(handler, "message_type", None)

    def __call__(self, message: DomainEvent) -> Awaitable[None]:
        headers = message.metadata.headers
        if headers.get(REPLY_TO_HEADER) == DIRECT_REPLY_TO:
            message = message.with_metadata(headers={**headers, REPLY_TO_HEADER: self.reply_to})
        return self.handler(message)
