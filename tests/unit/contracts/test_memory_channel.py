from collections.abc import AsyncIterator

import pytest

from bento.adapters.memory.channel import InMemoryChannel, InMemoryChannelSettings
from bento.application.ports.channel import ChannelPort
from bento.testing.contracts.channel import ChannelContract


class TestInMemoryChannel(ChannelContract):
    @pytest.fixture
    async def channel(self, queue_size: int) -> AsyncIterator[ChannelPort]:
        async with InMemoryChannel(InMemoryChannelSettings(queue_size=queue_size)) as channel:
            yield channel
