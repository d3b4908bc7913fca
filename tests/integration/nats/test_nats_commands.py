"""CommandBusContract on NATS JetStream: remote dispatch/ask/send between separate connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.command_bus import CommandBusContract, Transport


class TestNatsMessageBusCommands(CommandBusContract):
    @pytest.fixture
    def transport(self, nats_settings: Callable[..., NatsSettings]) -> Transport:
        settings = nats_settings(max_attempts=3, retry_delays=[0.05, 0.1])

        @asynccontextmanager
        async def connect() -> AsyncIterator[MessageBus]:
            async with NatsMessageBus(settings) as bus:
                yield bus

        return connect
