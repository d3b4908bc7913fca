"""Fixtures for tests against the Redis server on 127.0.0.1:6379 (started on dev and CI machines)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from servers import require_tcp

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


@pytest.fixture
def redis_url() -> str:
    require_tcp("Redis", REDIS_HOST, REDIS_PORT, "redis-server --port 6379 --save '' --appendonly no")
    return os.environ.get("BENTO_TEST_REDIS_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/0")


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A prefix of its own per test, so runs sharing the server never see each other's keys;
    the test's keys are deleted afterwards."""
    prefix = f"bento-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
