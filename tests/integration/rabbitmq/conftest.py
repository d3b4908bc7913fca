"""RabbitMQ fixtures: the machine's broker on 127.0.0.1:5672 (guest/guest), or BENTO_TEST_RABBITMQ_URL."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from rabbitmq_support import ConnectionDropper, SettingsFactory, make_settings
from yarl import URL

from bento.adapters.rabbitmq import RabbitMQSettings
from servers import in_ci, require_tcp

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest.fixture
def rabbitmq_url() -> str:
    url = os.environ.get("BENTO_TEST_RABBITMQ_URL", DEFAULT_URL)
    parsed = URL(url)
    require_tcp(
        "RabbitMQ",
        parsed.host or "127.0.0.1",
        parsed.port or 5672,
        "apt-get install rabbitmq-server && service rabbitmq-server start",
    )
    return url


@pytest.fixture
def connection_name() -> str:
    """A unique client name, so fault tests drop only this test's connections."""
    return f"bento-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def rabbitmq_settings(rabbitmq_url: str, connection_name: str) -> SettingsFactory:
    """Builds test settings: short retries, and queues that the broker removes once unused."""

    def build(**overrides: object) -> RabbitMQSettings:
        return make_settings(rabbitmq_url, connection_name, **overrides)

    return build


@pytest.fixture
def dropper(connection_name: str) -> ConnectionDropper:
    if shutil.which("rabbitmqctl") is None:
        reason = "rabbitmqctl is not on PATH (the fault tests close connections with it); run as root"
        if in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return ConnectionDropper(connection_name)
