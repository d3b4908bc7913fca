"""KafkaMessageBus: the MessageBus port on Apache Kafka (aiokafka, asyncio-native).

- A topic is a Kafka topic `{topic_prefix}{topic}`, created with `partitions` and
  `replication_factor` when missing (admin client), or required to exist
  (`create_topics=False`). The record key is the message key (the aggregate id by
  default), so Kafka's partitioner keeps each key on one partition, in order.
- A group is a Kafka consumer group; `group=None` is a broadcast reader of every
  partition from the end. Offsets are committed only over a contiguous run of settled
  records per partition (`_offsets`), so a failed record never lets a later one commit
  past it. Records of different keys run concurrently inside one consumer, up to
  `max_concurrency`; the same key never does (`_lanes`).
- Failures follow `handle_delivery`: retried in the consumer after the back-off while
  other keys flow on, then sent to `<topic>.<group>.dlq` with the error headers;
  undecodable records are dead-lettered at once with the reason.
- Records carry the wire format of docs/wire-format.md through the shared `WireEncoder`
  (CloudEvents Kafka binding: `ce_` headers and a `content-type` header in binary mode, the
  metadata headers otherwise); a foreign plain record's id is `{kafka topic}/{partition}/{offset}`.
- `publish` waits for the broker's acks (`acks`, 'all' by default); `publish_batch`
  hands every record to the producer before awaiting any ack.
- A probe every `connection_check_interval` notices a lost broker and, once it answers
  again, re-creates the known topics and runs the reconnect callbacks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from bento.adapters.kafka._backlog import KafkaBacklog
from bento.adapters.kafka._batches import Record, Sent, send_batched
from bento.adapters.kafka._connection import Topics, client_options, topic_problem
from bento.adapters.kafka._dead_letters import read_dead_letters, removal_topic
from bento.adapters.kafka._subscription import KafkaSubscription
from bento.adapters.kafka.settings import KafkaSettings
from bento.adapters.shared.dead_letters import replay_copy, requeue_each
from bento.adapters.shared.delivery import typed_handler
from bento.adapters.shared.lifecycle import StartsAndCloses, opened
from bento.adapters.shared.limits import all_within_limit, within_limit
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.reconnect import ObservedBus, ReconnectCallbacks
from bento.adapters.shared.supervision import Supervisor
from bento.adapters.shared.wire_headers import KAFKA, WireEncoder, byte_headers
from bento.application.credentials import mask_credentials
from bento.application.errors import BrokerUnavailableError, BusClosedError, PublishError, SubscribeError
from bento.application.ports.backlog import Backlog
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.message_bus import DeadLetter, DeadLetterSelection, MessageHandler
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent

logger = logging.getLogger(__name__)

_WHAT = "KafkaMessageBus"


class KafkaMessageBus(ObservedBus, StartsAndCloses):
    """MessageBus on Kafka; see the module docstring for the layout and guarantees."""

    def __init__(self, settings: KafkaSettings, *, codec: JsonCodec | None = None) -> None:
        self.settings = settings
        self.codec = codec or JsonCodec()
        self._wire = WireEncoder(self.codec, settings, KAFKA, "kafka")
        self._counters = BusCounters()
        self.supervisor = Supervisor("Kafka bus", self._counters)
        self._reconnect_callbacks = ReconnectCallbacks(self._counters)
        self._topics = Topics(settings)
        self._backlog = KafkaBacklog(settings, self._topics)
        self._producer: AIOKafkaProducer | None = None
        self._subscriptions: set[KafkaSubscription] = set()
        self._monitor: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            ordered_per_key=True,
            persistent=True,
            redelivery=True,
            dead_letter=True,
            pattern_subscriptions=False,
            consumer_groups=True,
            broadcast=True,
            mechanism=(
                "Kafka topic per wire name, record key = message key (one partition per key); "
                f"consumer group per subscription group; up to {self.settings.max_concurrency} keys at once "
                "per consumer, one message per key at a time; offsets committed over contiguous successes"
            ),
        )

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect the producer and the admin client. Idempotent; refused after close()."""
        if self._closed:
            raise BusClosedError("this KafkaMessageBus was closed; build a new one")
        if self._producer is not None:
            return
        await self._topics.start()
        producer = AIOKafkaProducer(**self._producer_options())
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            await self._topics.close()
            self._counters.connection_errors += 1
            raise BrokerUnavailableError("Kafka", self.settings.address, _reason(exc)) from exc
        self._producer = producer
        self._monitor = asyncio.create_task(self._watch_connection(), name="bento-kafka-connection")

    def _producer_options(self) -> dict[str, Any]:
        settings = self.settings
        acks: str | int = "all" if settings.acks == "all" or settings.idempotent else int(settings.acks)
        return {
            **client_options(settings),
            "acks": acks,
            "compression_type": None if settings.compression == "none" else settings.compression,
            "linger_ms": int(settings.linger * 1000),
            "max_batch_size": settings.batch_size,
            "max_request_size": settings.max_request_size,
            "request_timeout_ms": int(settings.publish_timeout * 1000),
            "retry_backoff_ms": int(settings.retry_backoff * 1000),
            "enable_idempotence": settings.idempotent,
        }

    async def close(self) -> None:
        """Within `drain_timeout` per subscriber: stop fetching, let running handlers
        finish, commit, leave the groups; then flush the producer and disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        await asyncio.gather(*(s.cancel() for s in list(self._subscriptions)))
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()  # flushes what is still queued
            except KafkaError as exc:
                logger.warning("stopping the Kafka producer failed: %s", _reason(exc))
        await self._topics.close()

    async def backlog(self, topic: str, *, group: str) -> Backlog:
        """BacklogProbe: end minus committed offsets of the group, and the dead-letter topic's size."""
        opened(_WHAT, f"probe the backlog of {topic!r}", self._producer, closed=self._closed)
        return await self._backlog.probe(topic, group)

    # -- publishing ---------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        message: DomainEvent,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body, record_headers = self._wire.encode_pairs(message, headers, topic=topic)
        within_limit(body, self.settings.max_message_bytes, topic, self._counters)
        await self._send_record(topic, body, key or message.metadata.aggregate_id or None, record_headers)

    async def publish_raw(
        self, topic: str, body: bytes, *, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        await self._send(topic, body, key, headers)

    async def publish_batch(self, topic: str, messages: Sequence[DomainEvent]) -> None:
        """Every record goes to the producer before any ack is awaited, in per-partition
        batches (`_batches`); returns once all are acknowledged, else raises PublishError
        naming how many were not (those that were stay published)."""
        producer = opened(_WHAT, f"publish to {topic!r}", self._producer, closed=self._closed)
        name = await self._publish_topic(topic)
        # Encoded and checked whole first: an oversized message fails the batch with nothing sent.
        encode = self._wire.encode_pairs
        encoded = [encode(message, topic=topic) for message in messages]
        all_within_limit((body for body, _ in encoded), self.settings.max_message_bytes, topic, self._counters)
        records: list[Record] = []
        for message, (body, record_headers) in zip(messages, encoded, strict=True):
            key = message.metadata.aggregate_id
            records.append((key.encode() if key else None, body, record_headers))
        sent: list[Sent] = []
        try:
            if self.settings.idempotent:
                # aiokafka's batch API is not used with idempotence: one send per record.
                for key_bytes, body, record_headers in records:
                    sent.append((await producer.send(name, body, key=key_bytes, headers=record_headers), 1))
            else:
                await send_batched(producer, name, records, sent)
        except KafkaError as exc:
            unsent = len(messages) - sum(count for _, count in sent)
            self._counters.publish_errors += unsent
            await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
            raise PublishError(topic, f"{unsent} of {len(messages)} not sent: {_reason(exc)}") from exc
        results = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        failures = [(r, count) for r, (_, count) in zip(results, sent, strict=True) if isinstance(r, BaseException)]
        failed = sum(count for _, count in failures)
        self._counters.messages_published += len(messages) - failed
        if failures:
            self._counters.publish_errors += failed
            raise PublishError(
                topic,
                f"{failed} of {len(messages)} messages were not acknowledged (first: {_reason(failures[0][0])}); "
                "the others are published",
            )

    async def _send(self, topic: str, body: bytes, key: str | None, headers: Mapping[str, str] | None) -> None:
        await self._send_record(topic, body, key, byte_headers(headers) if headers else None)

    async def _send_record(
        self, topic: str, body: bytes, key: str | None, record_headers: list[tuple[str, bytes]] | None
    ) -> None:
        producer = opened(_WHAT, f"publish to {topic!r}", self._producer, closed=self._closed)
        name = await self._publish_topic(topic)
        record_key = key.encode() if key else None
        retries = self.settings.publish_retries
        for attempt in range(retries + 1):
            try:
                await producer.send_and_wait(name, body, key=record_key, headers=record_headers)
            except KafkaError as exc:
                if exc.retriable and attempt < retries:
                    await asyncio.sleep(self.settings.retry_backoff * 2**attempt)
                    continue
                self._counters.publish_errors += 1
                raise PublishError(topic, _reason(exc)) from exc
            self._counters.messages_published += 1
            return

    async def _publish_topic(self, topic: str) -> str:
        name = self._topics.name(topic)
        if not self._topics.is_known(name):
            problem = topic_problem(name)
            if problem is not None:
                raise PublishError(topic, problem)
            try:
                await self._topics.ensure(name)
            except (KafkaError, LookupError, OSError) as exc:
                self._counters.publish_errors += 1
                raise PublishError(topic, _reason(exc)) from exc
        return name

    async def send_dead_letter(
        self, name: str, key: bytes | None, body: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        """Used by subscribers: one acknowledged send to a dead-letter topic."""
        producer = opened(_WHAT, f"dead-letter to {name!r}", self._producer, closed=False)
        await self._topics.ensure(name, partitions=self.settings.dead_letter_partitions)
        await producer.send_and_wait(name, body, key=key, headers=headers)

    # -- subscribing --------------------------------------------------------------------
    async def subscribe(
        self,
        topic: str,
        handler: MessageHandler,
        *,
        group: str | None = None,
        ordered: bool = False,
        message_type: type[DomainEvent] | None = None,
    ) -> KafkaSubscription:
        """Every subscriber keeps per-key order (`ordered` asks for nothing more here).
        `message_type` decodes a foreign producer's plain JSON records into that class."""
        handler = typed_handler(handler, message_type)
        opened(_WHAT, f"subscribe to {topic!r}", self._producer, closed=self._closed)
        name = self._topics.name(topic)
        problem = topic_problem(name) or ("*" in topic and "pattern subscriptions are not supported") or None
        if problem:
            raise SubscribeError(topic, str(problem))
        settings = self.settings
        try:
            await self._topics.ensure(name)
        except (KafkaError, LookupError, OSError) as exc:
            raise SubscribeError(topic, _reason(exc)) from exc
        consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            session_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
            max_poll_interval_ms=int(settings.max_processing_time * 1000),
            fetch_min_bytes=settings.fetch_min_bytes,
            fetch_max_bytes=settings.fetch_max_bytes,
            fetch_max_wait_ms=int(settings.fetch_max_wait * 1000),
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            max_poll_records=settings.max_poll_records,
        )
        subscription = KafkaSubscription(
            consumer=consumer,
            settings=settings,
            codec=self.codec,
            counters=self._counters,
            handler=handler,
            topic=topic,
            kafka_topic=name,
            group=group,
            dead_letter_topic=self._topics.dead_letter_name(topic, group),
            send_dead_letter=self.send_dead_letter,
            on_cancel=self._subscriptions.discard,
            supervisor=self.supervisor,
        )
        try:
            if group is not None:
                consumer.subscribe([name], listener=subscription.listener())
            await consumer.start()
            partitions = None
            if group is None:
                numbers = await self._partitions_of(name)
                partitions = [TopicPartition(name, n) for n in numbers]
            await subscription.start(partitions)
        except (KafkaError, OSError) as exc:
            await subscription.cancel()
            raise SubscribeError(topic, _reason(exc)) from exc
        self._subscriptions.add(subscription)
        return subscription

    async def _partitions_of(self, name: str) -> list[int]:
        producer = opened(_WHAT, f"subscribe to {name!r}", self._producer, closed=self._closed)
        return sorted(await producer.partitions_for(name))

    async def dead_letters(self, topic: str, *, group: str | None, limit: int = 100) -> list[DeadLetter]:
        opened(_WHAT, f"read dead letters of {topic!r}", self._producer, closed=self._closed)
        name = self._topics.dead_letter_name(topic, group)
        try:
            return await read_dead_letters(self.settings, name, topic, group, limit)
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailableError("Kafka", self.settings.address, f"reading {name}: {_reason(exc)}") from exc

    async def requeue_dead_letters(
        self,
        topic: str,
        *,
        group: str | None,
        selection: DeadLetterSelection | None = None,
        rate: float | None = None,
    ) -> list[DeadLetter]:
        """Each copy is sent with the letter's key (so it lands on the key's partition, in order)
        and acknowledged, then the letter's id is appended to the removal topic (`_dead_letters`)."""
        producer = opened(_WHAT, f"requeue dead letters of {topic!r}", self._producer, closed=self._closed)
        name = self._topics.dead_letter_name(topic, group)

        async def send(dead: DeadLetter) -> None:
            copy = replay_copy(self._wire, dead, topic=topic)
            await self._send(topic, copy.body, copy.key, copy.headers)

        async def remove(dead: DeadLetter) -> None:
            await self._mark_removed(producer, name, dead)

        try:
            letters = await read_dead_letters(self.settings, name, topic, group, None)
            return await requeue_each(letters, selection, rate, send, remove)
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailableError("Kafka", self.settings.address, f"requeueing {name}: {_reason(exc)}") from exc

    async def purge_dead_letters(
        self, topic: str, *, group: str | None, selection: DeadLetterSelection | None = None
    ) -> int:
        producer = opened(_WHAT, f"purge dead letters of {topic!r}", self._producer, closed=self._closed)
        name = self._topics.dead_letter_name(topic, group)
        try:
            letters = await read_dead_letters(self.settings, name, topic, group, None)
            chosen = [d for d in letters if selection is None or selection.matches(d)]
            for dead in chosen:
                await self._mark_removed(producer, name, dead)
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailableError("Kafka", self.settings.address, f"purging {name}: {_reason(exc)}") from exc
        return len(chosen)

    async def _mark_removed(self, producer: AIOKafkaProducer, name: str, dead: DeadLetter) -> None:
        removed = removal_topic(name)
        await self._topics.ensure(removed, partitions=1)
        await producer.send_and_wait(removed, dead.letter_id.encode(), key=dead.letter_id.encode())

    # -- health -------------------------------------------------------------------------
    async def delete_private_topic(self, topic: str) -> None:
        """PrivateTopicDisposal: delete a topic only this process used (a remote CommandBus's
        reply topic) and its broadcast dead-letter topic; Kafka keeps topics until deleted."""
        names = [self._topics.name(topic), self._topics.dead_letter_name(topic, None)]
        try:
            deleted = await self._topics.delete(names)
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailableError("Kafka", self.settings.address, _reason(exc)) from exc
        if deleted:
            logger.info("deleted Kafka topics %s", ", ".join(deleted))

    async def health_check(self) -> HealthStatus:
        """A metadata round trip to the brokers; unhealthy too while a subscriber cannot fetch."""
        started = time.perf_counter()
        healthy, detail = await self._probe()
        if healthy:
            failing = next((s.failure for s in self._subscriptions if s.failure), None) or self.supervisor.problem()
            if failing:
                healthy, detail = False, failing
        self._counters.record_health_check(healthy)
        latency = (time.perf_counter() - started) * 1000
        return HealthStatus(healthy, "kafka", latency, detail or f"brokers {self.settings.address}")

    async def _probe(self) -> tuple[bool, str]:
        producer = self._producer
        if producer is None or self._closed:
            return False, "the bus is closed" if self._closed else "the bus is not started"
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                await producer.client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            return False, f"no metadata from {self.settings.address}: {_reason(exc)}"
        if not producer.client.cluster.brokers():
            return False, f"no broker answered at {self.settings.address}"
        return True, ""

    async def _watch_connection(self) -> None:
        """Notice the broker going away and coming back; then restore topics, run callbacks."""
        lost = False
        while True:
            await asyncio.sleep(self.settings.connection_check_interval)
            healthy, detail = await self._probe()
            if not healthy and not lost:
                lost = True
                self._counters.connection_errors += 1
                logger.warning("Kafka broker unreachable: %s", detail)
                await self._reconnect_callbacks.disconnected()
            elif healthy and lost:
                lost = False
                await self._restore()

    async def _restore(self) -> None:
        self._topics.forget()
        for subscription in list(self._subscriptions):
            try:
                await self._topics.ensure(self._topics.name(subscription.topic))
            except (KafkaError, LookupError, OSError) as exc:
                logger.warning("re-declaring %r after a reconnect failed: %s", subscription.topic, _reason(exc))
        self._counters.reconnects += 1
        logger.info("Kafka broker reachable again at %s", self.settings.address)
        await self._reconnect_callbacks.run()


def _reason(exc: BaseException) -> str:
    return mask_credentials(f"{type(exc).__name__}: {exc}")[:500]
