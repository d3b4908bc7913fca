"""CommandBusContract on Kafka (a private tansu broker): remote dispatch/ask/send between
separate clients, built on the MessageBus port with no Kafka-specific command code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from kafka_support import kafka_settings

from bento.adapters.kafka import KafkaMessageBus
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.command_bus import CommandBusContract, Transport


class TestKafkaMessageBusCommands(CommandBusContract):
    @pytest.fixture
    def transport(self, kafka_url: str) -> Transport:
        settings = kafka_settings(kafka_url, max_attempts=3, retry_delays=[0.05, 0.1], drain_timeout=2.0)

        @asynccontextmanager
        async def connect() -> AsyncIterator[MessageBus]:
            async with KafkaMessageBus(settings) as bus:
                yield bus

        return connect
