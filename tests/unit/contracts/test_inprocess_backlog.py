"""BacklogProbeContract on the in-process bus."""

from collections.abc import AsyncIterator

import pytest

from bento.adapters.memory import InProcessMessageBus, InProcessSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.backlog import BacklogProbeContract


class TestInProcessBacklog(BacklogProbeContract):
    @pytest.fixture
    async def bus(self, max_attempts: int) -> AsyncIterator[MessageBus]:
        async with InProcessMessageBus(InProcessSettings(max_attempts=max_attempts, retry_delays=[0.01])) as bus:
            yield bus
