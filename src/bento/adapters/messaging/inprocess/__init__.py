"""In-process MessageBus: topics, groups and patterns inside one event loop."""

from bento.adapters.messaging.inprocess.message_bus import InProcessMessageBus
from bento.adapters.messaging.inprocess.settings import InProcessSettings

__all__ = ["InProcessMessageBus", "InProcessSettings"]
