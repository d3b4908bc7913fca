"""The Cache contract on RedisCache, with invalidation events over real brokers (a Redis Streams
bus and a RabbitMQ bus), plus what only a shared cache shows: two processes' caches agree."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.adapters.redis import RedisCache, RedisCacheSettings, RedisMessageBus, RedisSettings
from bento.application.ports.cache import Cache
from bento.application.ports.message_bus import MessageBus
from bento.application.serialization import JsonCodec, MessageRegistry
from bento.testing.contracts.cache import CacheContract
from bento.testing.events import ContractEvent, OtherContractEvent
from servers import require_tcp


class TestRedisCache(CacheContract):
    @pytest.fixture
    async def cache(self, redis_url: str, key_prefix: str) -> AsyncIterator[Cache]:
        settings = RedisCacheSettings(url=redis_url, key_prefix=f"{key_prefix}cache:", max_size=5)
        async with RedisCache(settings) as cache:
            yield cache

    @pytest.fixture(params=["redis", "rabbitmq"])
    async def message_bus(
        self, request: pytest.FixtureRequest, redis_url: str, key_prefix: str
    ) -> AsyncIterator[MessageBus]:
        codec = JsonCodec(MessageRegistry([ContractEvent, OtherContractEvent]))
        if request.param == "redis":
            async with RedisMessageBus(
                RedisSettings(url=redis_url, key_prefix=f"{key_prefix}bus:"), codec=codec
            ) as bus:
                yield bus
            return
        url = os.environ.get("BENTO_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
        require_tcp("RabbitMQ", "127.0.0.1", 5672, "service rabbitmq-server start")
        settings = RabbitMQSettings(url=url, exchange_name=f"bento-cache-test-{uuid.uuid4().hex[:8]}")
        async with RabbitMQMessageBus(settings, codec=codec) as bus:
            yield bus


async def test_two_processes_share_entries_and_the_size_bound(redis_url: str, key_prefix: str) -> None:
    settings = RedisCacheSettings(url=redis_url, key_prefix=f"{key_prefix}shared:", max_size=3)
    async with RedisCache(settings) as first, RedisCache(settings) as second:
        await first.set_many({"a": b"1", "b": b"2"})
        assert await second.get("a") == b"1"  # a is now the most recently used, for both
        await second.set("c", b"3")
        await first.set("d", b"4")  # over the bound: b, the least recently used by anyone, goes
        assert await first.get_many(["a", "b", "c", "d"]) == {"a": b"1", "c": b"3", "d": b"4"}
        assert (await second.stats()).size == 3
        assert (await first.stats()).evictions == 1
