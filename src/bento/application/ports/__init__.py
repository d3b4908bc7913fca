"""Application ports: Protocols the application calls and adapters implement."""

from bento.application.ports.cache import Cache, CacheStats
from bento.application.ports.capabilities import Capabilities, HealthStatus
from bento.application.ports.channel import ChannelMessage, ChannelPort
from bento.application.ports.checkpoint_store import CheckpointStore
from bento.application.ports.event_publisher import EventPublisherPort
from bento.application.ports.event_store import ANY_VERSION, NO_STREAM, EventFilter, EventStore, StoredEvent
from bento.application.ports.inbox import Inbox
from bento.application.ports.message_bus import (
    DeadLetter,
    DeadLetterSelection,
    MessageBus,
    MessageHandler,
    Subscription,
)
from bento.application.ports.read_model import ReadModelPort, ReadModels, RebuildableReadModel
from bento.application.ports.snapshot_store import SnapshotStore
from bento.application.ports.stream_lock import StreamLock
from bento.application.ports.work_queue import WorkHandler, WorkQueue, WorkQueueConsumer

__all__ = [
    "ANY_VERSION",
    "NO_STREAM",
    "Cache",
    "CacheStats",
    "Capabilities",
    "ChannelMessage",
    "ChannelPort",
    "CheckpointStore",
    "DeadLetter",
    "DeadLetterSelection",
    "EventFilter",
    "EventPublisherPort",
    "EventStore",
    "HealthStatus",
    "Inbox",
    "MessageBus",
    "MessageHandler",
    "ReadModelPort",
    "ReadModels",
    "RebuildableReadModel",
    "SnapshotStore",
    "StoredEvent",
    "StreamLock",
    "Subscription",
    "WorkHandler",
    "WorkQueue",
    "WorkQueueConsumer",
]
