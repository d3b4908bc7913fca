"""MessageBusContract on a real NATS JetStream server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.message_bus import MessageBusContract


class TestNatsMessageBus(MessageBusContract):
    @pytest.fixture
    async def bus(
        self, nats_settings: Callable[..., NatsSettings], max_attempts: int, max_message_bytes: int
    ) -> AsyncIterator[MessageBus]:
        async with NatsMessageBus(nats_settings(max_attempts=max_attempts, max_message_bytes=max_message_bytes)) as bus:
            yield bus
