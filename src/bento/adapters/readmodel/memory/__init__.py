"""In-memory read models."""

from bento.adapters.readmodel.memory.read_model import InMemoryReadModel

__all__ = ["InMemoryReadModel"]
