"""Interop on NATS JetStream (docs/wire-format.md): messages published by nats-py alone
(CloudEvents in both modes per the NATS binding, plain JSON) reach a Bento subscriber; Bento's
CloudEvents are read by a raw subscriber; a FastStream-published message is consumed."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import nats
import pytest
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from wire_support import TRACEPARENT, Recorder, assert_foreign_cloudevent, binary_headers, structured_body

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.testing.events import ContractEvent, make_event


@pytest.fixture
def topic() -> str:
    return f"interop.{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(nats_url)
    yield client.jetstream()
    await client.close()


async def test_foreign_cloudevents_in_both_modes_reach_a_bento_subscriber(
    nats_settings: Callable[..., NatsSettings], js: JetStreamContext, topic: str
) -> None:
    settings = nats_settings()
    subject = f"{settings.subject_prefix}.p0.{topic}"  # docs/wire-format.md: {prefix}.p{n}.{topic}
    async with NatsMessageBus(settings) as bus:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop")
        binary = {**binary_headers("nats-b-1", "ce-"), "content-type": "application/json"}
        await js.publish(subject, b'{"seq": 1}', headers=binary)
        structured = {"content-type": "application/cloudevents+json", "traceparent": TRACEPARENT}
        await js.publish(subject, structured_body("nats-s-1", 2), headers=structured)
        got = {m.message_id: m for m in await received.wait_for(2)}
        assert_foreign_cloudevent(got["nats-b-1"], "nats-b-1", 1)
        assert_foreign_cloudevent(got["nats-s-1"], "nats-s-1", 2)


@pytest.mark.parametrize("msg_id", [None, "go-7"])
async def test_plain_json_takes_the_transport_id_and_keeps_it_on_redelivery(
    nats_settings: Callable[..., NatsSettings], js: JetStreamContext, topic: str, msg_id: str | None
) -> None:
    settings = nats_settings()
    async with NatsMessageBus(settings) as bus:
        received = Recorder(refuse=1)
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        headers = {"traceparent": TRACEPARENT, **({"Nats-Msg-Id": msg_id} if msg_id else {})}
        ack = await js.publish(f"{settings.subject_prefix}.p3.{topic}", b'{"seq": 6}', headers=headers)
        first, second = (await received.wait_for(2))[:2]
        expected = msg_id or f"{settings.stream_name}:{ack.seq}"
        for got in (first, second):
            assert isinstance(got, ContractEvent) and got.seq == 6
            assert got.message_id == expected
            assert got.metadata.trace_context == {"traceparent": TRACEPARENT}
        assert first.timestamp == second.timestamp
        assert abs((first.timestamp - datetime.now(UTC)).total_seconds()) < 60  # the stream's time


@pytest.mark.parametrize("wire_format", ["cloudevents-binary", "cloudevents-structured"])
async def test_a_raw_subscriber_reads_bentos_cloudevents(
    nats_settings: Callable[..., NatsSettings], nats_url: str, topic: str, wire_format: str
) -> None:
    settings = nats_settings(wire_format=wire_format, cloudevents_source="orders")
    client = await nats.connect(nats_url)
    try:
        sub = await client.subscribe(f"{settings.subject_prefix}.*.{topic}")
        async with NatsMessageBus(settings) as bus:
            event = make_event(9, key="k").with_metadata(causation_id="c-9", trace_context={"traceparent": TRACEPARENT})
            await bus.publish(topic, event)
            msg = await sub.next_msg(timeout=10)
    finally:
        await client.close()
    headers = msg.headers or {}
    if wire_format == "cloudevents-binary":
        assert (headers["ce-id"], headers["ce-type"], headers["ce-source"]) == (
            event.message_id,
            ContractEvent.__wire_name__,
            "orders",
        )
        assert (headers["ce-specversion"], headers["ce-causationid"]) == ("1.0", "c-9")
        assert headers["content-type"] == "application/json"
        assert json.loads(msg.data) == {"seq": 9, "key": "k", "blob": ""}
    else:
        assert headers["content-type"] == "application/cloudevents+json"
        document = json.loads(msg.data)
        assert (document["id"], document["causationid"]) == (event.message_id, "c-9")
        assert document["data"] == {"seq": 9, "key": "k", "blob": ""}
    assert headers["traceparent"] == TRACEPARENT


async def test_a_faststream_message_reaches_a_bento_subscriber(
    nats_settings: Callable[..., NatsSettings], nats_url: str, topic: str
) -> None:
    settings = nats_settings()
    async with NatsMessageBus(settings) as bus:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        broker = NatsBroker(nats_url)
        await broker.start()
        try:
            subject = f"{settings.subject_prefix}.p1.{topic}"
            await broker.publish({"seq": 13, "key": "fs"}, subject, stream=settings.stream_name, correlation_id="fs-c")
        finally:
            await broker.stop()
        got = (await received.wait_for(1))[0]
        assert isinstance(got, ContractEvent) and (got.seq, got.key) == (13, "fs")
        assert got.metadata.correlation_id == "fs-c"
