"""CommandBusContract on a Pulsar-protocol broker: remote dispatch/ask/send between clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bento.adapters.pulsar import PulsarMessageBus, PulsarSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.command_bus import CommandBusContract, Transport


class TestPulsarMessageBusCommands(CommandBusContract):
    @pytest.fixture
    def transport(self, pulsar_url: str) -> Transport:
        settings = PulsarSettings(service_url=pulsar_url, max_attempts=3, retry_delays=[0.05, 0.1], drain_timeout=2.0)

        @asynccontextmanager
        async def connect() -> AsyncIterator[MessageBus]:
            async with PulsarMessageBus(settings) as bus:
                yield bus

        return connect
