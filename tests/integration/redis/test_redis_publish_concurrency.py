"""Many concurrent publishes on one RedisMessageBus: they queue for a connection and share round
trips, never fail for want of one (redis-py's default pool raises MaxConnectionsError beyond 100
connections in use); and the reply streams of the DirectReplyPort."""

from __future__ import annotations

import asyncio

import redis.asyncio as aredis
from redis.asyncio import ConnectionPool, Redis

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.application.errors import PublishError
from bento.domain.events import DomainEvent
from bento.testing.collector import Collector
from bento.testing.events import make_event


def _settings(url: str, prefix: str, **extra: object) -> RedisSettings:
    return RedisSettings.model_validate({"url": url, "key_prefix": prefix, "block_ms": 200, **extra})


async def test_300_concurrent_publishes_all_arrive(redis_url: str, key_prefix: str) -> None:
    async with RedisMessageBus(_settings(redis_url, key_prefix)) as bus:
        received = Collector()
        await bus.subscribe("crowd", received, group="all")
        sent = [make_event(n) for n in range(300)]
        await asyncio.gather(*(bus.publish("crowd", event) for event in sent))
        assert await received.wait_for(300, timeout=20) == {e.message_id for e in sent}


async def test_concurrent_publishes_queue_on_a_small_pool_of_the_callers_client(
    redis_url: str, key_prefix: str
) -> None:
    # A caller's client whose pool holds 4 connections (the default pool refuses a 5th: this
    # would fail with MaxConnectionsError if each publish took a connection of its own).
    client = Redis(connection_pool=ConnectionPool.from_url(redis_url, max_connections=4))
    try:
        async with RedisMessageBus(_settings(redis_url, key_prefix, publish_pipelines=2), client=client) as bus:
            sent = [make_event(n) for n in range(300)]
            await asyncio.gather(*(bus.publish("crowd", event) for event in sent))
        assert await client.xlen(f"{key_prefix}stream:crowd") == 300
    finally:
        await client.aclose()


async def test_a_refused_publish_fails_alone(redis_url: str, key_prefix: str) -> None:
    """Publishes sharing a round trip get their own outcome: one whose stream key holds another
    type fails, the others go out."""
    raw = aredis.Redis.from_url(redis_url)
    await raw.set(f"{key_prefix}stream:not-a-stream", "x")
    try:
        async with RedisMessageBus(_settings(redis_url, key_prefix, publish_pipelines=1)) as bus:
            good = [make_event(n) for n in range(50)]
            outcomes = await asyncio.gather(
                *(bus.publish("fine", e) for e in good[:25]),
                bus.publish("not-a-stream", make_event(99)),
                *(bus.publish("fine", e) for e in good[25:]),
                return_exceptions=True,
            )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], PublishError)
        assert await raw.xlen(f"{key_prefix}stream:fine") == 50
    finally:
        await raw.aclose()


async def test_reply_stream_receives_replies_and_goes_away(redis_url: str, key_prefix: str) -> None:
    raw = aredis.Redis.from_url(redis_url)
    try:
        async with (
            RedisMessageBus(_settings(redis_url, key_prefix)) as caller,
            RedisMessageBus(_settings(redis_url, key_prefix)) as server,
        ):
            got: list[DomainEvent] = []
            arrived = asyncio.Event()

            async def on_reply(message: DomainEvent) -> None:
                got.append(message)
                if len(got) == 20:
                    arrived.set()

            assert caller.direct_reply is not None
            replies = await caller.direct_reply.open_replies(on_reply)
            sent = [make_event(n) for n in range(20)]
            await asyncio.gather(*(server.publish(replies.topic, e) for e in sent))
            async with asyncio.timeout(10):
                await arrived.wait()
            assert sorted(m.message_id for m in got) == sorted(e.message_id for e in sent)  # each once
            await replies.cancel()
            # Gone with its reader: a late reply is dropped, not kept in a stream nobody reads.
            await server.publish(replies.topic, make_event(21))
        assert [k async for k in raw.scan_iter(match=f"{key_prefix}reply:*")] == []
        assert [k async for k in raw.scan_iter(match=f"{key_prefix}topics")] == []  # replies are no topics
    finally:
        await raw.aclose()
