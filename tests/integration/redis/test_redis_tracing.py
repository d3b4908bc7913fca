"""Tracing on Redis Streams: the shared traced flow (bento.testing.tracing) through a real server."""

from __future__ import annotations

from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.testing.tracing import assert_traced_flow, run_traced_flow


async def test_one_trace_through_store_relay_and_subscriber(redis_url: str, key_prefix: str) -> None:
    async with RedisMessageBus(RedisSettings(url=redis_url, key_prefix=f"{key_prefix}bus:")) as bus:
        spans = await run_traced_flow(bus, InMemoryEventStore(), InMemoryCheckpointStore(), settle=0.2)
    assert_traced_flow(spans, "redis")
