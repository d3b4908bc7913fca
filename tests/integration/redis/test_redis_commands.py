"""CommandBusContract on Redis Streams: remote dispatch/ask/send between separate connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bento.adapters.redis import RedisMessageBus, RedisSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.command_bus import CommandBusContract, Transport


class TestRedisMessageBusCommands(CommandBusContract):
    @pytest.fixture
    def transport(self, redis_url: str, key_prefix: str) -> Transport:
        settings = RedisSettings(
            url=redis_url,
            key_prefix=key_prefix,
            max_attempts=3,
            retry_delays=[0.05, 0.1],
            block_ms=200,
            drain_timeout=2.0,
        )

        @asynccontextmanager
        async def connect() -> AsyncIterator[MessageBus]:
            async with RedisMessageBus(settings) as bus:
                yield bus

        return connect
