"""Helpers of the Kafka integration tests: test-speed settings, waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bento.adapters.kafka import KafkaSettings

#: Fast enough for tests: quick heartbeats, short back-offs, commits every 50 ms.
TEST_SETTINGS: dict[str, object] = {
    "partitions": 4,
    "max_attempts": 3,
    "retry_delays": [0.05, 0.1, 0.2],
    "heartbeat_interval": 0.3,
    "session_timeout": 6.0,
    "commit_interval": 0.05,
    "drain_timeout": 5.0,
    "connection_check_interval": 0.5,
}


def kafka_settings(url: str, **overrides: object) -> KafkaSettings:
    return KafkaSettings.model_validate({"url": url, **TEST_SETTINGS, **overrides})


async def until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Wait until `condition()` holds; the seconds it took (AssertionError at the timeout)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started
