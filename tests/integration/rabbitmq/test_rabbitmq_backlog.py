"""BacklogProbeContract against the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.backlog import BacklogProbeContract


class TestRabbitMQBacklog(BacklogProbeContract):
    @pytest.fixture
    async def bus(self, rabbitmq_settings: object, max_attempts: int) -> AsyncIterator[MessageBus]:
        assert callable(rabbitmq_settings)
        settings: RabbitMQSettings = rabbitmq_settings(max_attempts=max_attempts)
        async with RabbitMQMessageBus(settings) as bus:
            yield bus
