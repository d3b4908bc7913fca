"""BacklogProbeContract against Kafka (a private tansu broker, or BENTO_TEST_KAFKA_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kafka_support import kafka_settings

from bento.adapters.kafka import KafkaMessageBus
from bento.application.ports.message_bus import MessageBus
from bento.testing.contracts.backlog import BacklogProbeContract


class TestKafkaBacklog(BacklogProbeContract):
    @pytest.fixture
    async def bus(self, kafka_url: str, max_attempts: int) -> AsyncIterator[MessageBus]:
        async with KafkaMessageBus(kafka_settings(kafka_url, max_attempts=max_attempts)) as bus:
            yield bus
