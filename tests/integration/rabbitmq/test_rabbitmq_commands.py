"""CommandBusContract on RabbitMQ: remote dispatch/ask/send between separate connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from bento.adapters.rabbitmq import RabbitMQMessageBus, RabbitMQSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.command_bus import CommandBusContract, Transport


class TestRabbitMQMessageBusCommands(CommandBusContract):
    @pytest.fixture
    def transport(self, rabbitmq_settings: Callable[..., RabbitMQSettings]) -> Transport:
        settings = rabbitmq_settings(max_attempts=3, retry_delays=[0.05, 0.1])

        @asynccontextmanager
        async def connect() -> AsyncIterator[MessageBus]:
            async with RabbitMQMessageBus(settings) as bus:
                yield bus

        return connect
