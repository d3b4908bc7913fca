from collections.abc import AsyncIterator

import pytest

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.message_bus import MessageBusContract


class TestInProcessMessageBus(MessageBusContract):
    @pytest.fixture
    async def bus(self, max_attempts: int, max_message_bytes: int) -> AsyncIterator[MessageBus]:
        settings = InProcessSettings(
            max_attempts=max_attempts, retry_delays=[0.01, 0.02], max_message_bytes=max_message_bytes
        )
        async with InProcessMessageBus(settings) as bus:
            yield bus
