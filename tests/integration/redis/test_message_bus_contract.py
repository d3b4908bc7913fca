"""The MessageBus contract on Redis: Streams (plain and partitioned) and pub/sub broadcast."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.message_bus import MessageBusContract


def _settings(redis_url: str, key_prefix: str, max_attempts: int, **extra: object) -> RedisSettings:
    return RedisSettings.model_validate(
        {
            "url": redis_url,
            "key_prefix": key_prefix,
            "max_attempts": max_attempts,
            "max_message_bytes": 65_536,
            "retry_delays": [0.05, 0.1],
            "block_ms": 200,
            "pattern_refresh": 0.1,
            "partition_lease_ms": 600,
            "drain_timeout": 2.0,
            **extra,
        }
    )


class TestRedisMessageBus(MessageBusContract):
    @pytest.fixture
    async def bus(self, redis_url: str, key_prefix: str, max_attempts: int) -> AsyncIterator[MessageBus]:
        async with RedisMessageBus(_settings(redis_url, key_prefix, max_attempts)) as bus:
            yield bus


class TestRedisMessageBusPartitioned(MessageBusContract):
    """Four partition streams per topic: per-key order by leased partition owners."""

    @pytest.fixture
    async def bus(self, redis_url: str, key_prefix: str, max_attempts: int) -> AsyncIterator[MessageBus]:
        settings = _settings(redis_url, key_prefix, max_attempts, partitions=4, concurrency=4)
        async with RedisMessageBus(settings) as bus:
            yield bus


class TestRedisBroadcastMessageBus(MessageBusContract):
    """Pub/sub mode: at-most-once, so the redelivery, dead-letter and group tests skip."""

    @pytest.fixture
    async def bus(self, redis_url: str, key_prefix: str, max_attempts: int) -> AsyncIterator[MessageBus]:
        async with RedisMessageBus(_settings(redis_url, key_prefix, max_attempts, mode="broadcast")) as bus:
            yield bus
