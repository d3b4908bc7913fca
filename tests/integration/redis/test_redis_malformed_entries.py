"""Entries written to a topic's stream by something other than Bento (raw XADD): each is
dead-lettered with a reason naming the field, the raw entry is kept, and the reader goes on."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.application.ports.message_bus import DeadLetter
from bento.application.serialization import JsonCodec
from bento.testing.collector import Collector
from bento.testing.events import make_event

VALID_AFTER = 990  # the issue saw 990 valid messages never handled after one bad entry


def _settings(url: str, prefix: str) -> RedisSettings:
    return RedisSettings.model_validate(
        {"url": url, "key_prefix": prefix, "block_ms": 200, "partition_lease_ms": 600, "max_attempts": 1}
    )


async def _letters(bus: RedisMessageBus, topic: str, group: str, count: int) -> list[DeadLetter]:
    async with asyncio.timeout(10):
        while len(letters := await bus.dead_letters(topic, group=group)) < count:  # noqa: ASYNC110 - in Redis
            await asyncio.sleep(0.05)
    return letters


@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
async def test_bad_headers_field_is_dead_lettered_and_the_reader_goes_on(
    redis_url: str, key_prefix: str, ordered: bool
) -> None:
    topic, group = "orders", "billing"
    stream = f"{key_prefix}stream:{topic}"
    async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus:
        received = Collector()
        await bus.subscribe(topic, received, group=group, ordered=ordered)
        raw = Redis.from_url(redis_url)
        try:
            # Undecodable body AND headers: the dead-letter path itself used to raise here.
            await raw.xadd(stream, {b"b": b"not json", b"h": b"{not json"})
            # A valid body whose headers are a JSON list, then invalid UTF-8.
            await raw.xadd(stream, {b"b": JsonCodec().encode(make_event(-1)), b"h": b"[1, 2]"})
            await raw.xadd(stream, {b"b": JsonCodec().encode(make_event(-2)), b"h": b"\xff\xfe"})
        finally:
            await raw.aclose()
        sent = [make_event(n) for n in range(VALID_AFTER)]
        await bus.publish_batch(topic, sent)
        assert await received.wait_for(VALID_AFTER, timeout=20) == {m.message_id for m in sent}
        letters = await _letters(bus, topic, group, 3)
    assert len(letters) == 3
    assert all(letter.error_type == "DeserializationError" for letter in letters)
    assert "'h' (headers) field is not JSON (JSONDecodeError); it starts '{not json'" in letters[0].error_message
    assert "'h' (headers) field is JSON list" in letters[1].error_message
    assert "'h' (headers) field is not JSON (UnicodeDecodeError)" in letters[2].error_message
    assert letters[0].body == b"not json"


async def test_entry_without_b_field_keeps_the_raw_entry_in_its_dead_letter(redis_url: str, key_prefix: str) -> None:
    topic, group = "foreign", "readers"
    stream = f"{key_prefix}stream:{topic}"
    payload = b'{"faststream": true}'
    async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus:
        received = Collector()
        await bus.subscribe(topic, received, group=group)
        raw = Redis.from_url(redis_url)
        try:
            await raw.xadd(stream, {b"__data__": payload, b"correlation_id": b"c-1", b"bin": b"\xff"})
            await raw.xadd(stream, {b"__data__": b"x" * 100_000})  # bounded copy
        finally:
            await raw.aclose()
        after = make_event(1)
        await bus.publish(topic, after)
        assert await received.wait_for(1) == {after.message_id}
        first, second = await _letters(bus, topic, group, 2)
    assert first.error_type == "DeserializationError"
    assert "no 'b' field" in first.error_message and "'__data__'" in first.error_message
    assert first.headers["x-bento-raw-entry"] == "1"
    assert json.loads(first.body) == {
        "__data__": payload.decode(),
        "correlation_id": "c-1",
        "bin": "\\xff",
    }
    kept = json.loads(second.body)
    assert len(kept["__data__"]) == 64 * 1024 and "…truncated" in kept
