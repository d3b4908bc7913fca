"""One consumer on one queue: decode, handle, then ack, retry or dead-letter.

Each subscription has its own channel, so its prefetch is its own and a channel error
(for instance a queue declared with other arguments) takes down nothing else. Up to
`prefetch_count` handlers run at once; an ordered subscription instead feeds one worker,
one message at a time.

The consumer is registered on the aiormq channel beneath aio-pika's robust channel: aiormq
already runs each delivery in its own task, and aio-pika's consumer wrapper would add a
second task and an IncomingMessage per delivery, which is most of the per-message cost on
a busy queue. aio-pika still re-declares the queue and its binding after a reconnect (the
queue object is robust); the channel's reopen callback then registers the consumer again.

A message is acknowledged only after its handler returned, or after its retry copy or
dead-letter copy was confirmed by the broker: a crash in between redelivers it (at
least once, never lost). `handle_delivery` turns every failure of the message itself
(undecodable, too large, a failing handler) into a verdict; an exception of this code
beyond that is reported to the bus's Supervisor (logged, counted, health_check unhealthy)
and the delivery is handed back to the broker after a pause, so it never holds a
prefetch slot on a live channel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aio_pika.abc import AbstractQueue, AbstractRobustChannel
from aiormq.abc import DeliveredMessage

from bento.adapters.rabbitmq._acks import AckBatcher
from bento.adapters.rabbitmq._codec import failed_attempts, text, transport_facts
from bento.adapters.rabbitmq._connection import DRIVER_ERRORS
from bento.adapters.rabbitmq._direct_reply import Addressed, is_direct_address
from bento.adapters.shared.delivery import ORIGINAL_TOPIC_HEADER, Action, handle_delivery
from bento.application.errors import BusClosedError, PublishError
from bento.application.ports.message_bus import MessageHandler

if TYPE_CHECKING:
    from bento.adapters.rabbitmq.message_bus import RabbitMQMessageBus

logger = logging.getLogger(__name__)

#: The ack or the retry/dead-letter copy did not reach the broker: the message is redelivered.
_CANCEL_TIMEOUT = 5.0
#: Pause before handing back a delivery whose processing failed unexpectedly (no hot loop).
_GIVE_BACK_DELAY = 1.0
_SETTLE_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, PublishError, BusClosedError)


class RabbitMQSubscription:
    """A live subscription (the port's `Subscription`); `cancel` stops and drains it."""

    def __init__(
        self,
        bus: RabbitMQMessageBus,
        *,
        pattern: str,
        group: str | None,
        ordered: bool,
        handler: MessageHandler,
        channel: AbstractRobustChannel,
        queue: AbstractQueue,
        dead_letter_queue: str,
    ) -> None:
        self._bus, self._pattern, self._group, self._ordered = bus, pattern, group, ordered
        self._handler, self._channel, self._queue = handler, channel, queue
        self.queue_name, self.dead_letter_queue = queue.name, dead_letter_queue
        self._consumer_tag: str | None = None
        self._stopping = False
        self._cancelled = False
        self._running: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._backlog: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._acks: AckBatcher | None = None

    @property
    def topic(self) -> str:
        return self._pattern

    @property
    def group(self) -> str | None:
        return self._group

    async def start(self) -> None:
        if self._ordered:
            self._worker = self._bus.supervisor.spawn(
                f"ordered worker of {self.queue_name!r}", self._work, stopping=self._is_stopping
            )
        await self._consume()
        self._channel.reopen_callbacks.add(self._on_reopen)

    async def _consume(self) -> None:
        underlay = await self._channel.get_underlay_channel()
        callback = self._enqueue if self._ordered else self._process
        ok = await underlay.basic_consume(self.queue_name, callback, no_ack=False)
        self._consumer_tag = ok.consumer_tag

    async def _on_reopen(self, _channel: object) -> None:
        # The robust channel re-declared and re-bound the queue; the consumer is ours to restore.
        if self._stopping:
            return
        # Deliveries of the dead channel still in the backlog are skipped by `_process`; the broker
        # delivers them again on this channel.
        await self._consume()
        logger.info("resumed consuming %r after a reconnect", self.queue_name)

    def _is_stopping(self) -> bool:
        return self._stopping

    # -- delivery ---------------------------------------------------------------------
    async def _enqueue(self, message: DeliveredMessage) -> None:
        if not self._stopping:
            self._backlog.put_nowait(message)

    async def _work(self) -> None:
        while True:
            message = await self._backlog.get()
            if self._stopping:
                return  # left unacknowledged: the broker requeues it when the channel closes
            await self._process(message)

    async def _process(self, message: DeliveredMessage) -> None:
        if self._stopping or message.channel.is_closed:
            # Not started, or stale after a reconnect: the broker requeues it and delivers it again.
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        self._idle.clear()
        try:
            await self._handle(message)
        except _SETTLE_ERRORS as exc:
            # The ack or the retry/dead-letter copy did not reach the broker; the message stays
            # unacknowledged and comes back after the reconnect (a redelivery, not a new attempt).
            self._bus.counters.consume_errors += 1
            logger.warning("could not settle a message from %r (it will be redelivered): %s", self.queue_name, exc)
            await self._give_back(message)  # on a live channel it would hold a prefetch slot for good
        except Exception as exc:  # a bug of ours: report it, and never freeze the consumer
            self._bus.supervisor.failed(f"consumer of {self.queue_name!r}", exc)
            await self._give_back(message)
        finally:
            if task is not None:
                self._running.discard(task)
            if not self._running:
                self._idle.set()

    async def _handle(self, message: DeliveredMessage) -> None:
        bus = self._bus
        properties = message.header.properties
        headers = properties.headers
        attempt = failed_attempts(headers) + 1
        topic = text(headers.get(ORIGINAL_TOPIC_HEADER)) if headers else ""
        topic = topic or message.routing_key or self._pattern
        handler = self._handler
        reply_to = properties.reply_to
        if reply_to and is_direct_address(reply_to):  # a request whose reply takes direct reply-to
            handler = Addressed(handler, reply_to)
        verdict = await handle_delivery(
            bus.codec,
            handler,
            message.body,
            attempt=attempt,
            policy=bus.retry_policy,
            timeout=bus.settings.handler_timeout,
            topic=topic,
            max_bytes=bus.settings.max_message_bytes,
            system="rabbitmq",
            group=self._group,
            headers=headers,
            transport=lambda: transport_facts(properties),
        )
        if verdict.action is not Action.ACK:
            bus.counters.consume_errors += 1
            if verdict.action is Action.RETRY:
                await bus.send_retry(
                    message.body, properties, self.queue_name, topic, attempt, verdict.delay, verdict.message
                )
                bus.counters.retries += 1
            else:
                await bus.send_dead(message.body, properties, self.dead_letter_queue, topic, attempt, verdict)
                bus.counters.dead_lettered += 1
        tag = message.delivery_tag
        assert tag is not None  # always set on a Basic.Deliver
        self._batcher(message).settle(tag)
        if verdict.action is Action.ACK:
            bus.counters.messages_consumed += 1

    def _batcher(self, message: DeliveredMessage) -> AckBatcher:
        acks = self._acks
        if acks is None or acks.channel is not message.channel:
            acks = self._acks = AckBatcher(message.channel)  # first delivery, or a reopened channel
        return acks

    async def _give_back(self, message: DeliveredMessage) -> None:
        """Requeue a delivery whose processing failed unexpectedly, after a pause."""
        tag = message.delivery_tag
        assert tag is not None
        await asyncio.sleep(_GIVE_BACK_DELAY)
        if message.channel.is_closed:
            return  # the broker requeued it with the channel
        try:
            await message.channel.basic_reject(tag, requeue=True)
        except DRIVER_ERRORS as exc:
            logger.info("could not hand back a message of %r (%s); it returns with the channel", self.queue_name, exc)
            return
        self._batcher(message).settled_elsewhere(tag)

    # -- shutdown ---------------------------------------------------------------------
    async def stop_consuming(self) -> None:
        """Ask the broker to stop delivering; handlers already running keep going."""
        if self._stopping:
            return
        self._stopping = True
        if self._consumer_tag is not None:
            try:
                async with asyncio.timeout(_CANCEL_TIMEOUT):  # do not wait out a broker outage
                    underlay = await self._channel.get_underlay_channel()
                    await underlay.basic_cancel(self._consumer_tag)
            except DRIVER_ERRORS as exc:
                logger.info("consumer on %r already gone while cancelling: %s", self.queue_name, exc)

    async def drain(self, timeout: float) -> None:
        """Wait for running handlers; after `timeout`, cancel them (their messages are redelivered)."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            logger.warning(
                "%d handler(s) on %r still running after %.1fs; cancelling them (they will be redelivered)",
                len(self._running),
                self.queue_name,
                timeout,
            )
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def close_channel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._acks is not None:
            await self._acks.flush()  # acks of finished handlers go out before the channel closes
        try:
            # Closing requeues every delivery this channel did not ack (prefetched, not handled).
            await self._channel.close()
        except DRIVER_ERRORS as exc:
            logger.info("channel of %r was already closed: %s", self.queue_name, exc)

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        await self.stop_consuming()
        await self.drain(self._bus.settings.drain_timeout)
        await self.close_channel()
        self._bus.forget(self)
