"""Reading a dead-letter topic back (`MessageBus.dead_letters`), oldest first, without a group.

A consumer with no group is assigned every partition of `<topic>.<group>.dlq`, reads
from the beginning up to the end offsets it saw when it started, and commits nothing:
the letters stay where they are for the next reader (or the `bento dlq` command)."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from bento.adapters.kafka._connection import client_options
from bento.adapters.kafka.settings import KafkaSettings
from bento.adapters.shared.delivery import (
    ATTEMPTS_HEADER,
    ERROR_MESSAGE_HEADER,
    ERROR_TYPE_HEADER,
    MESSAGE_ID_HEADER,
)
from bento.application.ports.message_bus import DeadLetter


async def read_dead_letters(
    settings: KafkaSettings, name: str, topic: str, group: str | None, limit: int
) -> list[DeadLetter]:
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
        found: list[tuple[int, int, int, DeadLetter]] = []
        counts = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + settings.publish_timeout
        # The end offsets are a lower bound, not a stop sign: tansu reports the end of a
        # multi-record batch too low. Read until a poll brings nothing and every partition
        # is at least at its end offset (or `limit` letters of it were read).
        while time.monotonic() < deadline:
            wanted = [p for p in partitions if counts[p] < limit]
            if not wanted:
                break
            batches = await consumer.getmany(*wanted, timeout_ms=200)
            for partition, records in batches.items():
                for record in records[: limit - counts[partition]]:
                    counts[partition] += 1
                    letter = _letter(topic, group, record.value or b"", record.headers)
                    found.append((record.timestamp, partition.partition, record.offset, letter))
            if not batches and all([await consumer.position(p) >= ends[p] for p in wanted]):
                break
        found.sort(key=lambda item: item[:3])
        return [letter for *_, letter in found[:limit]]
    finally:
        await consumer.stop()


def _letter(topic: str, group: str | None, body: bytes, raw_headers: object) -> DeadLetter:
    headers: dict[str, str] = {}
    for key, value in raw_headers:  # type: ignore[attr-defined]
        headers[key] = value.decode("utf-8", "replace") if value is not None else ""
    try:
        attempts = int(headers.get(ATTEMPTS_HEADER, "0"))
    except ValueError:
        attempts = 0
    return DeadLetter(
        topic=topic,
        group=group,
        body=body,
        headers=headers,
        error_type=headers.get(ERROR_TYPE_HEADER, ""),
        error_message=headers.get(ERROR_MESSAGE_HEADER, ""),
        attempts=attempts,
        message_id=headers.get(MESSAGE_ID_HEADER),
    )
