"""In-process adapters (no extra): the MessageBus on one event loop and every in-memory store.

The embedded default: tests and single-process services run on these."""

from bento.adapters.memory.cache import InMemoryCache
from bento.adapters.memory.channel import InMemoryChannel
from bento.adapters.memory.checkpoint_store import InMemoryCheckpointStore
from bento.adapters.memory.event_store import InMemoryEventStore
from bento.adapters.memory.inbox import InMemoryInbox
from bento.adapters.memory.message_bus import InProcessMessageBus
from bento.adapters.memory.read_model import InMemoryReadModel, InMemoryReadModels
from bento.adapters.memory.settings import InMemoryCacheSettings, InMemoryChannelSettings, InProcessSettings
from bento.adapters.memory.snapshot_store import InMemorySnapshotStore
from bento.adapters.memory.stream_lock import InProcessStreamLock

__all__ = [
    "InMemoryCache",
    "InMemoryCacheSettings",
    "InMemoryChannel",
    "InMemoryChannelSettings",
    "InMemoryCheckpointStore",
    "InMemoryEventStore",
    "InMemoryInbox",
    "InMemoryReadModel",
    "InMemoryReadModels",
    "InMemorySnapshotStore",
    "InProcessMessageBus",
    "InProcessSettings",
    "InProcessStreamLock",
]
