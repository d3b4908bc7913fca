"""Redis MessageBus adapter (extra: bento-ddd[redis]).

Settings import without the client; the adapter class needs it, and a missing
client is a MissingExtraError naming the extra."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bento.adapters.messaging.redis.settings import RedisSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.redis.message_bus import RedisMessageBus

__all__ = ["RedisMessageBus", "RedisSettings"]


def __getattr__(name: str) -> Any:
    if name == "RedisMessageBus":
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            from bento.application.errors import MissingExtraError

            raise MissingExtraError("Redis", "redis", "redis") from exc
        from bento.adapters.messaging.redis.message_bus import RedisMessageBus

        return RedisMessageBus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
