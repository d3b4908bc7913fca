"""The channel contract on Redis pub/sub (native PSUBSCRIBE)."""

from collections.abc import AsyncIterator

import pytest

from bento.adapters.redis.channel import RedisChannel, RedisChannelSettings
from bento.application.ports.channel import ChannelPort
from bento.testing.contracts.channel import ChannelContract


class TestRedisChannel(ChannelContract):
    @pytest.fixture
    async def channel(self, redis_url: str, key_prefix: str, queue_size: int) -> AsyncIterator[ChannelPort]:
        settings = RedisChannelSettings(url=redis_url, key_prefix=key_prefix, queue_size=queue_size)
        async with RedisChannel(settings) as channel:
            yield channel
