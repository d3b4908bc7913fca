"""A private tansu broker (Kafka protocol) per test module, on its own port.

`BENTO_TEST_KAFKA_URL` (`kafka://host:9092`) points the tests at an Apache Kafka instead;
then the `real_kafka` tests (persistence, idempotence: what tansu lacks) run too. Without it
they are reported as skipped with the reason. Under CI=true a broker that cannot be started
or reached fails the run (require_tcp)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlparse

import pytest
from kafka_support import kafka_settings

from bento.adapters.kafka import KafkaMessageBus
from servers import require_tcp
from servers.tansu import INSTALL_COMMAND, Tansu

REAL_KAFKA_URL = os.environ.get("BENTO_TEST_KAFKA_URL", "")
START_COMMAND = f"{INSTALL_COMMAND} (the tests start tansu), or set BENTO_TEST_KAFKA_URL"


def real_kafka_reason(missing: str) -> str:
    return f"needs Apache Kafka (tansu lacks {missing}); set BENTO_TEST_KAFKA_URL"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if REAL_KAFKA_URL:
        return
    for item in items:
        marker = item.get_closest_marker("real_kafka")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=real_kafka_reason(marker.kwargs.get("lacks", "this feature"))))


@pytest.fixture(scope="module")
def kafka_broker() -> Iterator[Tansu | None]:
    """The private broker, or None when the tests run against BENTO_TEST_KAFKA_URL."""
    if REAL_KAFKA_URL:
        yield None
        return
    broker = Tansu()
    try:
        broker.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        broker.cleanup()
        require_tcp(f"tansu ({exc})", "127.0.0.1", broker.port, START_COMMAND)
        raise
    try:
        yield broker
    finally:
        broker.cleanup()


@pytest.fixture(scope="module")
def kafka_url(kafka_broker: Tansu | None) -> str:
    url = REAL_KAFKA_URL or (kafka_broker.url if kafka_broker else "")
    parsed = urlparse(url.split(",", 1)[0])
    require_tcp("Kafka", parsed.hostname or "127.0.0.1", parsed.port or 9092, START_COMMAND)
    return url


@pytest.fixture
def unique_topic() -> str:
    return f"it.{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def kafka_bus(kafka_url: str) -> AsyncIterator[KafkaMessageBus]:
    async with KafkaMessageBus(kafka_settings(kafka_url)) as bus:
        yield bus
