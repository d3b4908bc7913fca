"""CommandBusContract over the in-process MessageBus (one shared bus stands for the broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bento.adapters.memory import InProcessMessageBus
from bento.adapters.memory.settings import InProcessSettings
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.command_bus import CommandBusContract, Transport


class TestInProcessMessageBusCommands(CommandBusContract):
    @pytest.fixture
    async def transport(self) -> AsyncIterator[Transport]:
        async with InProcessMessageBus(InProcessSettings(max_attempts=3, retry_delays=[0.05])) as shared:

            @asynccontextmanager
            async def open_shared() -> AsyncIterator[MessageBus]:
                yield shared

            yield open_shared
