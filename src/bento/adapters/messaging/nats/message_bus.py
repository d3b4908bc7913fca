"""NatsMessageBus: the MessageBus port on NATS JetStream (nats-py's asyncio client).

- Topics are subjects `{prefix}.p{n}.{topic}` in one stream (see `_subjects`): `n`
  is the key's CRC32 modulo `partitions`, so per-key order is "one consumer per
  partition subject with max_ack_pending=1", and unordered subscribers filter
  `{prefix}.*.{topic}`. `*` in a topic is NATS's one-token wildcard.
- A group is a durable pull consumer (named from group and topic); `group=None` is an
  ephemeral consumer per subscriber starting at new messages (broadcast).
- Publishing waits for the stream's PubAck; `publish_batch` pipelines with
  `publish_async` and waits for every ack. `Nats-Msg-Id` is `{message_id}:{topic}`,
  so a publisher retry within the duplicate window is stored once, while the same
  event published to two topics is stored twice (the stream is shared by all topics).
- Failures follow `handle_delivery`: ack, nak with delay, or dead-letter subject
  `{prefix}_dlq.{group}.{topic}` with the error headers, then term.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from bento.adapters.messaging.lifecycle import StartsAndCloses, opened
from bento.adapters.messaging.limits import within_limit
from bento.adapters.messaging.metrics import BusCounters, BusMetrics
from bento.adapters.messaging.nats._consumer import Consumer, NatsSubscription, consumer_config
from bento.adapters.messaging.nats._publisher import Publisher
from bento.adapters.messaging.nats._streams import ensure_streams, read_dead_letters
from bento.adapters.messaging.nats._subjects import Layout, check_topic
from bento.adapters.messaging.nats.settings import NatsSettings
from bento.adapters.messaging.reconnect import ReconnectCallback, ReconnectCallbacks
from bento.application.errors import (
    BrokerUnavailableError,
    BusClosedError,
    ConfigurationError,
    SubscribeError,
)
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.message_bus import DeadLetter, MessageHandler
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

class NatsMessageBus(StartsAndCloses):
    """MessageBus on JetStream; see the module docstring for the layout and guarantees."""

    def __init__(self, settings: NatsSettings, *, codec: JsonCodec | None = None) -> None:
        self.settings = settings
        self.codec = codec or JsonCodec()
        self._layout = Layout(settings)
        self._counters = BusCounters()
        self._publisher = Publisher(settings, self._layout, self._counters, self.codec)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._subscriptions: set[NatsSubscription] = set()
        self._reconnect_callbacks = ReconnectCallbacks(self._counters)
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ordered_per_key=True,
            persistent=self.settings.storage == "file",
            redelivery=True,
            dead_letter=True,
            pattern_subscriptions=True,
            consumer_groups=True,
            broadcast=True,
            mechanism=(
                f"JetStream stream {self.settings.stream_name}; durable pull consumer per group; "
                f"per-key order: {self.settings.partitions} partition subjects, one consumer each "
                "with max_ack_pending=1"
            ),
        )

    @property
    def metrics(self) -> BusMetrics:
        """Seed 003's counters (published, consumed, errors, last health check)."""
        return self._counters.snapshot()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect and declare the streams. Idempotent; refused after close()."""
        if self._closed:
            raise BusClosedError("this NatsMessageBus was closed; build a new one")
        if self._nc is not None:
            return
        settings = self.settings
        where = ",".join(settings.servers)
        # nats-py annotates these as int but sleeps on them, so fractions of a second work.
        options: dict[str, Any] = {
            "connect_timeout": settings.connect_timeout,
            "reconnect_time_wait": settings.reconnect_wait,
            "drain_timeout": max(0.1, settings.drain_timeout),
        }
        if settings.user is not None:
            options["user"] = settings.user
        if settings.password is not None:
            options["password"] = settings.password.get_secret_value()
        if settings.token is not None:
            options["token"] = settings.token.get_secret_value()
        nc = Client()
        try:
            # nats-py retries the server list on its own; the outer timeout bounds that.
            async with asyncio.timeout(settings.connect_timeout * (len(settings.servers) + 1)):
                await nc.connect(
                    servers=settings.servers,
                    name=settings.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=settings.max_reconnect_attempts,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    **options,
                )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            self._counters.connection_errors += 1
            await nc.close()  # stops the reconnect attempts a cancelled connect may leave behind
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else "no server answered in time"
            raise BrokerUnavailableError("NATS", where, reason) from exc
        self._nc, self._js = nc, nc.jetstream(timeout=settings.publish_timeout)
        try:
            await ensure_streams(self._js, settings)
        except BaseException:
            await nc.close()
            self._nc = self._js = None
            raise

    async def close(self) -> None:
        """Stop every subscriber (in-flight handlers finish, up to `drain_timeout`), then
        drain the connection so pending acks and publishes reach the server."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(s.cancel() for s in list(self._subscriptions)))
        for task in self._background:
            task.cancel()
        nc, self._nc, self._js = self._nc, None, None
        if nc is None or nc.is_closed:
            return
        try:
            await nc.drain()
        except nats.errors.Error as exc:
            logger.warning("NATS drain did not finish cleanly (%s); closing the connection", exc)
            await nc.close()

    def register_reconnect_callback(self, callback: ReconnectCallback) -> None:
        """Run `callback` after every reconnect (seed 003), once the streams are re-declared.
        Sync or async; a callback that raises is logged and counted, the others still run."""
        self._reconnect_callbacks.register(callback)

    # -- publishing ---------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        message: DomainEvent,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = within_limit(self.codec.encode(message, headers), self.settings.max_message_bytes, topic)
        # The key travels as a header only when the body does not already imply it.
        key_header = key if key is not None and key != message.metadata.aggregate_id else None
        await self._publish_one(
            topic, body, key or message.metadata.aggregate_id, key_header, headers, message.message_id
        )

    async def publish_raw(
        self, topic: str, body: bytes, *, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        await self._publish_one(topic, body, key, key, headers, None)

    async def publish_batch(self, topic: str, messages: Sequence[DomainEvent]) -> None:
        """Pipelined: a window of messages is sent before any ack is awaited; returns once
        the stream acknowledged all of them, raises PublishError naming how many it did not.
        Each window must be acknowledged within `publish_timeout`."""
        js = self._ready(f"publish to {topic!r}")
        await self._publisher.batch(js, topic, messages)

    async def _publish_one(
        self,
        topic: str,
        body: bytes,
        key: str | None,
        key_header: str | None,
        headers: Mapping[str, str] | None,
        message_id: str | None,
    ) -> None:
        js = self._ready(f"publish to {topic!r}")
        await self._publisher.one(js, topic, body, key, key_header, headers, message_id)

    # -- subscribing --------------------------------------------------------------------
    async def subscribe(
        self, topic: str, handler: MessageHandler, *, group: str | None = None, ordered: bool = False
    ) -> NatsSubscription:
        js = self._ready(f"subscribe to {topic!r}")
        problem = check_topic(topic, allow_wildcards=True)
        if problem is not None:
            raise SubscribeError(topic, problem)
        settings, layout = self.settings, self._layout
        partitions: list[int | None] = list(range(settings.partitions)) if ordered else [None]
        consumers = [
            Consumer(
                consumer_config(
                    settings,
                    layout.filter_subject(topic, p),
                    durable=layout.consumer_name(group, topic, p) if group is not None else None,
                    ordered=ordered,
                    description=f"bento group {group!r} on {topic!r}",
                )
            )
            for p in partitions
        ]
        try:
            await asyncio.gather(*(c.ensure(js, settings.stream_name) for c in consumers))
        except nats.errors.Error as exc:
            reason = f"JetStream refused the consumer: {type(exc).__name__}: {exc}"
            raise SubscribeError(topic, reason) from exc
        assert self._nc is not None  # _ready() checked the bus is open
        subscription = NatsSubscription(
            nc=self._nc,
            js=js,
            settings=settings,
            layout=layout,
            codec=self.codec,
            counters=self._counters,
            handler=handler,
            topic=topic,
            group=group,
            consumers=consumers,
            ordered=ordered,
            on_cancel=self._subscriptions.discard,
        )
        self._subscriptions.add(subscription)
        subscription.start()
        return subscription

    async def dead_letters(self, topic: str, *, group: str | None, limit: int = 100) -> list[DeadLetter]:
        js = self._ready(f"read dead letters of {topic!r}")
        try:
            return await read_dead_letters(js, self.settings, self._layout, topic, group, limit)
        except nats.errors.Error as exc:
            raise BrokerUnavailableError(
                "NATS JetStream", ",".join(self.settings.servers), f"reading dead letters failed: {exc}"
            ) from exc

    # -- health and connection events -----------------------------------------------------
    async def health_check(self) -> HealthStatus:
        """PING/PONG plus a JetStream API call on the stream: both the connection and
        JetStream must answer within `connect_timeout`."""
        started = time.perf_counter()
        healthy, detail = False, "closed" if self._closed else "not started"
        nc, js = self._nc, self._js
        if nc is not None and js is not None:
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    await nc.flush(timeout=max(1, int(self.settings.connect_timeout)))
                    info = await js.stream_info(self.settings.stream_name)
                healthy, detail = True, f"stream {info.config.name}: {info.state.messages} messages"
            except (nats.errors.Error, TimeoutError) as exc:
                detail = f"{type(exc).__name__}: {exc}"
        self._counters.record_health_check(healthy)
        return HealthStatus(
            healthy=healthy,
            component="nats",
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
        )

    def _ready(self, action: str) -> JetStreamContext:
        return opened("the NATS bus", action, self._js, closed=self._closed)

    async def _on_error(self, exc: Exception) -> None:
        self._counters.connection_errors += 1
        logger.warning("NATS connection error: %s: %s", type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if not self._closed and self._nc is not None:
            logger.warning("disconnected from NATS; the client reconnects on its own")

    async def _on_reconnected(self) -> None:
        self._counters.reconnects += 1
        logger.info("reconnected to NATS")
        # Not awaited here: JetStream requests need the client's read loop, which runs
        # the callback, so re-initialisation happens in its own task.
        task = asyncio.create_task(self._after_reconnect(), name="bento-nats-reconnect")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _after_reconnect(self) -> None:
        if self._js is not None:
            try:
                await ensure_streams(self._js, self.settings)
            except (BrokerUnavailableError, ConfigurationError) as exc:
                logger.error("re-declaring streams after reconnect failed: %s", exc)
        await self._reconnect_callbacks.run()
