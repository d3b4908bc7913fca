"""RabbitMQMessageBus: the MessageBus port on RabbitMQ through aio-pika's robust connection.

Publishing goes to one durable exchange (`exchange_name`, `topic` by default) with the
topic as routing key, persistent, and returns after the broker's confirm. A group is a
durable queue `<exchange>/<group>/<pattern>` bound with the pattern (AMQP `*` = one word, `#` = any;
scoped by exchange, so applications sharing a vhost never share a queue, see `_topology`);
`group=None` is an exclusive auto-delete queue per subscriber (broadcast; what arrives while
it is disconnected is not kept). Failures are decided by `handle_delivery`, as on every bus:
retries go through the application's per-delay TTL queues, dead letters to `<queue>.dlq`.
After a dropped connection aio-pika re-opens it and restores exchanges, queues, bindings and
consumers; then the callbacks given to `register_reconnect_callback` run.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.commands import Basic

from bento.adapters.rabbitmq import _backlog, _codec, _legacy, _topology
from bento.adapters.rabbitmq._connection import (
    DRIVER_ERRORS,
    close_connection,
    open_connection,
)
from bento.adapters.rabbitmq._dead_letters import DeadLetterQueue, close_quietly
from bento.adapters.rabbitmq._direct_reply import DIRECT_REPLY_TO, DirectReplies, is_direct_address
from bento.adapters.rabbitmq._publisher import ConfirmedPublisher
from bento.adapters.rabbitmq._subscription import RabbitMQSubscription
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.delivery import (
    ATTEMPTS_HEADER,
    FIRST_FAILED_AT_HEADER,
    ORIGINAL_TOPIC_HEADER,
    Verdict,
    typed_handler,
)
from bento.adapters.shared.lifecycle import StartsAndCloses, opened
from bento.adapters.shared.limits import all_within_limit, within_limit
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.reconnect import ObservedBus, ReconnectCallbacks
from bento.adapters.shared.supervision import Supervisor
from bento.adapters.shared.wire_headers import AMQP, WireEncoder
from bento.application.errors import BusClosedError, ConfigurationError, SubscribeError
from bento.application.ports.backlog import Backlog
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageHandler
from bento.application.serialization import JsonCodec
from bento.application.wire import ID_HEADER, TIME_HEADER
from bento.domain.events import DomainEvent
from bento.domain.metadata import utc_now

logger = logging.getLogger(__name__)

_CAPABILITIES = Capabilities(
    ordered_per_key=True,
    persistent=True,
    redelivery=True,
    dead_letter=True,
    pattern_subscriptions=True,
    consumer_groups=True,
    broadcast=True,
    mechanism=(
        "durable queue per group and pattern on a topic exchange; ordered=True declares a "
        "single-active-consumer queue (one member receives, one handler at a time, others stand by); "
        "retries via per-delay TTL queues dead-lettering back, then a per-subscription DLQ"
    ),
)


class RabbitMQMessageBus(ObservedBus, StartsAndCloses):
    """MessageBus on RabbitMQ; see the module docstring for topology and guarantees."""

    def __init__(self, settings: RabbitMQSettings, *, codec: JsonCodec | None = None) -> None:
        self.settings = settings
        self.codec = codec or JsonCodec()
        self._wire = WireEncoder(self.codec, settings, AMQP, "rabbitmq")
        self._counters = BusCounters()
        self.supervisor = Supervisor("RabbitMQ bus", self._counters)
        self.retry_policy = settings.retry_policy()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._publisher: ConfirmedPublisher | None = None
        self._direct: DirectReplies | None = None
        self._subscriptions: set[RabbitMQSubscription] = set()
        self._reconnect_callbacks = ReconnectCallbacks(self._counters)
        self._background: set[asyncio.Task[None]] = set()
        self._retry_routes: set[str] = set()
        self._retry_lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self._closed = False

    @property
    def capabilities(self) -> Capabilities:
        return _CAPABILITIES

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, open the confirm channel and declare the exchange (idempotent)."""
        async with self._start_lock:
            if self._closed:
                raise BusClosedError("this RabbitMQMessageBus was closed; build a new one")
            if self._connection is not None:
                return
            connection = await open_connection(self.settings, self._counters, "bus")
            try:
                channel = await connection.channel(publisher_confirms=True)
                await channel.declare_exchange(self.settings.exchange_name, self.settings.exchange_type, durable=True)
            except ChannelPreconditionFailed as exc:
                await connection.close()
                raise ConfigurationError(
                    [
                        f"exchange {self.settings.exchange_name!r} already exists with another type or "
                        f"durability than {self.settings.exchange_type!r} (durable): {exc}"
                    ]
                ) from exc
            except DRIVER_ERRORS as exc:
                await connection.close()
                raise SubscribeError(self.settings.exchange_name, f"declaring the exchange failed: {exc}") from exc
            connection.reconnect_callbacks.add(self._on_reconnect)
            connection.close_callbacks.add(self._on_lost)
            self._connection, self._channel = connection, channel
            self._publisher = ConfirmedPublisher(channel, self.settings, self._counters)
            self._direct = DirectReplies(channel, self.codec)
            if self.settings.legacy_queue_names:
                logger.warning(_legacy.legacy_warning(self.settings))

    async def close(self) -> None:
        """Stop every consumer, let running handlers finish (up to `drain_timeout`), then disconnect."""
        if self._closed:
            return
        self._closed = True
        subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            await subscription.stop_consuming()
        # Handlers may still publish retry or dead-letter copies, so the confirm channel stays open here.
        await asyncio.gather(*(s.drain(self.settings.drain_timeout) for s in subscriptions))
        for subscription in subscriptions:
            await subscription.close_channel()
        self._subscriptions.clear()
        connection, self._connection, self._channel, self._publisher = self._connection, None, None, None
        self._direct = None
        await close_connection(connection)

    @property
    def direct_reply(self) -> DirectReplies | None:
        """Replies to this process by RabbitMQ direct reply-to (the DirectReplyPort), once started."""
        return self._direct

    async def _on_reconnect(self, _connection: object) -> None:
        """aio-pika restored topology and consumers; now the reconnect callbacks (seed 003)."""
        logger.info("RabbitMQ bus reconnected; topology and consumers restored")
        self._counters.reconnects += 1
        await self._reconnect_callbacks.run()

    def _on_lost(self, _sender: object, exc: BaseException | None = None) -> None:
        """The connection dropped (not closed by us): run the disconnect callbacks in a task,
        since aio-pika calls this synchronously from its connection loop."""
        if self._closed or exc is None or isinstance(exc, asyncio.CancelledError):
            return
        task = asyncio.get_running_loop().create_task(self._reconnect_callbacks.disconnected())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _live_publisher(self, topic: str) -> ConfirmedPublisher:
        return opened("the RabbitMQ bus", f"use {topic!r}", self._publisher, closed=self._closed)

    # -- publishing -------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        message: DomainEvent,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        publisher = self._live_publisher(topic)
        if topic.startswith(DIRECT_REPLY_TO):
            await self._publish_reply(publisher, topic, message)
            return
        # The aggregate id travels in the body's metadata; only an explicit key becomes a header.
        body, wire_headers = self._wire.encode(message, headers, topic=topic)
        # A request whose reply takes direct reply-to goes out on the channel consuming the replies.
        direct = self._direct if self._direct is not None and self._direct.wants_reply(headers) else None
        reply_to = None if direct is None else DIRECT_REPLY_TO
        props = _codec.message_properties(message, key, wire_headers, self._wire.content_type, reply_to=reply_to)
        within_limit(body, self.settings.max_message_bytes, topic, self._counters)
        prepare = None if direct is None else direct.ensure_consuming
        await publisher.send(self.settings.exchange_name, topic, [(body, props)], topic=topic, prepare=prepare)

    async def _publish_reply(self, publisher: ConfirmedPublisher, address: str, message: DomainEvent) -> None:
        """A reply to a requester's channel (direct reply-to): default exchange, not persistent."""
        if not is_direct_address(address):
            # The request reached us without the broker's address (a foreign copy of it): no one
            # can receive this reply, and publishing to the bare pseudo-queue would close our channel.
            logger.warning("dropped a reply to %r: the request carried no direct reply-to address", address)
            return
        body = self._wire.encode_private(message, topic=address)
        props = _codec.reply_properties(message)
        within_limit(body, self.settings.max_message_bytes, address, self._counters)
        await publisher.send("", address, [(body, props)], topic=address)

    async def publish_batch(self, topic: str, messages: Sequence[DomainEvent]) -> None:
        publisher = self._live_publisher(topic)
        encode, properties, content_type = self._wire.encode, _codec.message_properties, self._wire.content_type
        items = []
        for message in messages:
            body, headers = encode(message, topic=topic)
            items.append((body, properties(message, None, headers, content_type)))
        all_within_limit((body for body, _ in items), self.settings.max_message_bytes, topic, self._counters)
        await publisher.send(self.settings.exchange_name, topic, items, topic=topic)

    async def publish_raw(
        self, topic: str, body: bytes, *, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Sends `body` as given (no size check; the broker's own limit applies)."""
        publisher = self._live_publisher(topic)
        items = [(body, _codec.properties(None, key, headers))]
        await publisher.send(self.settings.exchange_name, topic, items, topic=topic)

    # -- subscribing ------------------------------------------------------------------
    async def subscribe(
        self,
        topic: str,
        handler: MessageHandler,
        *,
        group: str | None = None,
        ordered: bool = False,
        message_type: type[DomainEvent] | None = None,
    ) -> RabbitMQSubscription:
        handler = typed_handler(handler, message_type)
        self._live_publisher(topic)
        assert self._connection is not None
        queue_name = _topology.subscription_queue(self.settings, topic, group)
        dead_letter_queue = _topology.dead_letter_queue(self.settings, topic, group)
        await self._declare_retry_routes()
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=self.settings.prefetch_count)
            await channel.declare_queue(
                dead_letter_queue, durable=True, arguments=_topology.dead_letter_arguments(self.settings)
            )
            if group is None:
                queue = await channel.declare_queue(queue_name, exclusive=True, auto_delete=True)
            else:
                queue = await channel.declare_queue(
                    queue_name,
                    durable=True,
                    arguments=_topology.queue_arguments(self.settings, ordered=ordered),
                )
            await queue.bind(self.settings.exchange_name, routing_key=topic)
            subscription = RabbitMQSubscription(
                self,
                pattern=topic,
                group=group,
                ordered=ordered,
                handler=handler,
                channel=channel,
                queue=queue,
                dead_letter_queue=dead_letter_queue,
            )
            await subscription.start()
        except ChannelPreconditionFailed as exc:
            await close_quietly(channel)
            raise SubscribeError(
                topic,
                f"queue {queue_name!r} exists with other arguments (ordered={ordered}, "
                f"queue_type={self.settings.queue_type!r}, queue_expires): {exc}",
            ) from exc
        except DRIVER_ERRORS as exc:
            await close_quietly(channel)
            raise SubscribeError(topic, f"{type(exc).__name__}: {exc}") from exc
        self._subscriptions.add(subscription)
        if group is not None and not self.settings.legacy_queue_names:
            await self._retire_legacy_queue(topic, group)
        return subscription

    async def _retire_legacy_queue(self, topic: str, group: str) -> None:
        assert self._connection is not None
        try:
            await _legacy.retire(self._connection, self.settings, topic, group)
        except DRIVER_ERRORS as exc:
            # The subscription works; only the old queue may keep filling, so say so loudly.
            logger.warning(
                "could not unbind the legacy queue %r from %r (it may keep receiving copies): %s",
                _topology.legacy_queue(topic, group),
                self.settings.exchange_name,
                exc,
            )

    async def move_legacy_messages(self, topic: str, *, group: str) -> int:
        """Move the messages of the group's unscoped queue (`<group>.<topic>`, earlier versions) into
        its scoped queue, where this bus's subscription handles them; returns how many moved.

        Messages another exchange published there stay for that application (docs/rabbitmq.md)."""
        publisher = self._live_publisher(topic)
        assert self._connection is not None
        if self.settings.legacy_queue_names:
            raise ConfigurationError(["legacy_queue_names=True: the group already uses its legacy queue"])
        try:
            moved, _left = await _legacy.move(self._connection, publisher, self.settings, topic, group)
        except DRIVER_ERRORS as exc:
            raise SubscribeError(topic, f"moving legacy queue messages failed: {exc}") from exc
        return moved

    def forget(self, subscription: RabbitMQSubscription) -> None:
        self._subscriptions.discard(subscription)

    async def _declare_retry_routes(self) -> None:
        """One fanout exchange + TTL queue per retry delay, shared by this exchange's subscriptions."""
        delays = {self.retry_policy.delay_after(a) for a in range(1, self.retry_policy.max_attempts)}
        async with self._retry_lock:
            for delay in sorted(delays):
                name = _topology.retry_name(self.settings, delay)
                if _topology.delay_ms(delay) == 0 or name in self._retry_routes:
                    continue
                assert self._channel is not None
                exchange = await self._channel.declare_exchange(name, "fanout", durable=True)
                queue = await self._channel.declare_queue(
                    name, durable=True, arguments=_topology.retry_arguments(delay)
                )
                await queue.bind(exchange, routing_key="")
                self._retry_routes.add(name)

    # -- failure path (called by subscriptions) ---------------------------------------
    async def send_retry(
        self,
        body: bytes,
        properties: Basic.Properties,
        queue: str,
        topic: str,
        attempt: int,
        delay: float,
        message: DomainEvent | None = None,
    ) -> None:
        """Park a copy in the retry queue for `delay`; it expires back into `queue`. The decoded
        `message`'s id and timestamp go in the copy's headers, so a plain foreign payload (whose
        id and time came from the transport) is the same message on the next attempt."""
        headers = _codec.forwardable(properties.headers)
        if message is not None:
            headers.setdefault(ID_HEADER, message.message_id)
            headers.setdefault(TIME_HEADER, message.timestamp.isoformat())
        headers[ATTEMPTS_HEADER] = attempt
        headers[ORIGINAL_TOPIC_HEADER] = topic
        headers.setdefault(FIRST_FAILED_AT_HEADER, utc_now().isoformat())
        props = _codec.republished(properties.message_id, properties.content_type, headers, properties)
        exchange = "" if _topology.delay_ms(delay) == 0 else _topology.retry_name(self.settings, delay)
        if exchange and exchange not in self._retry_routes:
            await self._declare_retry_routes()
        await self._internal_publisher().send(exchange, queue, [(body, props)], topic=topic, counted=False)

    async def send_dead(
        self,
        body: bytes,
        properties: Basic.Properties,
        dead_letter_queue: str,
        topic: str,
        attempt: int,
        verdict: Verdict,
    ) -> None:
        headers = {**_codec.forwardable(properties.headers), **verdict.dead_letter_headers(attempt, topic)}
        headers[_codec.LETTER_ID_HEADER] = uuid.uuid4().hex
        props = _codec.republished(properties.message_id, properties.content_type, headers, properties)
        await self._internal_publisher().send("", dead_letter_queue, [(body, props)], topic=topic, counted=False)

    def _internal_publisher(self) -> ConfirmedPublisher:
        # Still usable while close() drains handlers; gone only once the connection is closed.
        if self._publisher is None:
            raise BusClosedError("the RabbitMQ bus is closed; the message will be redelivered")
        return self._publisher

    # -- inspection -------------------------------------------------------------------
    async def dead_letters(self, topic: str, *, group: str | None, limit: int = 100) -> list[DeadLetter]:
        """Browse the subscription's DLQ: get up to `limit`, then requeue them all (nothing is removed)."""
        return await self._dead_letter_queue(topic, group).read(limit)

    async def requeue_dead_letters(
        self,
        topic: str,
        *,
        group: str | None,
        selection: DeadLetterSelection | None = None,
        rate: float | None = None,
    ) -> list[DeadLetter]:
        """See `_dead_letters`: each letter is acknowledged only after its copy was confirmed."""
        queue = self._dead_letter_queue(topic, group)
        return await queue.requeue(self._internal_publisher(), self._wire, selection, rate)

    async def purge_dead_letters(
        self, topic: str, *, group: str | None, selection: DeadLetterSelection | None = None
    ) -> int:
        return await self._dead_letter_queue(topic, group).purge(selection)

    def _dead_letter_queue(self, topic: str, group: str | None) -> DeadLetterQueue:
        self._live_publisher(topic)
        assert self._connection is not None
        return DeadLetterQueue(self._connection, self.settings, topic, group)

    async def backlog(self, topic: str, *, group: str) -> Backlog:
        """BacklogProbe: ready messages of the group's queue and of its DLQ (passive declares)."""
        self._live_publisher(topic)
        assert self._connection is not None
        return await _backlog.probe(self._connection, self.settings, topic, group)

    async def health_check(self) -> HealthStatus:
        """A real round trip: open a channel and passively declare the exchange, within the timeout."""
        started = time.perf_counter()
        healthy, detail = False, ""
        if self._closed or self._connection is None:
            detail = "closed" if self._closed else "not started"
        else:
            try:
                async with asyncio.timeout(self.settings.health_check_timeout):
                    channel = await self._connection.channel(publisher_confirms=False)
                    try:
                        await channel.declare_exchange(self.settings.exchange_name, passive=True, robust=False)
                    finally:
                        await close_quietly(channel)
                healthy = True
            except DRIVER_ERRORS as exc:
                detail = f"{type(exc).__name__}: {exc}"
        problem = self.supervisor.problem() if healthy else None
        if problem is not None:
            healthy, detail = False, problem
        self._counters.record_health_check(healthy)
        return HealthStatus(
            healthy=healthy,
            component=f"rabbitmq:{self.settings.exchange_name}",
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
        )
