"""Interop on Redis Streams (docs/wire-format.md): entries written by redis-py alone (CloudEvents
in both modes, plain JSON) reach a Bento subscriber; Bento's CloudEvents are read with XRANGE;
a FastStream-published entry (its `__data__` field) is consumed."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker
from wire_support import TRACEPARENT, Recorder, assert_foreign_cloudevent, binary_headers, structured_body

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.testing.events import ContractEvent, make_event


@pytest.fixture
def topic() -> str:
    return f"interop.{uuid.uuid4().hex[:10]}"


def _settings(redis_url: str, key_prefix: str, **extra: object) -> RedisSettings:
    fields = {"url": redis_url, "key_prefix": key_prefix, "retry_delays": [0.05], "block_ms": 200, **extra}
    return RedisSettings.model_validate(fields)


async def test_foreign_entries_reach_a_bento_subscriber(redis_url: str, key_prefix: str, topic: str) -> None:
    stream = f"{key_prefix}stream:{topic}"  # docs/wire-format.md: the topic's stream key
    async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus, aioredis.from_url(redis_url) as raw:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop")
        binary = {**binary_headers("redis-b-1", "ce_"), "content-type": "application/json"}
        await raw.xadd(stream, {"b": b'{"seq": 1}', "h": json.dumps(binary)})
        await raw.xadd(stream, {"b": structured_body("redis-s-1", 2), "h": json.dumps({"traceparent": TRACEPARENT})})
        got = {m.message_id: m for m in await received.wait_for(2)}
        assert_foreign_cloudevent(got["redis-b-1"], "redis-b-1", 1)
        assert_foreign_cloudevent(got["redis-s-1"], "redis-s-1", 2)


async def test_plain_json_takes_the_entry_id_and_keeps_it_on_redelivery(
    redis_url: str, key_prefix: str, topic: str
) -> None:
    stream = f"{key_prefix}stream:{topic}"
    async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus, aioredis.from_url(redis_url) as raw:
        received = Recorder(refuse=1)
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        entry_id = (
            await raw.xadd(stream, {"b": b'{"seq": 5}', "h": json.dumps({"traceparent": TRACEPARENT})})
        ).decode()
        first, second = (await received.wait_for(2))[:2]
        millis = int(entry_id.split("-")[0])
        for got in (first, second):
            assert isinstance(got, ContractEvent) and got.seq == 5
            assert got.message_id == entry_id
            assert got.timestamp == datetime.fromtimestamp(millis / 1000, UTC)
            assert got.metadata.trace_context == {"traceparent": TRACEPARENT}


@pytest.mark.parametrize("wire_format", ["cloudevents-binary", "cloudevents-structured"])
async def test_a_raw_client_reads_bentos_cloudevents(
    redis_url: str, key_prefix: str, topic: str, wire_format: str
) -> None:
    settings = _settings(redis_url, key_prefix, wire_format=wire_format, cloudevents_source="orders")
    async with RedisMessageBus(settings) as bus, aioredis.from_url(redis_url) as raw:
        event = make_event(8, key="k").with_metadata(tenant_id="t-8", trace_context={"traceparent": TRACEPARENT})
        await bus.publish(topic, event)
        [(_, fields)] = await raw.xrange(f"{key_prefix}stream:{topic}")
        headers = json.loads(fields[b"h"])
        body = json.loads(fields[b"b"])
        if wire_format == "cloudevents-binary":
            assert (headers["ce_id"], headers["ce_type"], headers["ce_source"]) == (
                event.message_id,
                ContractEvent.__wire_name__,
                "orders",
            )
            assert (headers["ce_specversion"], headers["ce_tenantid"]) == ("1.0", "t-8")
            assert headers["content-type"] == "application/json"
            assert body == {"seq": 8, "key": "k", "blob": ""}
        else:
            assert headers["content-type"] == "application/cloudevents+json"
            assert (body["id"], body["type"], body["tenantid"]) == (
                event.message_id,
                ContractEvent.__wire_name__,
                "t-8",
            )
            assert body["data"] == {"seq": 8, "key": "k", "blob": ""}
        assert headers["traceparent"] == TRACEPARENT


async def test_a_faststream_entry_reaches_a_bento_subscriber(redis_url: str, key_prefix: str, topic: str) -> None:
    async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus:
        received = Recorder()
        await bus.subscribe(topic, received, group="interop", message_type=ContractEvent)
        broker = RedisBroker(redis_url)
        await broker.start()
        try:
            await broker.publish({"seq": 12, "key": "fs"}, stream=f"{key_prefix}stream:{topic}", correlation_id="fs-c")
        finally:
            await broker.stop()
        got = (await received.wait_for(1))[0]
        assert isinstance(got, ContractEvent) and (got.seq, got.key) == (12, "fs")
        assert got.metadata.correlation_id == "fs-c"
