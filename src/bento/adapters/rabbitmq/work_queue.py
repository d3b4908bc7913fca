"""RabbitMQWorkQueue: seed 000's message queue (`publish`, `publish_batch`, `consume`) on RabbitMQ.

A work queue is a durable queue of JSON objects, addressed by name through the default
exchange; competing consumers share it. Unlike the MessageBus there are no topics, event
classes or retries: the consumer decides. With `auto_ack=True` (the seed's default form,
`handler(message)`) a message is acknowledged once the handler returned, and a handler that
raises sends it to `<queue>.dlq`. With `auto_ack=False` the handler gets `(message, ack, nack)`
and settles it itself (`await nack(requeue=True)` puts it back at once — the caller's choice);
if it raises without settling, the message goes to `<queue>.dlq`. Bodies that are not JSON go
to the DLQ too. Publishes are persistent and confirmed; `publish_batch` pipelines them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic

from bento.adapters.rabbitmq._codec import PERSISTENT
from bento.adapters.rabbitmq._connection import (
    DRIVER_ERRORS,
    close_connection,
    open_connection,
)
from bento.adapters.rabbitmq._publisher import ConfirmedPublisher
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.lifecycle import StartsAndCloses, opened
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.reconnect import ReconnectCallback, ReconnectCallbacks
from bento.application.errors import BusClosedError, SubscribeError
from bento.application.ports.capabilities import HealthStatus

logger = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[None]]
Nack = Callable[..., Awaitable[None]]  # nack(requeue: bool = True)
#: `handler(message)` with auto_ack=True, `handler(message, ack, nack)` with auto_ack=False.
WorkHandler = Callable[..., Awaitable[Any]]
_JSON = "application/json"
_CONSUME_ERRORS: tuple[type[BaseException], ...] = (SubscribeError, *DRIVER_ERRORS)


class RabbitMQWorkQueueConsumer:
    """A running `consume`; `cancel()` stops delivery and waits for running handlers."""

    def __init__(
        self,
        owner: RabbitMQWorkQueue,
        name: str,
        channel: AbstractRobustChannel,
        queue: AbstractQueue,
        handler: WorkHandler,
        auto_ack: bool,
    ) -> None:
        self.queue_name, self._owner, self._channel, self._queue = name, owner, channel, queue
        self._handler, self._auto_ack = handler, auto_ack
        self._tag: str | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def start(self) -> None:
        self._tag = await self._queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:
            return  # requeued by the broker when the channel closes
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        metrics = self._owner.metrics
        try:
            try:
                payload = json.loads(message.body)
            except ValueError as exc:
                logger.error("dead-lettering a non-JSON message from work queue %r: %s", self.queue_name, exc)
                metrics.consume_errors += 1
                await message.reject(requeue=False)
                metrics.dead_lettered += 1
                return
            try:
                async with asyncio.timeout(self._owner.settings.handler_timeout):
                    if self._auto_ack:
                        await self._handler(payload)
                    else:
                        await self._handler(payload, message.ack, _nack(message))
            except Exception:
                metrics.consume_errors += 1
                logger.exception("work queue %r handler failed; dead-lettering the message", self.queue_name)
                if not message.processed:
                    await message.reject(requeue=False)
                    metrics.dead_lettered += 1
                return
            if self._auto_ack:
                await message.ack()
            metrics.messages_consumed += 1
        except DRIVER_ERRORS as exc:
            metrics.consume_errors += 1
            logger.warning("could not settle a message of %r (it will be redelivered): %s", self.queue_name, exc)
        finally:
            if task is not None:
                self._running.discard(task)

    async def cancel(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        try:
            if self._tag is not None:
                await self._queue.cancel(self._tag)
        except DRIVER_ERRORS as exc:
            logger.info("consumer of %r already gone: %s", self.queue_name, exc)
        _, pending = (
            await asyncio.wait(self._running, timeout=self._owner.settings.drain_timeout)
            if self._running
            else (set(), set())
        )
        for task in pending:
            task.cancel()
        try:
            await self._channel.close()
        except DRIVER_ERRORS as exc:
            logger.info("channel of %r already closed: %s", self.queue_name, exc)
        self._owner.forget(self)


def _nack(message: AbstractIncomingMessage) -> Nack:
    async def nack(requeue: bool = True) -> None:
        await message.nack(requeue=requeue)

    return nack


class RabbitMQWorkQueue(StartsAndCloses):
    """Named durable work queues on RabbitMQ; see the module docstring for ack semantics."""

    def __init__(self, settings: RabbitMQSettings) -> None:
        self.settings = settings
        self.metrics = BusCounters()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._publisher: ConfirmedPublisher | None = None
        self._declared: set[str] = set()
        self._consumers: set[RabbitMQWorkQueueConsumer] = set()
        self._reconnect_callbacks = ReconnectCallbacks(self.metrics)
        self._closed = False

    async def start(self) -> None:
        if self._closed:
            raise BusClosedError("this RabbitMQWorkQueue was closed; build a new one")
        if self._connection is not None:
            return
        connection = await open_connection(self.settings, self.metrics, "work-queue")
        try:
            channel = await connection.channel(publisher_confirms=True)
        except DRIVER_ERRORS as exc:
            await connection.close()
            raise SubscribeError("work queues", f"opening a channel failed: {exc}") from exc
        connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection, self._channel = connection, channel
        self._publisher = ConfirmedPublisher(channel, self.settings, self.metrics)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.cancel()
        connection, self._connection, self._publisher = self._connection, None, None
        await close_connection(connection)

    def register_reconnect_callback(self, callback: ReconnectCallback) -> None:
        self._reconnect_callbacks.register(callback)

    async def _on_reconnect(self, _connection: object) -> None:
        self.metrics.reconnects += 1
        await self._reconnect_callbacks.run()

    def forget(self, consumer: RabbitMQWorkQueueConsumer) -> None:
        self._consumers.discard(consumer)

    # -- producing --------------------------------------------------------------------
    async def publish(self, queue: str, message: Mapping[str, Any]) -> None:
        await self.publish_batch(queue, [message])

    async def publish_batch(self, queue: str, messages: Sequence[Mapping[str, Any]]) -> None:
        publisher = self._live(queue)
        if queue not in self._declared:
            assert self._channel is not None
            await self._declare(self._channel, queue)
            self._declared.add(queue)  # the robust channel re-declares it after a reconnect
        props = Basic.Properties(delivery_mode=PERSISTENT, content_type=_JSON)
        items = [(json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode(), props) for m in messages]
        await publisher.send("", queue, items, topic=queue)

    # -- consuming --------------------------------------------------------------------
    async def consume(self, queue: str, handler: WorkHandler, auto_ack: bool = True) -> RabbitMQWorkQueueConsumer:
        """Start consuming `queue` (declared if needed); returns a handle whose `cancel()` stops it."""
        self._live(queue)
        assert self._connection is not None
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=self.settings.prefetch_count)
            declared = await self._declare(channel, queue)
            consumer = RabbitMQWorkQueueConsumer(self, queue, channel, declared, handler, auto_ack)
            await consumer.start()
        except _CONSUME_ERRORS as exc:
            try:
                await channel.close()
            except DRIVER_ERRORS as close_exc:
                logger.debug("channel already closed after a failed consume: %s", close_exc)
            if isinstance(exc, SubscribeError):
                raise
            raise SubscribeError(queue, f"{type(exc).__name__}: {exc}") from exc
        self._consumers.add(consumer)
        return consumer

    async def _declare(self, channel: AbstractRobustChannel, queue: str) -> AbstractQueue:
        """The queue and its DLQ; rejected messages dead-letter there through the default exchange."""
        kind = {"x-queue-type": self.settings.queue_type}
        try:
            if queue.endswith(self.settings.dead_letter_suffix):
                return await channel.declare_queue(queue, durable=True, arguments=kind)  # a DLQ has none
            dead = f"{queue}{self.settings.dead_letter_suffix}"
            arguments = {**kind, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
            await channel.declare_queue(dead, durable=True, arguments=kind)
            return await channel.declare_queue(queue, durable=True, arguments=arguments)
        except ChannelPreconditionFailed as exc:
            raise SubscribeError(
                queue,
                f"queue {queue!r} exists with other arguments (dead-lettering, type); delete or rename it: {exc}",
            ) from exc

    def _live(self, queue: str) -> ConfirmedPublisher:
        return opened("the RabbitMQ work queue", f"use work queue {queue!r}", self._publisher, closed=self._closed)

    async def health_check(self) -> HealthStatus:
        """A real round trip (open and close a channel) within `health_check_timeout`."""
        started = time.perf_counter()
        healthy, detail = False, "closed" if self._closed or self._connection is None else ""
        if not detail:
            assert self._connection is not None
            try:
                async with asyncio.timeout(self.settings.health_check_timeout):
                    channel = await self._connection.channel(publisher_confirms=False)
                    await channel.close()
                healthy = True
            except DRIVER_ERRORS as exc:
                detail = f"{type(exc).__name__}: {exc}"
        self.metrics.record_health_check(healthy)
        return HealthStatus(healthy, "rabbitmq:work-queue", (time.perf_counter() - started) * 1000, detail)
