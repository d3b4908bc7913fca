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
  `{prefix}_dlq.{group}.{topic}` with the error headers (cut to `max_payload`), then term.
- A client nats-py closed for good is replaced (`_connection`); messages stored on
  subjects outside the layout are swept to the dead letters (`_strays`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from bento.adapters.nats import _backlog
from bento.adapters.nats._connection import Connection
from bento.adapters.nats._consumer import Consumer, NatsSubscription, consumer_config
from bento.adapters.nats._publisher import Publisher
from bento.adapters.nats._strays import sweep_unrouted
from bento.adapters.nats._streams import read_dead_letters
from bento.adapters.nats._subjects import Layout, check_topic
from bento.adapters.nats.request_reply import NatsRequestReply
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.shared.dead_letters import replay_copy, requeue_each
from bento.adapters.shared.delivery import typed_handler
from bento.adapters.shared.lifecycle import StartsAndCloses, opened
from bento.adapters.shared.limits import within_limit
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.reconnect import ObservedBus, ReconnectCallbacks
from bento.adapters.shared.wire_headers import NATS, WireEncoder
from bento.application.errors import (
    BrokerUnavailableError,
    BusClosedError,
    SubscribeError,
)
from bento.application.ports.backlog import Backlog
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageHandler
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default, until a server said otherwise


class NatsMessageBus(ObservedBus, StartsAndCloses):
    """MessageBus on JetStream; see the module docstring for the layout and guarantees."""

    def __init__(self, settings: NatsSettings, *, codec: JsonCodec | None = None) -> None:
        self.settings = settings
        self.codec = codec or JsonCodec()
        self._layout = Layout(settings)
        self._counters = BusCounters()
        self._wire = WireEncoder(self.codec, settings, NATS, "nats")
        self._publisher = Publisher(settings, self._layout, self._counters, self._wire, self._max_payload)
        self._subscriptions: set[NatsSubscription] = set()
        self._reconnect_callbacks = ReconnectCallbacks(self._counters)
        self._conn = Connection(settings, self._counters, self._reconnect_callbacks)
        self._conn.on_replaced(self._wake_subscriptions)
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._request_reply = NatsRequestReply(self._conn, self.settings, self.codec)

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

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def request_reply(self) -> NatsRequestReply:
        """NATS core request/reply for a remote CommandBus's dispatch and ask (RequestReplyPort)."""
        return self._request_reply

    async def start(self) -> None:
        """Connect and declare the streams. Idempotent; refused after close()."""
        if self._closed:
            raise BusClosedError("this NatsMessageBus was closed; build a new one")
        if self._conn.nc is None:
            await self._conn.open()
            if self.settings.unrouted_sweep_interval is not None:
                self._sweeper = asyncio.create_task(self._sweep_forever(), name="bento-nats-unrouted")

    async def close(self) -> None:
        """Within `drain_timeout` in all: stop every subscriber (waiting messages are
        handed back, running handlers finish or are cancelled at the deadline), then
        drain the connection so pending acks and publishes reach the server."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self.settings.drain_timeout
        if self._sweeper is not None:
            self._sweeper.cancel()
        await asyncio.gather(*(s.cancel() for s in list(self._subscriptions)))
        await self._conn.close(deadline)

    # -- publishing ---------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        message: DomainEvent,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body, wire_headers = self._wire.encode(message, headers, topic=topic)
        within_limit(body, self.settings.max_message_bytes, topic, self._counters)
        # The key travels as a header only when the body does not already imply it.
        key_header = key if key is not None and key != message.metadata.aggregate_id else None
        await self._publish_one(
            topic, body, key or message.metadata.aggregate_id, key_header, wire_headers, message.message_id
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
        self,
        topic: str,
        handler: MessageHandler,
        *,
        group: str | None = None,
        ordered: bool = False,
        message_type: type[DomainEvent] | None = None,
    ) -> NatsSubscription:
        handler = typed_handler(handler, message_type)
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
        subscription = NatsSubscription(
            connection=self._conn,
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
                "NATS JetStream", self.settings.address, f"reading dead letters failed: {exc}"
            ) from exc

    async def backlog(self, topic: str, *, group: str) -> Backlog:
        """BacklogProbe: the group's consumer `num_pending` and its dead-letter subject's count."""
        js = self._ready(f"probe the backlog of {topic!r}")
        return await _backlog.probe(js, self.settings, self._layout, topic, group)

    async def requeue_dead_letters(
        self,
        topic: str,
        *,
        group: str | None,
        selection: DeadLetterSelection | None = None,
        rate: float | None = None,
    ) -> list[DeadLetter]:
        """Each copy is published and acknowledged by the stream, then the letter is deleted from
        the dead-letter stream by sequence. The copy's `Nats-Msg-Id` names the letter, so a requeue
        repeated within the stream's `duplicate_window` after an interruption is dropped by
        JetStream itself; later than that, the subscriber's inbox absorbs it."""
        js = self._ready(f"requeue dead letters of {topic!r}")

        async def send(dead: DeadLetter) -> None:
            # A pattern subscription's letter goes back to the topic it came from.
            target = dead.topic if "*" not in dead.topic and ">" not in dead.topic else topic
            copy = replay_copy(self._wire, dead, topic=target)
            headers = {k: v for k, v in copy.headers.items() if not k.startswith("Nats-")}
            headers["Nats-Msg-Id"] = f"bento-replay:{self.settings.dead_letter_stream}:{dead.letter_id}"
            await self._publisher.one(js, target, copy.body, copy.key, copy.key, headers, dead.message_id)

        async def remove(dead: DeadLetter) -> None:
            await js.delete_msg(self.settings.dead_letter_stream, int(dead.letter_id))

        try:
            letters = await read_dead_letters(js, self.settings, self._layout, topic, group, None)
            return await requeue_each(letters, selection, rate, send, remove)
        except nats.errors.Error as exc:
            raise BrokerUnavailableError(
                "NATS JetStream", self.settings.address, f"requeueing dead letters failed: {exc}"
            ) from exc

    async def purge_dead_letters(
        self, topic: str, *, group: str | None, selection: DeadLetterSelection | None = None
    ) -> int:
        js = self._ready(f"purge dead letters of {topic!r}")
        try:
            letters = await read_dead_letters(js, self.settings, self._layout, topic, group, None)
            chosen = [d for d in letters if selection is None or selection.matches(d)]
            for dead in chosen:
                await js.delete_msg(self.settings.dead_letter_stream, int(dead.letter_id))
        except nats.errors.Error as exc:
            raise BrokerUnavailableError(
                "NATS JetStream", self.settings.address, f"purging dead letters failed: {exc}"
            ) from exc
        return len(chosen)

    # -- health and connection events -----------------------------------------------------
    async def health_check(self) -> HealthStatus:
        """PING/PONG plus a JetStream API call on the stream: both the connection and
        JetStream must answer within `connect_timeout`."""
        started = time.perf_counter()
        healthy, detail = False, "closed" if self._closed else "not started"
        nc, js = self._conn.nc, self._conn.js
        if nc is not None and js is not None:
            try:
                async with asyncio.timeout(self.settings.connect_timeout):
                    await nc.flush(timeout=max(1, int(self.settings.connect_timeout)))
                    info = await js.stream_info(self.settings.stream_name)
                healthy, detail = True, f"stream {info.config.name}: {info.state.messages} messages"
            except (nats.errors.Error, TimeoutError) as exc:
                detail = f"{type(exc).__name__}: {exc}"
        failing = [f for f in (s.failure for s in self._subscriptions) if f is not None]
        if healthy and failing:
            healthy, detail = False, f"{len(failing)} subscriber(s) not pulling; first: {failing[0]}"
        self._counters.record_health_check(healthy)
        return HealthStatus(
            healthy=healthy,
            component="nats",
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail,
        )

    def _ready(self, action: str) -> JetStreamContext:
        return opened("the NATS bus", action, self._conn.js, closed=self._closed)

    async def _sweep_forever(self) -> None:
        """Dead-letter what the stream accepted on subjects no subscriber matches (see
        `_strays`): at start, then every `unrouted_sweep_interval`. A failed sweep is
        logged and counted, and the next one tries again."""
        interval = self.settings.unrouted_sweep_interval
        assert interval is not None
        while True:
            try:
                _, js = self._conn.live()
                self._counters.dead_lettered += await sweep_unrouted(
                    js, self.settings, self._layout, self._max_payload()
                )
            except (nats.errors.Error, TimeoutError) as exc:
                self._counters.connection_errors += 1
                logger.warning(
                    "sweeping unrouted subjects failed (%s: %s); next try in %g s", type(exc).__name__, exc, interval
                )
            await asyncio.sleep(interval)

    def _max_payload(self) -> int:
        nc = self._conn.nc
        return nc.max_payload if nc is not None else DEFAULT_MAX_PAYLOAD

    def _wake_subscriptions(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.wake()
