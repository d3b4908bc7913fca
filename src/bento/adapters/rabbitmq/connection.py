"""A plain AMQP connection opened the way the RabbitMQ adapters open theirs, for code that
needs aio-pika itself (the RabbitMQClient manager): robust (reconnects and restores channels),
TLS from the settings, unreachable brokers reported as BrokerUnavailableError."""

from __future__ import annotations

from aio_pika.abc import AbstractRobustConnection

from bento.adapters.rabbitmq._connection import DRIVER_ERRORS, open_connection
from bento.adapters.rabbitmq.settings import RabbitMQSettings
from bento.adapters.shared.metrics import BusCounters

__all__ = ["DRIVER_ERRORS", "connect"]


async def connect(settings: RabbitMQSettings, label: str) -> AbstractRobustConnection:
    """Open a connection named `label` in the broker's connection list."""
    return await open_connection(settings, BusCounters(), label)
