"""Redis (extra: bento-ddd[redis]): the MessageBus, Cache, Inbox, CheckpointStore, StreamLock, ChannelPort
and WorkQueue adapters.

Settings import without the client; the adapter classes import it (see `bento.adapters.shared.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bento.adapters.redis.settings import (
    RedisCacheSettings,
    RedisChannelSettings,
    RedisSettings,
    RedisStoreSettings,
    RedisStreamLockSettings,
    RedisWorkQueueSettings,
)
from bento.adapters.shared.lazy import lazy_classes

if TYPE_CHECKING:
    from bento.adapters.redis.cache import RedisCache
    from bento.adapters.redis.channel import RedisChannel
    from bento.adapters.redis.checkpoint_store import RedisCheckpointStore
    from bento.adapters.redis.inbox import RedisInbox
    from bento.adapters.redis.message_bus import RedisMessageBus
    from bento.adapters.redis.stream_lock import RedisStreamLock
    from bento.adapters.redis.work_queue import RedisWorkQueue

__all__ = [
    "RedisCache",
    "RedisCacheSettings",
    "RedisChannel",
    "RedisChannelSettings",
    "RedisCheckpointStore",
    "RedisInbox",
    "RedisMessageBus",
    "RedisSettings",
    "RedisStoreSettings",
    "RedisStreamLock",
    "RedisStreamLockSettings",
    "RedisWorkQueue",
    "RedisWorkQueueSettings",
]

__getattr__ = lazy_classes(
    __name__,
    adapter="Redis",
    extra="redis",
    client="redis",
    classes={
        "RedisCache": ".cache",
        "RedisChannel": ".channel",
        "RedisCheckpointStore": ".checkpoint_store",
        "RedisInbox": ".inbox",
        "RedisMessageBus": ".message_bus",
        "RedisStreamLock": ".stream_lock",
        "RedisWorkQueue": ".work_queue",
    },
)
