"""Fixtures for the Redis work queue against the Redis server on 127.0.0.1:6379."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from servers import require_tcp


@pytest.fixture
def wq_redis_url() -> str:
    require_tcp("Redis", "127.0.0.1", 6379, "redis-server --port 6379 --save '' --appendonly no")
    return "redis://127.0.0.1:6379/0"


@pytest.fixture
def wq_prefix(wq_redis_url: str) -> Iterator[str]:
    """Key prefix of this test; its keys are deleted afterwards."""
    prefix = f"bento-wq-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(wq_redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
