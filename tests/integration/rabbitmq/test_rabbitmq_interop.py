"""Interop on RabbitMQ (docs/wire-format.md): a raw aio-pika producer's CloudEvents and plain JSON
reach a Bento subscriber; Bento's CloudEvents are read by a raw consumer; a FastStream message."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import aio_pika
import pytest
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange
from rabbitmq_support import SettingsFactory
from wire_support import (
    TRACEPARENT,
    Recorder,
    assert_foreign_cloudevent,
    binary_headers,
    structured_body,
)

from bento.adapters.rabbitmq import RabbitMQMessageBus
from bento.testing.events import ContractEvent, make_event


@pytest.fixture
def topic() -> str:
    return f"interop.{uuid.uuid4().hex[:10]}"


async def _raw_publish(url: str, exchange: str, topic: str, message: aio_pika.Message) -> None:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        target = await channel.get_exchange(exchange)
        await target.publish(message, routing_key=topic)


async def test_foreign_cloudevents_in_both_modes_reach_a_bento_subscriber(
    rabbitmq_settings: SettingsFactory, rabbitmq_url: str, topic: str
) -> None:
    settings = rabbitmq_settings()
    async with RabbitMQMessageBus(settings) as bus:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop")
        binary = aio_pika.Message(
            b'{"seq": 1}', content_type="application/json", headers=binary_headers("amqp-b-1", "cloudEvents_")
        )
        structured = aio_pika.Message(
            structured_body("amqp-s-1", 2),
            content_type="application/cloudevents+json",
            headers={"traceparent": TRACEPARENT},
        )
        await _raw_publish(rabbitmq_url, settings.exchange_name, topic, binary)
        await _raw_publish(rabbitmq_url, settings.exchange_name, topic, structured)
        got = {m.message_id: m for m in await received.wait_for(2)}
        assert_foreign_cloudevent(got["amqp-b-1"], "amqp-b-1", 1)
        assert_foreign_cloudevent(got["amqp-s-1"], "amqp-s-1", 2)


async def test_plain_json_takes_the_amqp_message_id_and_keeps_it_on_redelivery(
    rabbitmq_settings: SettingsFactory, rabbitmq_url: str, topic: str
) -> None:
    settings = rabbitmq_settings(max_attempts=3, retry_delays=[0.1])
    async with RabbitMQMessageBus(settings) as bus:
        received = Recorder(refuse=1)
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        sent_at = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
        plain = aio_pika.Message(
            b'{"seq": 7, "key": "java"}',
            message_id="java-42",
            correlation_id="java-corr",
            timestamp=sent_at,
            headers={"traceparent": TRACEPARENT},
        )
        await _raw_publish(rabbitmq_url, settings.exchange_name, topic, plain)
        first, second = (await received.wait_for(2))[:2]
        for got in (first, second):
            assert isinstance(got, ContractEvent) and (got.seq, got.key) == (7, "java")
            assert got.message_id == "java-42"
            assert got.timestamp == sent_at
            assert got.metadata.correlation_id == "java-corr"
            assert got.metadata.trace_context == {"traceparent": TRACEPARENT}


@pytest.mark.parametrize("wire_format", ["cloudevents-binary", "cloudevents-structured"])
async def test_a_raw_consumer_reads_bentos_cloudevents_without_bento(
    rabbitmq_settings: SettingsFactory, rabbitmq_url: str, topic: str, wire_format: str
) -> None:
    settings = rabbitmq_settings(wire_format=wire_format, cloudevents_source="orders")
    async with await aio_pika.connect(rabbitmq_url) as connection, RabbitMQMessageBus(settings) as bus:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(settings.exchange_name, routing_key=topic)
        event = make_event(4, key="k").with_metadata(correlation_id="c-4", trace_context={"traceparent": TRACEPARENT})
        await bus.publish(topic, event)
        message = await _first(queue)
        headers = message.headers
        if wire_format == "cloudevents-binary":
            assert headers["cloudEvents_id"] == event.message_id
            assert headers["cloudEvents_type"] == ContractEvent.__wire_name__
            assert headers["cloudEvents_source"] == "orders"
            assert headers["cloudEvents_specversion"] == "1.0"
            assert headers["cloudEvents_correlationid"] == "c-4"
            assert headers["traceparent"] == TRACEPARENT
            assert message.content_type == "application/json"
            assert json.loads(message.body) == {"seq": 4, "key": "k", "blob": ""}
        else:
            assert message.content_type == "application/cloudevents+json"
            document = json.loads(message.body)
            assert (document["id"], document["type"], document["correlationid"]) == (
                event.message_id,
                ContractEvent.__wire_name__,
                "c-4",
            )
            assert document["data"] == {"seq": 4, "key": "k", "blob": ""}
        assert message.message_id == event.message_id
        assert message.correlation_id == "c-4"
        assert message.type == ContractEvent.__wire_name__


async def _first(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    async with asyncio.timeout(20):
        while True:
            message = await queue.get(fail=False, no_ack=True)
            if message is not None:
                return message
            await asyncio.sleep(0.05)


async def test_a_faststream_message_reaches_a_bento_subscriber(
    rabbitmq_settings: SettingsFactory, rabbitmq_url: str, topic: str
) -> None:
    settings = rabbitmq_settings()
    async with RabbitMQMessageBus(settings) as bus:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        broker = RabbitBroker(rabbitmq_url)
        await broker.start()
        try:
            exchange = RabbitExchange(settings.exchange_name, type=ExchangeType.TOPIC, declare=False)
            await broker.publish({"seq": 11, "key": "fs"}, routing_key=topic, exchange=exchange, correlation_id="fs-c")
        finally:
            await broker.stop()
        got = (await received.wait_for(1))[0]
        assert isinstance(got, ContractEvent) and (got.seq, got.key) == (11, "fs")
        assert got.metadata.correlation_id == "fs-c"
        assert got.message_id  # FastStream sets the AMQP message_id
