"""Translation of redis-py exceptions into Bento's port errors (they never cross a port)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bento.application.credentials import mask_url
from bento.application.errors import BrokerUnavailableError, PublishError

#: Failures that mean "Redis is not reachable right now" (retry later), not "Redis said no".
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

__all__ = ["UNREACHABLE", "RedisError", "checked_client", "publish_error", "unavailable"]


def publish_error(topic: str, exc: BaseException) -> PublishError:
    return PublishError(topic, f"{type(exc).__name__}: {exc}")


def unavailable(where: str, exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError("Redis", where, f"{type(exc).__name__}: {exc}")


async def checked_client(url: str, client: Redis | None, *, max_connections: int | None = None) -> Redis:
    """`client`, or a new client for `url`, once Redis answered a PING.

    A client made here is closed again when Redis does not answer; a caller's client is
    left to the caller. With `max_connections`, a client made here has a pool of that size
    where callers wait for a free connection (redis-py's default pool raises
    MaxConnectionsError beyond 100). Raises BrokerUnavailableError naming the address (no
    credentials)."""
    if client is not None:
        candidate = client
    elif max_connections is not None:
        pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=None)
        candidate = Redis.from_pool(pool)
    else:
        candidate = Redis.from_url(url)
    try:
        await candidate.ping()
    except RedisError as exc:
        if client is None:
            await candidate.aclose()
        raise unavailable(mask_url(url), exc) from exc
    return candidate
