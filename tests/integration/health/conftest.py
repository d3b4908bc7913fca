"""Private brokers these tests stop and start again (never the shared ones)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers.redis_server import PrivateRedis


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
