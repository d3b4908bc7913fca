"""The environment the docs' code blocks run in: no Bento settings leak in from the machine,
and the servers a block needs are named by the same variables a reader sets (RabbitMQ, Redis
and NATS at their default addresses; a private ClickHouse server as CLICKHOUSE__HOST/PORT, a
private pulsar-lite broker as PULSAR_URL, a private tansu Kafka-protocol broker as KAFKA_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from servers import in_ci, require_tcp
from servers.clickhouse_server import ClickHouseServer, install_clickhouse_server
from servers.pulsar_lite import PulsarLite
from servers.tansu import Tansu

LEAKING = (
    "EVENT",
    "CLICKHOUSE",
    "READ_MODEL",
    "CHECKPOINT",
    "SNAPSHOT",
    "STREAM_LOCK",
    "INBOX",
    "MQ",
    "BENTO",
    "CHANNEL",
)


@pytest.fixture(scope="session")
def clickhouse_env() -> Iterator[dict[str, str]]:
    if not install_clickhouse_server():
        if in_ci():
            pytest.fail("CI=true and clickhouse-server is not installed (scripts/test.sh installs it)")
        yield {}
        return
    server = ClickHouseServer()
    try:
        server.start()
        yield {"CLICKHOUSE__MODE": "server", "CLICKHOUSE__HOST": server.host, "CLICKHOUSE__PORT": str(server.port)}
    finally:
        server.stop()
        server.cleanup()


@pytest.fixture(scope="session")
def pulsar_env() -> Iterator[dict[str, str]]:
    """A private pulsar-lite broker, named as PULSAR_URL (the variable docs/pulsar.md reads)."""
    with PulsarLite() as broker:
        yield {"PULSAR_URL": broker.url}


@pytest.fixture(scope="session")
def kafka_env() -> Iterator[dict[str, str]]:
    """A private tansu broker, named as KAFKA_URL (the variable docs/kafka.md reads)."""
    broker = Tansu()
    try:
        broker.start()
        yield {"KAFKA_URL": broker.url}
    finally:
        broker.stop()
        broker.cleanup()


@pytest.fixture(scope="session")
def docs_env(clickhouse_env: dict[str, str], pulsar_env: dict[str, str], kafka_env: dict[str, str]) -> dict[str, str]:
    require_tcp("Redis", "127.0.0.1", 6379, "docker compose up redis  (or: redis-server --daemonize yes)")
    require_tcp("RabbitMQ", "127.0.0.1", 5672, "docker compose up rabbitmq  (or: rabbitmq-server -detached)")
    require_tcp("NATS", "127.0.0.1", 4222, "docker compose up nats  (or: nats-server -js)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(LEAKING)}
    return {**env, **clickhouse_env, **pulsar_env, **kafka_env}
