"""Redis MessageBus adapter (extra: bento-ddd[redis]).

Settings import without the client; the adapter class imports it (see `bento.adapters._lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters._lazy import lazy_classes
from bento.adapters.messaging.redis.settings import RedisSettings

if TYPE_CHECKING:
    from bento.adapters.messaging.redis.message_bus import RedisMessageBus

__all__ = ["RedisMessageBus", "RedisSettings"]

__getattr__ = lazy_classes(
    __name__, adapter="Redis", extra="redis", client="redis", classes={"RedisMessageBus": ".message_bus"}
)
