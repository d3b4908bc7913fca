"""The environment the docs' code blocks run in: no Bento settings leak in from the
machine, and the servers a block needs are named by the same variables a reader sets."""

from __future__ import annotations

import os

import pytest

from servers import require_tcp


@pytest.fixture(scope="session")
def docs_env() -> dict[str, str]:
    require_tcp("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes --port 6379 --save ''")
    require_tcp("RabbitMQ", "127.0.0.1", 5672, "docker compose up rabbitmq  (or: rabbitmq-server -detached)")
    require_tcp("NATS", "127.0.0.1", 4222, "nats-server -js -a 127.0.0.1 -p 4222")
    prefixes = ("EVENT", "CLICKHOUSE", "READ_MODEL", "CHECKPOINT", "SNAPSHOT", "STREAM_LOCK", "INBOX", "MQ", "BENTO")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
