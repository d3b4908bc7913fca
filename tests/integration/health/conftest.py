"""Private brokers these tests stop and start again (never the shared ones)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers import start_private
from servers.redis_server import RedisServer


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server: RedisServer = start_private(RedisServer(), "redis-server", "apt-get install redis-server")
    try:
        yield server
    finally:
        server.cleanup()
