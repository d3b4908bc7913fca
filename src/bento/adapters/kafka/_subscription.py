"""One subscriber: an aiokafka consumer, its lanes, its commits and its dead letters.

- A group subscriber is a member of the Kafka consumer group named `group`; a broadcast
  subscriber (`group=None`) has no group: it reads every partition from the end and
  commits nothing.
- Received records go to `Lanes` (per-key parallelism); each settled record (handled, or
  dead-lettered) is noted in its partition's `PartitionOffsets`, and a commit every
  `commit_interval` moves each partition's offset to the end of its contiguous settled run.
- Each record reaches `handle_delivery` with its headers as text and its transport facts
  (id `{kafka topic}/{partition}/{offset}`, the record's timestamp), so CloudEvents in binary
  mode and foreign plain JSON decode as docs/wire-format.md says.
- Failures follow `handle_delivery`: RETRY holds the key's lane for the back-off (other
  keys flow on); DEAD sends the record to `<topic>.<group>.dlq` with the error headers,
  and only then counts as settled (if that send fails it is tried again later). The letter
  keeps the record's headers and adds the decoded message's id and time, so a plain
  payload read back from there is still the same message.
- On a rebalance the revoked partitions' waiting messages are dropped (uncommitted, so the
  next owner gets them), running handlers are awaited, and the offsets committed before
  the partitions go; `cancel` does the same for every partition, then leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from bento.adapters.kafka._lanes import Lane, Lanes, Record
from bento.adapters.kafka._offsets import PartitionOffsets
from bento.adapters.kafka.settings import KafkaSettings
from bento.adapters.shared.delivery import FIRST_FAILED_AT_HEADER, KEY_HEADER, Action, Verdict, handle_delivery
from bento.adapters.shared.metrics import BusCounters
from bento.adapters.shared.supervision import Supervisor
from bento.application.ports.message_bus import MessageHandler
from bento.application.serialization import JsonCodec
from bento.application.wire import TIME_HEADER, TransportFacts
from bento.domain.metadata import utc_now

logger = logging.getLogger(__name__)

#: Extra dead-letter headers: the group that gave up, and where the record came from.
GROUP_HEADER = "x-bento-group"
PARTITION_HEADER = "x-bento-original-partition"
OFFSET_HEADER = "x-bento-original-offset"

#: Sends a dead letter: (dead-letter topic, key, body, headers); raises on failure.
DeadLetterSender = Callable[[str, bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[None]]


class KafkaSubscription:
    """A live subscriber; see the module docstring. Built and started by KafkaMessageBus."""

    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        settings: KafkaSettings,
        codec: JsonCodec,
        counters: BusCounters,
        handler: MessageHandler,
        topic: str,
        kafka_topic: str,
        group: str | None,
        dead_letter_topic: str,
        send_dead_letter: DeadLetterSender,
        on_cancel: Callable[[KafkaSubscription], None],
        supervisor: Supervisor,
    ) -> None:
        self._consumer, self._settings, self._codec, self._counters = consumer, settings, codec, counters
        self._handler, self._topic, self._kafka_topic, self._group = handler, topic, kafka_topic, group
        self._dead_letter_topic, self._send_dead_letter = dead_letter_topic, send_dead_letter
        self._on_cancel = on_cancel
        self._supervisor = supervisor
        self._policy = settings.retry_policy()
        self._handler_timeout, self._max_bytes = settings.handler_timeout, settings.max_message_bytes
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._lanes = Lanes(settings.max_concurrency, self._run, name=f"bento-kafka:{topic}")
        self._commit_lock = asyncio.Lock()
        self._commit_wanted = asyncio.Event()
        self._joined = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._paused = False
        self._stopping = False
        self.failure: str | None = None

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str | None:
        return self._group

    def listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    async def start(self, partitions: list[TopicPartition] | None) -> None:
        """Start fetching. A broadcast subscriber is given its `partitions`: it starts at
        their end, and returns only once those positions are fixed, so nothing published
        after `subscribe` returned is missed. A group subscriber waits for its first
        assignment only when `auto_offset_reset` is 'latest' (with 'earliest', a new group
        reads everything anyway)."""
        consumer = self._consumer
        if partitions is not None:
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for partition in partitions:
                await consumer.position(partition)
                self._partitions[partition] = PartitionOffsets()
        # Under the bus's Supervisor: an unexpected error is logged, counted, shown by
        # health_check, and the loop starts again; it never dies silently.
        spawn, stopping = self._supervisor.spawn, self._is_stopping
        self._tasks.append(spawn(f"bento-kafka-fetch:{self._topic}", self._fetch, stopping=stopping))
        if self._group is not None:
            self._tasks.append(spawn(f"bento-kafka-commit:{self._topic}", self._commit_loop, stopping=stopping))
            if self._settings.auto_offset_reset == "latest":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._joined.wait(), self._settings.session_timeout + 5.0)

    def _is_stopping(self) -> bool:
        return self._stopping

    async def cancel(self) -> None:
        """Stop fetching, let running handlers finish within `drain_timeout`, commit what
        they settled, and leave the group. Idempotent."""
        if self._stopping:
            return
        self._stopping = True
        self._on_cancel(self)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._lanes.drop()
        if not await self._lanes.wait_idle(None, self._settings.drain_timeout):
            logger.warning("handlers on %r outlived the drain timeout and were cancelled", self._topic)
        await self._lanes.stop()
        await self._commit()
        try:
            await self._consumer.stop()
        except KafkaError as exc:
            logger.info("leaving the group of %r failed (%s); the broker drops the member later", self._topic, exc)

    # -- fetching -----------------------------------------------------------------------
    async def _fetch(self) -> None:
        """The poll loop; it outlives any failure (logged, counted, shown by `failure`)."""
        consumer, settings, failures = self._consumer, self._settings, 0
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=settings.max_poll_records)
            except KafkaError as exc:
                failures += 1
                self._counters.consume_errors += 1
                self.failure = f"fetching from {self._topic!r} failed ({type(exc).__name__}: {exc})"[:300]
                logger.warning("%s; retrying", self.failure)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            failures, self.failure = 0, None
            for partition, records in batches.items():
                offsets = self._partitions.get(partition)
                if offsets is not None:  # else revoked while the records were on their way
                    self._lanes.submit(partition, offsets, records)
            self._backpressure()

    def _backpressure(self) -> None:
        """Pause fetching while `max_uncommitted` records wait; polling goes on, so the
        member is not dropped from the group for not polling."""
        waiting = sum(len(offsets) for offsets in self._partitions.values())
        limit = self._settings.max_uncommitted
        assignment = list(self._consumer.assignment())
        if not self._paused and waiting >= limit:
            self._consumer.pause(*assignment)
            self._paused = True
        elif self._paused and waiting < limit // 2:
            self._consumer.resume(*assignment)
            self._paused = False

    # -- handling -----------------------------------------------------------------------
    async def _run(self, lane: Lane, record: Record) -> float | None:
        """Handle the head record of `lane`; None once it is settled, else seconds until the next try."""
        if lane.dead is None:
            headers = record.headers
            try:
                verdict = await handle_delivery(
                    self._codec,
                    self._handler,
                    record.value if record.value is not None else b"",
                    attempt=lane.attempt,
                    policy=self._policy,
                    timeout=self._handler_timeout,
                    topic=self._topic,
                    max_bytes=self._max_bytes,
                    # Values stay bytes: the codec reads every header value as text itself
                    # (wire.text), so only the values it needs are ever decoded.
                    headers=dict(headers) if headers else None,
                    transport=functools.partial(transport_facts, record),
                    system="kafka",
                    group=self._group,
                )
            except Exception as exc:  # handle_delivery does not raise; defence in depth for the lane
                logger.error("dead-lettering a record on %r that could not be processed", self._topic, exc_info=exc)
                verdict = Verdict(Action.DEAD, error_type=type(exc).__name__, error_message=str(exc)[:500] or repr(exc))
            if verdict.action is Action.ACK:
                self._counters.messages_consumed += 1
                lane.offsets.settled(record.offset)
                self._commit_wanted.set()
                return None
            self._counters.consume_errors += 1
            if verdict.action is Action.RETRY:
                self._counters.retries += 1
                lane.first_failed_at = lane.first_failed_at or utc_now().isoformat()
                lane.attempt += 1
                return verdict.delay
            lane.dead = verdict
        try:
            await self._send_dead_letter(
                self._dead_letter_topic,
                record.key,
                record.value if record.value is not None else b"",
                self._dead_letter_headers(lane, record),
            )
        except Exception as exc:  # the broker is away: keep the record, try again later
            self._counters.connection_errors += 1
            logger.error(
                "could not dead-letter offset %d of %s (%s: %s); trying again",
                record.offset,
                lane.partition,
                type(exc).__name__,
                str(exc)[:300],
            )
            return max(self._policy.delay_after(lane.attempt), 1.0)
        self._counters.dead_lettered += 1
        lane.offsets.settled(record.offset)
        self._commit_wanted.set()
        return None

    def _dead_letter_headers(self, lane: Lane, record: Record) -> list[tuple[str, bytes]]:
        dead = lane.dead
        assert dead is not None
        ours = dead.dead_letter_headers(lane.attempt, self._topic)
        headers = record.headers or ()
        # The decoded id is in `ours` already; a plain payload's time came from this record.
        message = dead.message
        if message is not None and not any(name == TIME_HEADER for name, _ in headers):
            ours[TIME_HEADER] = message.timestamp.isoformat()
        if lane.first_failed_at is not None:
            ours[FIRST_FAILED_AT_HEADER] = lane.first_failed_at
        ours[GROUP_HEADER] = self._group or ""
        ours[PARTITION_HEADER] = str(record.partition)
        ours[OFFSET_HEADER] = str(record.offset)
        if record.key is not None:
            ours[KEY_HEADER] = record.key.decode("utf-8", "replace")
        kept = [(k, v) for k, v in headers if k not in ours]
        return kept + [(k, v.encode()) for k, v in ours.items()]

    # -- committing ---------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        interval = self._settings.commit_interval
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            await self._commit()
            await asyncio.sleep(interval)

    async def _commit(self, partitions: set[TopicPartition] | None = None) -> None:
        if self._group is None:
            return
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            for partition, tracked in self._partitions.items():
                if partitions is None or partition in partitions:
                    offset = tracked.to_commit()
                    if offset is not None:
                        offsets[partition] = offset
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except KafkaError as exc:
                # Rebalancing or the broker is away: these records come back to someone.
                self._counters.connection_errors += 1
                logger.warning("committing offsets of %r failed (%s: %s)", self._topic, type(exc).__name__, exc)
                return
            for partition, offset in offsets.items():
                self._partitions[partition].committed(offset)

    # -- rebalancing --------------------------------------------------------------------
    async def revoked(self, partitions: set[TopicPartition]) -> None:
        if self._stopping:
            return
        started = time.monotonic()
        self._lanes.drop(partitions)
        if not await self._lanes.wait_idle(partitions, self._settings.drain_timeout):
            logger.warning("handlers on revoked partitions of %r still run; their records may come twice", self._topic)
        await self._commit(partitions)
        for partition in partitions:
            self._partitions.pop(partition, None)
        logger.debug(
            "gave up %d partition(s) of %r in %.3f s", len(partitions), self._topic, time.monotonic() - started
        )

    def assigned(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            self._partitions[partition] = PartitionOffsets()
        self._paused = False
        self._joined.set()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._subscription.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._subscription.assigned(set(assigned))


def transport_facts(record: Record) -> TransportFacts:
    """A record's id (`{kafka topic}/{partition}/{offset}`) and timestamp: the same on every
    attempt, for a plain payload from a foreign producer."""
    stamp = record.timestamp
    return TransportFacts(
        message_id=f"{record.topic}/{record.partition}/{record.offset}",
        timestamp=datetime.fromtimestamp(stamp / 1000, UTC) if stamp is not None and stamp >= 0 else None,
    )
