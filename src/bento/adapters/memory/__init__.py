"""In-process MessageBus: topics, groups and patterns inside one event loop."""

from bento.adapters.memory.message_bus import InProcessMessageBus
from bento.adapters.memory.settings import InProcessSettings

__all__ = ["InProcessMessageBus", "InProcessSettings"]
