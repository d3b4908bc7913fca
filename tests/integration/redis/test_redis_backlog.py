"""BacklogProbeContract on Redis Streams (one stream and four partition streams per topic)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.backlog import BacklogProbeContract


def _settings(redis_url: str, key_prefix: str, max_attempts: int, **extra: object) -> RedisSettings:
    return RedisSettings.model_validate(
        {
            "url": redis_url,
            "key_prefix": key_prefix,
            "max_attempts": max_attempts,
            "retry_delays": [0.05],
            "block_ms": 200,
            "drain_timeout": 2.0,
            **extra,
        }
    )


class TestRedisBacklog(BacklogProbeContract):
    @pytest.fixture
    async def bus(self, redis_url: str, key_prefix: str, max_attempts: int) -> AsyncIterator[MessageBus]:
        async with RedisMessageBus(_settings(redis_url, key_prefix, max_attempts)) as bus:
            yield bus


class TestRedisPartitionedBacklog(BacklogProbeContract):
    @pytest.fixture
    async def bus(self, redis_url: str, key_prefix: str, max_attempts: int) -> AsyncIterator[MessageBus]:
        async with RedisMessageBus(_settings(redis_url, key_prefix, max_attempts, partitions=4)) as bus:
            yield bus
