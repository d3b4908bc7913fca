"""StreamLockContract on Redis (127.0.0.1:6379), with two independent clients."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from bento.adapters.redis.stream_lock import RedisStreamLock
from bento.application.ports.stream_lock import StreamLock
from bento.testing.contracts.stream_lock import StreamLockContract
from bento.testing.services import require_tcp

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_available() -> None:
    require_tcp("Redis", "127.0.0.1", 6379, "systemctl start redis-server")


class TestRedisStreamLock(StreamLockContract):
    @pytest.fixture
    async def stream_lock(self, redis_available: None) -> AsyncIterator[StreamLock]:
        async with RedisStreamLock(REDIS_URL, prefix=f"test:{uuid.uuid4().hex[:8]}:") as lock:
            yield lock

    @pytest.fixture
    async def second_lock(self, stream_lock: RedisStreamLock) -> AsyncIterator[StreamLock]:
        # Another client (as another process would have) on the same keys.
        async with RedisStreamLock(REDIS_URL, prefix=stream_lock.prefix) as lock:
            yield lock


async def test_a_dead_holder_lease_expires(redis_available: None) -> None:
    import redis.asyncio as aioredis

    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        # A key with a lease and nobody renewing it: what a holder that died leaves behind.
        await client.set(prefix + "s", "dead-holder-token", px=300)
        async with RedisStreamLock(REDIS_URL, prefix=prefix) as alive, asyncio.timeout(2):
            started = asyncio.get_running_loop().time()
            async with alive.hold(["s"], timeout=2):
                assert asyncio.get_running_loop().time() - started > 0.1  # it had to wait for the expiry
    finally:
        await client.aclose()


async def test_a_live_holder_keeps_its_lock_past_the_lease(redis_available: None) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    async with RedisStreamLock(REDIS_URL, prefix=prefix, lease=0.3) as first, RedisStreamLock(
        REDIS_URL, prefix=prefix, lease=0.3
    ) as second, first.hold(["s"], timeout=1):
        with pytest.raises(TimeoutError):
            async with second.hold(["s"], timeout=0.8):
                pass
