"""Translation of redis-py exceptions into Bento's port errors (they never cross a port)."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bento.application.errors import BrokerUnavailableError, PublishError

#: Failures that mean "Redis is not reachable right now" (retry later), not "Redis said no".
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

__all__ = ["UNREACHABLE", "RedisError", "publish_error", "unavailable"]


def publish_error(topic: str, exc: BaseException) -> PublishError:
    return PublishError(topic, f"{type(exc).__name__}: {exc}")


def unavailable(where: str, exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError("Redis", where, f"{type(exc).__name__}: {exc}")
