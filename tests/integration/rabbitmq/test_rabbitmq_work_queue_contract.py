"""RabbitMQWorkQueue runs the WorkQueue contract against the RabbitMQ server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from rabbitmq_support import SettingsFactory

from bento.adapters.rabbitmq import RabbitMQWorkQueue
from bento.application.ports.work_queue import WorkQueue
from bento.testing.contracts.work_queue import WorkQueueContract


class TestRabbitMQWorkQueue(WorkQueueContract):
    @pytest.fixture
    async def work_queue(self, rabbitmq_settings: SettingsFactory) -> AsyncIterator[WorkQueue]:
        async with RabbitMQWorkQueue(rabbitmq_settings()) as queue:
            yield queue

    @pytest.fixture
    async def other_work_queue(self, rabbitmq_settings: SettingsFactory) -> AsyncIterator[WorkQueue]:
        async with RabbitMQWorkQueue(rabbitmq_settings()) as queue:
            yield queue
