"""In-memory EventStore (tests and the smallest services)."""

from bento.adapters.eventstore.memory.event_store import InMemoryEventStore

__all__ = ["InMemoryEventStore"]
