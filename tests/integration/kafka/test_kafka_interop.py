"""Interop on Kafka (docs/wire-format.md): records produced by aiokafka alone (CloudEvents in both
modes per the Kafka binding, plain JSON) reach a Bento subscriber; Bento's CloudEvents are read by
a raw aiokafka consumer; a FastStream-published record is consumed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker
from kafka_support import kafka_settings
from wire_support import TRACEPARENT, Recorder, assert_foreign_cloudevent, binary_headers, structured_body

from bento.adapters.kafka import KafkaMessageBus, KafkaSettings
from bento.testing.events import ContractEvent, make_event

PREFIX = "interop."


@pytest.fixture
def topic() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(kafka_url: str) -> KafkaSettings:
    return kafka_settings(kafka_url, topic_prefix=PREFIX)


@pytest.fixture
async def producer(kafka_url: str) -> AsyncIterator[AIOKafkaProducer]:
    raw = AIOKafkaProducer(bootstrap_servers=_servers(kafka_url))
    await raw.start()
    yield raw
    await raw.stop()


def _servers(kafka_url: str) -> str:
    """host:port list of the test broker, straight from its URL (no Bento code)."""
    return kafka_url.split("://", 1)[-1].rstrip("/")


def _encoded(headers: dict[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]


async def test_foreign_cloudevents_in_both_modes_reach_a_bento_subscriber(
    settings: KafkaSettings, producer: AIOKafkaProducer, topic: str
) -> None:
    async with KafkaMessageBus(settings) as bus:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop")
        name = f"{PREFIX}{topic}"  # docs/wire-format.md: {topic_prefix}{topic}
        binary = {**binary_headers("kafka-b-1", "ce_"), "content-type": "application/json"}
        await producer.send_and_wait(name, b'{"seq": 1}', key=b"k", headers=_encoded(binary))
        structured = {"content-type": "application/cloudevents+json", "traceparent": TRACEPARENT}
        await producer.send_and_wait(name, structured_body("kafka-s-1", 2), key=b"k", headers=_encoded(structured))
        got = {m.message_id: m for m in await received.wait_for(2)}
        assert_foreign_cloudevent(got["kafka-b-1"], "kafka-b-1", 1)
        assert_foreign_cloudevent(got["kafka-s-1"], "kafka-s-1", 2)


async def test_plain_json_takes_the_record_id_and_time_and_keeps_them_on_retry(
    settings: KafkaSettings, producer: AIOKafkaProducer, topic: str
) -> None:
    async with KafkaMessageBus(settings) as bus:
        received = Recorder(refuse=1)
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        stamp_ms = int(datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp() * 1000)
        sent = await producer.send_and_wait(
            f"{PREFIX}{topic}",
            b'{"seq": 6}',
            key=b"plain",
            headers=_encoded({"traceparent": TRACEPARENT}),
            timestamp_ms=stamp_ms,
        )
        first, second = (await received.wait_for(2))[:2]
        expected = f"{PREFIX}{topic}/{sent.partition}/{sent.offset}"
        for got in (first, second):
            assert isinstance(got, ContractEvent) and got.seq == 6
            assert got.message_id == expected
            assert got.timestamp == datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
            assert got.metadata.trace_context == {"traceparent": TRACEPARENT}


async def test_a_dead_lettered_plain_record_keeps_its_id_and_time(
    settings: KafkaSettings, producer: AIOKafkaProducer, topic: str
) -> None:
    async with KafkaMessageBus(settings) as bus:
        received = Recorder(refuse=99)
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        sent = await producer.send_and_wait(f"{PREFIX}{topic}", b'{"seq": 8}', key=b"dead")
        async with asyncio.timeout(15):
            while not (letters := await bus.dead_letters(topic, group="interop")):  # noqa: ASYNC110 - polling the broker
                await asyncio.sleep(0.1)
        letter = letters[0]
        delivered = received.received[0]
        assert letter.message_id == f"{PREFIX}{topic}/{sent.partition}/{sent.offset}" == delivered.message_id
        assert letter.headers["x-bento-timestamp"] == delivered.timestamp.isoformat()
        assert datetime.fromisoformat(letter.headers["x-bento-timestamp"]) == datetime.fromtimestamp(
            sent.timestamp / 1000, UTC
        )


@pytest.mark.parametrize("wire_format", ["cloudevents-binary", "cloudevents-structured"])
async def test_a_raw_consumer_reads_bentos_cloudevents(kafka_url: str, topic: str, wire_format: str) -> None:
    settings = kafka_settings(kafka_url, topic_prefix=PREFIX, wire_format=wire_format, cloudevents_source="orders")
    event = make_event(9, key="k").with_metadata(causation_id="c-9", trace_context={"traceparent": TRACEPARENT})
    async with KafkaMessageBus(settings) as bus:
        await bus.publish(topic, event)
    consumer = AIOKafkaConsumer(bootstrap_servers=_servers(kafka_url), enable_auto_commit=False)
    await consumer.start()
    try:
        name = f"{PREFIX}{topic}"
        await consumer.topics()
        partitions = [TopicPartition(name, n) for n in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        async with asyncio.timeout(15):
            while not records:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    record = records[0]
    headers = {name: (value or b"").decode() for name, value in record.headers}
    assert record.key == b"k"
    if wire_format == "cloudevents-binary":
        assert (headers["ce_id"], headers["ce_type"], headers["ce_source"]) == (
            event.message_id,
            ContractEvent.__wire_name__,
            "orders",
        )
        assert (headers["ce_specversion"], headers["ce_causationid"]) == ("1.0", "c-9")
        assert headers["content-type"] == "application/json"
        assert json.loads(record.value) == {"seq": 9, "key": "k", "blob": ""}
    else:
        assert headers["content-type"] == "application/cloudevents+json"
        document = json.loads(record.value)
        assert (document["id"], document["causationid"]) == (event.message_id, "c-9")
        assert document["data"] == {"seq": 9, "key": "k", "blob": ""}
    assert headers["traceparent"] == TRACEPARENT


async def test_a_faststream_record_reaches_a_bento_subscriber(
    settings: KafkaSettings, kafka_url: str, topic: str
) -> None:
    async with KafkaMessageBus(settings) as bus:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        broker = KafkaBroker(_servers(kafka_url))
        await broker.start()
        try:
            await broker.publish({"seq": 13, "key": "fs"}, f"{PREFIX}{topic}", correlation_id="fs-c")
        finally:
            await broker.stop()
        got = (await received.wait_for(1))[0]
        assert isinstance(got, ContractEvent) and (got.seq, got.key) == (13, "fs")
        assert got.metadata.correlation_id == "fs-c"


async def test_publish_batch_writes_what_publish_writes_where_publish_writes_it(kafka_url: str, topic: str) -> None:
    """publish_batch builds the producer's batches itself: each key must still land on the
    partition `publish` (the producer's partitioner) puts it on, in order, with the same key
    and headers, and a keyless message must still be published."""
    settings = kafka_settings(kafka_url, topic_prefix=PREFIX, partitions=4, batch_size=2048)
    keys = [f"k-{n}" for n in range(12)]
    singles = [make_event(n, key=keys[n % 12]) for n in range(24)]
    batch = [make_event(100 + n, key=keys[n % 12], blob="b" * 300) for n in range(240)]
    keyless = make_event(999)
    async with KafkaMessageBus(settings) as bus:
        for event in singles:
            await bus.publish(topic, event)
        await bus.publish_batch(topic, [*batch, keyless])  # 300-byte bodies: many batches per partition
        published = bus.metrics.messages_published
    consumer = AIOKafkaConsumer(bootstrap_servers=_servers(kafka_url), enable_auto_commit=False)
    await consumer.start()
    try:
        name = f"{PREFIX}{topic}"
        await consumer.topics()
        partitions = [TopicPartition(name, n) for n in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records = []
        async with asyncio.timeout(20):
            while len(records) < len(singles) + len(batch) + 1:
                for got in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(got)
    finally:
        await consumer.stop()
    assert published == len(singles) + len(batch) + 1
    where: dict[bytes | None, set[int]] = {}
    order: dict[bytes | None, list[int]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        where.setdefault(record.key, set()).add(record.partition)
        order.setdefault(record.key, []).append(json.loads(record.value)["message"]["seq"])
    assert {key: len(found) for key, found in where.items()} == {key: 1 for key in where}  # one partition per key
    assert len({next(iter(found)) for found in where.values()}) > 1  # and the keys are spread
    for key in keys:
        expected = [e.seq for e in singles if e.key == key] + [e.seq for e in batch if e.key == key]
        assert order[key.encode()] == expected
    assert order[None] == [999]
    by_seq = {json.loads(r.value)["message"]["seq"]: r for r in records}
    one, many = by_seq[0], by_seq[100]
    names = [name for name, _ in one.headers]
    assert (
        names
        == [name for name, _ in many.headers]
        == [
            "x-bento-message-id",
            "x-bento-type",
            "x-bento-version",
            "x-bento-timestamp",
        ]
    )
    assert dict(many.headers)["x-bento-message-id"] == batch[0].message_id.encode()
