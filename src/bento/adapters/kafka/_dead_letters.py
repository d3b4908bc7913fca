"""Reading a dead-letter topic back (`MessageBus.dead_letters`), oldest first, without a group.

A consumer with no group is assigned every partition of `<topic>.<group>.dlq`, reads
from the beginning up to the end offsets it saw when it started, and commits nothing:
the letters stay where they are for the next reader (or the `bento dlq` command).

A Kafka topic cannot delete one record, so requeue and purge append the letter's id
(`partition:offset`) to `<topic>.<group>.dlq.removed`, and reading leaves those out. A
requeued letter's id is appended only after its copy was acknowledged: an interruption in
between leaves it listed, and the next requeue sends it again (the subscriber's inbox
absorbs that copy). The letters themselves go with the topic's retention."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from bento.adapters.kafka._connection import client_options
from bento.adapters.kafka.settings import KafkaSettings
from bento.adapters.shared.dead_letters import letter
from bento.application.ports.message_bus import DeadLetter


async def read_dead_letters(
    settings: KafkaSettings, name: str, topic: str, group: str | None, limit: int | None
) -> list[DeadLetter]:
    """The letters of dead-letter topic `name` not named in its removal topic, oldest first
    (every one when `limit` is None)."""
    removed = {record.value.decode("ascii", "replace") for record in await _records(settings, removal_topic(name))}
    letters = []
    for record in await _records(settings, name):
        letter_id = f"{record.partition}:{record.offset}"
        if letter_id not in removed:
            letters.append(letter(topic, group, record.value, _text(record.headers), letter_id))
            if limit is not None and len(letters) >= limit:
                break
    return letters


def removal_topic(name: str) -> str:
    """Where the ids of requeued and purged letters of dead-letter topic `name` are appended."""
    return f"{name}.removed"


@dataclass(frozen=True, slots=True)
class _Record:
    timestamp: int
    partition: int
    offset: int
    value: bytes
    headers: Sequence[tuple[str, bytes | None]]


async def _records(settings: KafkaSettings, name: str) -> list[_Record]:
    """Every record of topic `name` (none when it does not exist), by time, partition, offset."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer.topics()  # fills the metadata cache
        numbers = consumer.partitions_for_topic(name) or set()
        partitions = [TopicPartition(name, n) for n in sorted(numbers)]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[_Record] = []
        deadline = time.monotonic() + settings.publish_timeout
        # The end offsets are a lower bound, not a stop sign: tansu reports the end of a
        # multi-record batch too low. Read until a poll brings nothing and every partition
        # is at least at its end offset.
        while time.monotonic() < deadline:
            batches = await consumer.getmany(*partitions, timeout_ms=200)
            for partition, records in batches.items():
                found.extend(
                    _Record(r.timestamp, partition.partition, r.offset, r.value or b"", list(r.headers or ()))
                    for r in records
                )
            if not batches and all([await consumer.position(p) >= ends[p] for p in partitions]):
                break
        found.sort(key=lambda r: (r.timestamp, r.partition, r.offset))
        return found
    finally:
        await consumer.stop()


def _text(raw_headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str]:
    return {key: value.decode("utf-8", "replace") if value is not None else "" for key, value in raw_headers}
