"""Redis MessageBus adapter (extra: bento-ddd[redis]).

Settings import without the client; the adapter class imports it (see `bento.adapters.shared.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters.redis.settings import RedisSettings
from bento.adapters.shared.lazy import lazy_classes

if TYPE_CHECKING:
    from bento.adapters.redis.message_bus import RedisMessageBus

__all__ = ["RedisMessageBus", "RedisSettings"]

__getattr__ = lazy_classes(
    __name__, adapter="Redis", extra="redis", client="redis", classes={"RedisMessageBus": ".message_bus"}
)
