"""Interop on Pulsar (docs/wire-format.md), against pulsar-lite or BENTO_TEST_PULSAR_URL: a raw
pulsar-client producer's CloudEvents (properties `ce_*`) and plain JSON reach a Bento subscriber;
Bento's CloudEvents are read by a raw consumer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pulsar
import pytest
from wire_support import TRACEPARENT, Recorder, assert_foreign_cloudevent, binary_headers, structured_body

from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings
from bento.testing.events import ContractEvent, make_event


@pytest.fixture
def client(pulsar_url: str) -> Iterator[pulsar.Client]:
    raw = pulsar.Client(pulsar_url)
    yield raw
    raw.close()


def _settings(pulsar_url: str, **extra: object) -> PulsarSettings:
    return PulsarSettings.model_validate(
        {"service_url": pulsar_url, "retry_delays": [0.05], "drain_timeout": 2.0, **extra}
    )


async def _send(client: pulsar.Client, topic: str, body: bytes, properties: dict[str, str]) -> pulsar.MessageId:
    def send() -> pulsar.MessageId:
        producer = client.create_producer(f"persistent://public/default/{topic}")
        try:
            return producer.send(body, properties=properties)
        finally:
            producer.close()

    return await asyncio.to_thread(send)


async def test_foreign_cloudevents_in_both_modes_reach_a_bento_subscriber(
    pulsar_url: str, client: pulsar.Client, unique_topic: str
) -> None:
    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        received = Recorder()
        await bus.subscribe(unique_topic, received, group="interop")
        binary = {**binary_headers("pulsar-b-1", "ce_"), "content-type": "application/json"}
        await _send(client, unique_topic, b'{"seq": 1}', binary)
        structured = {"content-type": "application/cloudevents+json", "traceparent": TRACEPARENT}
        await _send(client, unique_topic, structured_body("pulsar-s-1", 2), structured)
        got = {m.message_id: m for m in await received.wait_for(2)}
        assert_foreign_cloudevent(got["pulsar-b-1"], "pulsar-b-1", 1)
        assert_foreign_cloudevent(got["pulsar-s-1"], "pulsar-s-1", 2)


async def test_plain_json_takes_the_pulsar_message_id_and_keeps_it_on_redelivery(
    pulsar_url: str, client: pulsar.Client, unique_topic: str
) -> None:
    async with PulsarMessageBus(_settings(pulsar_url)) as bus:
        received = Recorder(refuse=1)
        await bus.subscribe(unique_topic, received, group="interop", message_type=ContractEvent)
        sent = await _send(client, unique_topic, b'{"seq": 4}', {"traceparent": TRACEPARENT})
        first, second = (await received.wait_for(2))[:2]
        for got in (first, second):
            assert isinstance(got, ContractEvent) and got.seq == 4
            assert got.message_id == str(sent)
            assert got.metadata.trace_context == {"traceparent": TRACEPARENT}
        assert first.timestamp == second.timestamp
        assert abs((first.timestamp - datetime.now(UTC)).total_seconds()) < 60  # the publish time


@pytest.mark.parametrize("wire_format", ["cloudevents-binary", "cloudevents-structured"])
async def test_a_raw_consumer_reads_bentos_cloudevents(
    pulsar_url: str, client: pulsar.Client, unique_topic: str, wire_format: str
) -> None:
    consumer = await asyncio.to_thread(client.subscribe, f"persistent://public/default/{unique_topic}", "raw-reader")
    try:
        async with PulsarMessageBus(_settings(pulsar_url, wire_format=wire_format, cloudevents_source="orders")) as bus:
            event = make_event(3, key="k").with_metadata(
                correlation_id="c-3", trace_context={"traceparent": TRACEPARENT}
            )
            await bus.publish(unique_topic, event)
        msg = await asyncio.to_thread(consumer.receive, 10_000)
    finally:
        await asyncio.to_thread(consumer.close)
    props = msg.properties()
    if wire_format == "cloudevents-binary":
        assert (props["ce_id"], props["ce_type"], props["ce_source"]) == (
            event.message_id,
            ContractEvent.__wire_name__,
            "orders",
        )
        assert (props["ce_specversion"], props["ce_correlationid"]) == ("1.0", "c-3")
        assert props["content-type"] == "application/json"
        assert json.loads(msg.data()) == {"seq": 3, "key": "k", "blob": ""}
    else:
        assert props["content-type"] == "application/cloudevents+json"
        document = json.loads(msg.data())
        assert (document["id"], document["correlationid"]) == (event.message_id, "c-3")
        assert document["data"] == {"seq": 3, "key": "k", "blob": ""}
    assert props["traceparent"] == TRACEPARENT
    assert msg.partition_key() == "k"
