"""Redis-specific behaviour beyond the contract: partition balancing, late pattern topics,
seed 001's pub/sub layout, health when Redis is unreachable."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from redis.asyncio import Redis

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.application.errors import BrokerUnavailableError
from bento.application.serialization import JsonCodec
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import ContractEvent, make_event
from servers import free_port


def _settings(url: str, prefix: str, **extra: object) -> RedisSettings:
    base = {"url": url, "key_prefix": prefix, "block_ms": 200, "pattern_refresh": 0.1, "partition_lease_ms": 600}
    return RedisSettings.model_validate({**base, **extra})


async def test_ordered_partitions_spread_over_members_and_keep_key_order(redis_url: str, key_prefix: str) -> None:
    seen: dict[str, list[int]] = defaultdict(list)

    def record(event: DomainEvent, attempt: int) -> None:
        assert isinstance(event, ContractEvent)
        seen[event.key].append(event.seq)

    settings = _settings(redis_url, key_prefix, partitions=4)
    async with RedisMessageBus(settings) as one, RedisMessageBus(settings) as two:
        first, second = Collector(record), Collector(record)
        await one.subscribe("orders", first, group="ordered", ordered=True)
        await two.subscribe("orders", second, group="ordered", ordered=True)
        await asyncio.sleep(1.0)  # a few lease rounds: the first member hands two partitions over
        sent = [make_event(n, key=f"key-{n % 20}") for n in range(400)]
        await one.publish_batch("orders", sent)
        await first.wait_until(lambda: len(first.ids() | second.ids()) == 400, timeout=20)
    assert first.ids() and second.ids(), "both members should own partitions"
    for key, seqs in seen.items():
        assert seqs == [m.seq for m in sent if m.key == key], key


async def test_pattern_subscription_sees_topics_created_later(redis_url: str, key_prefix: str) -> None:
    async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus:
        received = Collector()
        await bus.subscribe("audit.*", received, group="auditors")
        first = make_event(1)
        await bus.publish("audit.brand-new", first)  # the topic did not exist when subscribing
        second = make_event(2)
        await bus.publish("audit.brand-new", second)
        assert await received.wait_for(2) == {first.message_id, second.message_id}


async def test_broadcast_mode_uses_seed_001_channel_layout(redis_url: str, key_prefix: str) -> None:
    """A process publishing `PUBLISH {key_prefix}{topic} <envelope>` reaches a broadcast subscriber."""
    async with RedisMessageBus(_settings(redis_url, key_prefix, mode="broadcast")) as bus:
        received = Collector()
        await bus.subscribe("order.created", received)
        event = make_event(5)
        client = Redis.from_url(redis_url)
        try:
            assert await client.publish(f"{key_prefix}order.created", JsonCodec().encode(event)) == 1
        finally:
            await client.aclose()
        assert await received.wait_for(1) == {event.message_id}


async def test_unreachable_redis_is_a_typed_error() -> None:
    settings = RedisSettings.model_validate({"url": f"redis://127.0.0.1:{free_port()}/0"})
    with pytest.raises(BrokerUnavailableError):
        async with RedisMessageBus(settings):
            pass


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_failing_reader_is_reported_unhealthy_and_recovers(
    redis_url: str, key_prefix: str, ordered: bool
) -> None:
    """A Redis error the reader does not expect (the stream deleted under a blocked XREADGROUP:
    "UNBLOCKED the stream key no longer exists", then WRONGTYPE while a string holds the key)
    used to end the reader task for good, with the bus still healthy."""
    settings = _settings(redis_url, key_prefix, partitions=2 if ordered else 1)
    async with RedisMessageBus(settings) as bus:
        received = Collector()
        await bus.subscribe("orders", received, group="g", ordered=ordered)
        streams = [f"{key_prefix}stream:orders:{p}" for p in range(2)] if ordered else [f"{key_prefix}stream:orders"]
        client = Redis.from_url(redis_url)
        try:
            assert set(await client.keys(f"{key_prefix}stream:*")) == {s.encode() for s in streams}
            for stream in streams:
                await client.delete(stream)
                await client.set(stream, "not a stream")
            status = await bus.health_check()
            async with asyncio.timeout(10):
                while status.healthy:
                    await asyncio.sleep(0.05)
                    status = await bus.health_check()
            assert "ResponseError" in status.detail, status
            await client.delete(*streams)
        finally:
            await client.aclose()
        event = make_event(1, key="k")
        await bus.publish("orders", event)
        assert await received.wait_for(1, timeout=15) == {event.message_id}
