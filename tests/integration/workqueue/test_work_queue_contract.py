"""RedisWorkQueue runs the WorkQueue contract against the Redis server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bento.adapters.redis.work_queue import RedisWorkQueue, RedisWorkQueueSettings
from bento.application.ports.work_queue import WorkQueue
from bento.testing.contracts.work_queue import WorkQueueContract


class TestRedisWorkQueue(WorkQueueContract):
    @pytest.fixture
    async def work_queue(self, wq_redis_url: str, wq_prefix: str) -> AsyncIterator[WorkQueue]:
        async with RedisWorkQueue(
            RedisWorkQueueSettings(url=wq_redis_url, key_prefix=wq_prefix, block_ms=100)
        ) as queue:
            yield queue

    @pytest.fixture
    async def other_work_queue(self, wq_redis_url: str, wq_prefix: str) -> AsyncIterator[WorkQueue]:
        async with RedisWorkQueue(
            RedisWorkQueueSettings(url=wq_redis_url, key_prefix=wq_prefix, block_ms=100)
        ) as queue:
            yield queue
