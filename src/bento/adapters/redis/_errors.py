"""Translation of redis-py exceptions into Bento's port errors (they never cross a port)."""

from __future__ import annotations

from redis.asyncio import Redis
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


async def checked_client(url: str, client: Redis | None) -> Redis:
    """`client`, or a new client for `url`, once Redis answered a PING.

    A client made here is closed again when Redis does not answer; a caller's client is
    left to the caller. Raises BrokerUnavailableError naming the address (no credentials)."""
    candidate = client or Redis.from_url(url)
    try:
        await candidate.ping()
    except RedisError as exc:
        if client is None:
            await candidate.aclose()
        raise unavailable(mask_url(url), exc) from exc
    return candidate
