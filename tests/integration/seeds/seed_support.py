"""Helpers shared by the seed example tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

REDIS = ("Redis", "127.0.0.1", 6379, "redis-server --port 6379 --save '' --appendonly no")
RABBITMQ = ("RabbitMQ", "127.0.0.1", 5672, "systemctl start rabbitmq-server")
NATS = ("NATS JetStream", "127.0.0.1", 4222, "nats-server -js")


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition that asynchronous delivery makes true."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")
