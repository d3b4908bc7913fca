"""The Cache contract on the in-memory adapter (and the in-process bus for invalidation)."""

from collections.abc import AsyncIterator

import pytest

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.adapters.memory.cache import InMemoryCache, InMemoryCacheSettings
from bento.application.ports.cache import Cache
from bento.application.ports.message_bus import MessageBus
from bento.application.serialization import JsonCodec, MessageRegistry
from bento.testing.contracts.cache import CacheContract


class TestInMemoryCache(CacheContract):
    @pytest.fixture
    async def cache(self) -> AsyncIterator[Cache]:
        async with InMemoryCache(InMemoryCacheSettings(max_size=5)) as cache:
            yield cache

    @pytest.fixture
    async def message_bus(self) -> AsyncIterator[MessageBus]:
        async with InProcessMessageBus(InProcessSettings(), codec=JsonCodec(MessageRegistry())) as bus:
            yield bus
