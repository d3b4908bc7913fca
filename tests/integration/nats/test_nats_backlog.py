"""BacklogProbeContract on a real NATS JetStream server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.backlog import BacklogProbeContract


class TestNatsBacklog(BacklogProbeContract):
    @pytest.fixture
    async def bus(self, nats_settings: Callable[..., NatsSettings], max_attempts: int) -> AsyncIterator[MessageBus]:
        async with NatsMessageBus(nats_settings(max_attempts=max_attempts)) as bus:
            yield bus
