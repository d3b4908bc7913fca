"""StreamLockContract on Redis (127.0.0.1:6379), with two independent clients, and on the
single-writer lock (in-process exclusion; the lease it declares is tested in
test_event_store_modes.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bento.adapters.clickhouse.stream_lock import SingleWriterLock
from bento.adapters.redis.stream_lock import RedisStreamLock
from bento.application.ports.stream_lock import StreamLock
from bento.testing.contracts.stream_lock import StreamLockContract
from servers import require_tcp

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


class TestSingleWriterLock(StreamLockContract):
    @pytest.fixture
    def stream_lock(self) -> StreamLock:
        return SingleWriterLock(lease=10.0)


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
    async with (
        RedisStreamLock(REDIS_URL, prefix=prefix, lease=0.3) as first,
        RedisStreamLock(REDIS_URL, prefix=prefix, lease=0.3) as second,
        first.hold(["s"], timeout=1),
    ):
        with pytest.raises(TimeoutError):
            async with second.hold(["s"], timeout=0.8):
                pass


async def test_commit_markers_expire(redis_available: None) -> None:
    import redis.asyncio as aioredis

    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with RedisStreamLock(REDIS_URL, prefix=prefix, lease=0.5, marker_ttl=1.0) as lock:
            async with lock.hold_marked(["$append:t"], marker="$commit:t") as mark:
                assert 0 < await client.pttl(prefix + "$commit:t") <= 1000  # busy, with a lifetime
                mark.publish("c:token")
            assert await client.get(prefix + "$commit:t") == b"c:token"
            assert 0 < await client.pttl(prefix + "$commit:t") <= 1000  # published, with a lifetime
            await asyncio.sleep(1.2)
            assert await client.exists(prefix + "$commit:t") == 0  # gone, not accumulating
            async with lock.hold_marked(["$append:t"], marker="$commit:t") as mark:
                assert mark.seen is None  # an expired marker reads as absent: the writer reloads
        async with RedisStreamLock(REDIS_URL, prefix=prefix) as default:
            async with default.hold_marked(["$append:t"], marker="$commit:t") as mark:
                mark.publish("c:other")
            assert 3_500_000 < await client.pttl(prefix + "$commit:t") <= 3_600_000  # an hour by default
    finally:
        await client.delete(prefix + "$commit:t")
        await client.aclose()


async def test_a_container_shutdown_releases_the_append_lock(
    redis_available: None, clickhouse_server_settings: Any, table_name: str
) -> None:
    import redis.asyncio as aioredis
    from dependency_injector import providers

    from bento.adapters.clickhouse.settings import ClickHouseEventStoreSettings
    from bento.adapters.redis.settings import RedisStreamLockSettings
    from bento.infrastructure.container import BentoContainer, shutdown
    from bento.infrastructure.settings import BentoSettings
    from bento.testing.events import make_event

    settings = BentoSettings(
        clickhouse=clickhouse_server_settings,
        event_store=ClickHouseEventStoreSettings(table=table_name),
        stream_lock=RedisStreamLockSettings(url=REDIS_URL),
    )
    container = BentoContainer()
    container.settings.override(providers.Object(settings))
    store = await container.event_store()
    assert await store.append("s", [make_event(1)], 0) == 1
    await shutdown(container)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        key = f"bento:lock:$append:{clickhouse_server_settings.database}.{table_name}"
        assert await client.exists(key) == 0  # released, not left to its lease
    finally:
        await client.aclose()
